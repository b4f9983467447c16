"""A sync's plan from kept evaluations (bridge.evaluations) is the plan evaluating every invoice gives, byte for byte:
with nothing changed, and after an invoice changes, a payment arrives, an action is applied, the terms change
or the day moves. So is a dry run's kept whole plan, taken back without reading a record: after every one of
those changes, and after a renegotiation request, a pull's error or warning, or the set of connections changes
(anything its fingerprint or the store's change count left out would hand back the plan kept before)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import evaluations
from bridge.ledger import ApplyReport
from bridge.model import Allocation, EstimateRecord, HistoryEntry, Invoice, InvoiceStatus, Payment, RenegotiationRequest
from bridge.plan import Plan, RecordError, Warning, WarningCode
from bridge.policies.evaluate import Evaluated, evaluate, evaluate_each
from bridge.policies.terms import Terms
from bridge.store import Store
from bridge.store.rows import CachedInvoice
from bridge.sync import cached_invoices, with_report
from tests.property.strategies import CONNECTIONS, Scenario, contracts, scenarios

_STORE = Store.open("sqlite://")  # one in-memory store for every example; each starts by emptying it
# An example of the two tests through the store makes and compares a dozen plans (each change step, kept and not):
# an eighth of the profile's examples (250 in CI, 3,000 plans), where the engine's own invariants take them all.
_THROUGH_THE_STORE = settings(max_examples=max(25, settings().max_examples // 8))


@pytest.fixture(scope="module", autouse=True)
def _close_store() -> Iterator[None]:
    yield
    _STORE.close()


class _Counting:
    """The store, counting the evaluations written back and the connections whose records were read."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.saved = 0
        self.read = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def save_evaluations(self, connection: str, rows: Sequence[tuple[str, str, str]]) -> None:
        self.saved += len(rows)
        self.store.save_evaluations(connection, rows)

    def cached_invoices(self, connection: str) -> tuple[list[CachedInvoice], list[str]]:
        self.read += 1
        return self.store.cached_invoices(connection)


@dataclasses.dataclass
class _Inputs:
    """Everything a plan is made from but the store's records."""

    terms: Terms
    history: list[HistoryEntry]
    requests: list[RenegotiationRequest]
    today: date
    errors: tuple[RecordError, ...] = ()
    warnings: tuple[Warning, ...] = ()
    names: tuple[str, ...] = CONNECTIONS


def _fresh(store: Store, i: _Inputs) -> Plan:
    """The oracle: every cached invoice read and evaluated, as a sync did before evaluations were kept."""
    plan = evaluate(cached_invoices(store, i.names), i.terms, i.history, i.requests, i.today, i.errors)
    return evaluations.with_warnings(plan, i.warnings)


def _kept(store: Store, i: _Inputs, *, keep: bool = False) -> tuple[Plan, _Counting]:
    counting = _Counting(store)
    plan = evaluations.plan(
        counting,  # type: ignore[arg-type]
        i.names,
        i.terms,
        i.history,
        i.requests,
        i.today,
        i.errors,
        i.warnings,
        keep=keep,
    )
    return plan, counting


def _same(store: Store, i: _Inputs) -> None:
    """The kept plan equals the fresh one, twice over; the second time nothing is evaluated again. A dry run's
    kept whole plan equals it too: the first one is made anew (the plan kept before this change is stale), the
    next one is taken back without reading a record, and the actions and skips read back from it are the same."""
    fresh = _fresh(store, i)
    expected = fresh.to_json()
    first, _ = _kept(store, i)
    assert first.to_json() == expected
    again, counting = _kept(store, i)
    assert again.to_json() == expected
    ids = {(r.connection, r.invoice_id) for r in i.requests}
    numbers = {(r.connection, r.invoice_number) for r in i.requests}
    stored = cached_invoices(store, i.names)
    named = sum(1 for v in stored if (v.connection, v.id) in ids or (v.connection, v.number) in numbers)
    if any(c.reminders.escalate_from_step is not None for c in i.terms.contracts):
        # An escalating contract's warnings need every invoice: none taken back, all kept but those requests name
        # (decided anew on every run, their results are never kept).
        assert counting.saved == len(stored) - named
    else:
        assert counting.saved == 0

    made, _ = _kept(store, i, keep=True)  # the plan kept before this step, if taken back, must be this one
    assert made.to_json() == expected
    taken, counting = _kept(store, i, keep=True)
    assert isinstance(taken, evaluations.Kept)
    assert (counting.read, counting.saved) == (0, 0)  # nothing read, nothing evaluated
    assert taken.to_json() == expected
    assert (taken.summary(), taken.is_empty, taken.errors, taken.warnings) == (
        fresh.summary(),
        fresh.is_empty,
        fresh.errors,
        fresh.warnings,
    )
    read_back = Plan.build(taken.as_of, taken.actions, taken.skipped, taken.warnings, taken.errors)
    assert read_back.to_json() == expected
    # Handed to what applies a plan, it reports as the evaluated plan does.
    assert with_report(taken, ApplyReport()).to_json() == with_report(fresh, ApplyReport()).to_json()


def _fill(store: Store, s: Scenario) -> None:
    for name in CONNECTIONS:
        store.remove_connection(name)
        store.save_pull(name, invoices=[(i, {}) for i in s.invoices if i.connection == name])


@_THROUGH_THE_STORE
@given(scenarios(), st.data())
def test_a_plan_from_kept_evaluations_is_the_evaluated_plan_whatever_changes(s: Scenario, data: st.DataObject) -> None:
    store = _STORE
    _fill(store, s)
    i = _Inputs(s.terms, list(s.history), list(s.renegotiations), s.today)
    _same(store, i)

    # The day moves.
    i.today = s.today + timedelta(days=data.draw(st.integers(1, 60), label="days later"))
    _same(store, i)

    # An action is applied (a ledger entry for one invoice).
    plan = _fresh(store, i)
    if plan.actions:
        action = data.draw(st.sampled_from(plan.actions), label="applied")
        i.history.append(HistoryEntry(key=action.key, kind=action.kind.value, amount=action.amount, applied_on=i.today))
        _same(store, i)

    # A renegotiation request is withdrawn (or, with none, a pull's error is found).
    if i.requests:
        i.requests.pop(data.draw(st.integers(0, len(i.requests) - 1), label="withdrawn"))
    else:
        i.errors = (RecordError(CONNECTIONS[0], "r1", "unreadable"),)
    _same(store, i)

    # A pull warns.
    i.warnings = (Warning(CONNECTIONS[-1], None, WarningCode.DEFERRED, "the daily limit is near"),)
    _same(store, i)

    # Only one connection is planned.
    i.names = (data.draw(st.sampled_from(CONNECTIONS), label="alone"),)
    _same(store, i)
    i.names = CONNECTIONS

    # A payment arrives for one invoice.
    invoice = data.draw(st.sampled_from(s.invoices), label="paid")
    paid = Decimal(1)
    allocation = Allocation(date=i.today, amount=paid, payment_id="p1", invoice_id=invoice.id)
    payment = Payment(id="p1", connection=invoice.connection, date=i.today, amount=paid, currency=invoice.currency,
                      allocations=(allocation,))  # fmt: skip
    store.save_pull(invoice.connection, payments=[(payment, {})])
    _same(store, i)

    # An invoice changes at the provider.
    changed = data.draw(st.sampled_from(s.invoices), label="changed")
    status = data.draw(st.sampled_from([InvoiceStatus.PAID, InvoiceStatus.OPEN, InvoiceStatus.VOID]), label="status")
    edited = dataclasses.replace(changed, status=status, due_date=changed.due_date and changed.due_date - timedelta(7))
    store.save_pull(changed.connection, invoices=[(edited, {})])
    _same(store, i)

    # The contracts change.
    i.terms = s.terms.model_copy(update={"contracts": data.draw(contracts, label="contracts")})
    _same(store, i)

    # An invoice is deleted at the provider.
    gone = data.draw(st.sampled_from(s.invoices), label="deleted")
    store.save_pull(gone.connection, deleted_invoices=[gone.id])
    _same(store, i)


@given(scenarios())
def test_an_evaluation_reads_back_equal_to_what_was_kept(s: Scenario) -> None:
    _, each = evaluate_each(list(s.invoices), s.terms, s.history, (), s.today)
    for result in each:
        back = evaluations.decode(evaluations.encode(result))
        assert back == result
        # Equal and of the same types, to the amounts' exponents: the plan's text is made from them.
        assert repr(back) == repr(result)
        for kept, read in zip(result.actions, back.actions, strict=True):
            assert [type(v) for v in read] == [type(v) for v in kept]


def test_evaluate_each_takes_a_kept_result_as_it_is() -> None:
    """An `Evaluated` entry stands for its invoice: the engine does not look behind it."""
    kept = Evaluated((), (), ())
    plan, each = evaluate_each([kept], Terms(), (), (), date(2026, 10, 20))
    assert each == [kept]
    assert plan.to_json() == Plan.build(date(2026, 10, 20), ()).to_json()


@_THROUGH_THE_STORE
@given(scenarios(with_renegotiations=False), st.data())
def test_a_changed_estimate_is_seen_through_kept_evaluations(s: Scenario, data: st.DataObject) -> None:
    """Invoices checked against the estimates they name (docs/policy.md §2.1): an estimate that changes changes
    the plan from kept evaluations as it changes the evaluated one."""
    tolerance = {"estimate_tolerance_percent": Decimal(10)}
    terms = s.terms.model_copy(update={"contracts": tuple(c.model_copy(update=tolerance) for c in s.terms.contracts)})
    invoices = [dataclasses.replace(i, estimate_keys=(f"Q-{i.id}",)) for i in s.invoices]
    store = _STORE
    _fill(store, dataclasses.replace(s, invoices=tuple(invoices)))

    def estimate(inv: Invoice, total: Decimal) -> EstimateRecord:
        return EstimateRecord(id=f"e{inv.id}", connection=inv.connection, keys=(f"Q-{inv.id}",), number=f"Q{inv.id}",
                              currency=inv.currency, total=total, accepted=True)  # fmt: skip

    for inv in invoices:
        store.save_pull(inv.connection, estimates=[(estimate(inv, inv.total), {})])
    i = _Inputs(terms, list(s.history), [], s.today)
    _same(store, i)
    quoted = data.draw(st.sampled_from(invoices), label="quoted lower")
    store.save_pull(quoted.connection, estimates=[(estimate(quoted, (quoted.total / 2).quantize(Decimal(1))), {})])
    _same(store, i)
