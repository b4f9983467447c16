"""A sync's plan from kept evaluations (bridge.evaluations) is the plan evaluating every invoice gives, byte for byte:
with nothing changed, and after an invoice changes, a payment arrives, an action is applied, the terms change
or the day moves."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import evaluations
from bridge.model import Allocation, EstimateRecord, HistoryEntry, Invoice, InvoiceStatus, Payment, RenegotiationRequest
from bridge.plan import Plan
from bridge.policies.evaluate import Evaluated, evaluate, evaluate_each
from bridge.policies.terms import Terms
from bridge.store import Store
from bridge.sync import cached_invoices
from tests.property.strategies import CONNECTIONS, Scenario, contracts, scenarios

_STORE = Store.open("sqlite://")  # one in-memory store for every example; each starts by emptying it


@pytest.fixture(scope="module", autouse=True)
def _close_store() -> Iterator[None]:
    yield
    _STORE.close()


class _Counting:
    """The store, counting the evaluations written back."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.saved = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def save_evaluations(self, connection: str, rows: Sequence[tuple[str, str, str]]) -> None:
        self.saved += len(rows)
        self.store.save_evaluations(connection, rows)


def _fresh(store: Store, terms: Terms, history: Sequence[HistoryEntry], requests: Sequence[RenegotiationRequest],
           today: date) -> Plan:  # fmt: skip
    """The oracle: every cached invoice read and evaluated, as a sync did before evaluations were kept."""
    return evaluate(cached_invoices(store, CONNECTIONS), terms, history, requests, today)


def _kept(
    store: Store, terms: Terms, history: Sequence[HistoryEntry], requests: Sequence[RenegotiationRequest], today: date
) -> tuple[Plan, int]:
    counting = _Counting(store)
    plan = evaluations.plan(counting, CONNECTIONS, terms, history, requests, today, [])  # type: ignore[arg-type]
    return plan, counting.saved


def _same(
    store: Store, terms: Terms, history: Sequence[HistoryEntry], requests: Sequence[RenegotiationRequest], today: date
) -> None:
    """The kept plan equals the fresh one, twice over; the second time nothing is evaluated again."""
    expected = _fresh(store, terms, history, requests, today).to_json()
    first, _ = _kept(store, terms, history, requests, today)
    assert first.to_json() == expected
    again, saved = _kept(store, terms, history, requests, today)
    assert again.to_json() == expected
    ids = {(r.connection, r.invoice_id) for r in requests}
    numbers = {(r.connection, r.invoice_number) for r in requests}
    stored = cached_invoices(store, CONNECTIONS)
    if any(c.reminders.escalate_from_step is not None for c in terms.contracts):
        assert saved == len(stored)  # an escalating contract's warnings need every invoice: none taken back
    else:
        assert saved == sum(1 for i in stored if (i.connection, i.id) in ids or (i.connection, i.number) in numbers)


def _fill(store: Store, s: Scenario) -> None:
    for name in CONNECTIONS:
        store.remove_connection(name)
        store.save_pull(name, invoices=[(i, {}) for i in s.invoices if i.connection == name])


@given(scenarios(), st.data())
def test_a_plan_from_kept_evaluations_is_the_evaluated_plan_whatever_changes(s: Scenario, data: st.DataObject) -> None:
    store = _STORE
    _fill(store, s)
    history, requests = list(s.history), list(s.renegotiations)
    _same(store, s.terms, history, requests, s.today)

    # The day moves.
    today = s.today + timedelta(days=data.draw(st.integers(1, 60), label="days later"))
    _same(store, s.terms, history, requests, today)

    # An action is applied (a ledger entry for one invoice).
    plan = _fresh(store, s.terms, history, requests, today)
    if plan.actions:
        action = data.draw(st.sampled_from(plan.actions), label="applied")
        history.append(HistoryEntry(key=action.key, kind=action.kind.value, amount=action.amount, applied_on=today))
        _same(store, s.terms, history, requests, today)

    # A payment arrives for one invoice.
    invoice = data.draw(st.sampled_from(s.invoices), label="paid")
    paid = Decimal(1)
    allocation = Allocation(date=today, amount=paid, payment_id="p1", invoice_id=invoice.id)
    payment = Payment(id="p1", connection=invoice.connection, date=today, amount=paid, currency=invoice.currency,
                      allocations=(allocation,))  # fmt: skip
    store.save_pull(invoice.connection, payments=[(payment, {})])
    _same(store, s.terms, history, requests, today)

    # An invoice changes at the provider.
    changed = data.draw(st.sampled_from(s.invoices), label="changed")
    status = data.draw(st.sampled_from([InvoiceStatus.PAID, InvoiceStatus.OPEN, InvoiceStatus.VOID]), label="status")
    edited = dataclasses.replace(changed, status=status, due_date=changed.due_date and changed.due_date - timedelta(7))
    store.save_pull(changed.connection, invoices=[(edited, {})])
    _same(store, s.terms, history, requests, today)

    # The contracts change.
    terms = s.terms.model_copy(update={"contracts": data.draw(contracts, label="contracts")})
    _same(store, terms, history, requests, today)

    # An invoice is deleted at the provider.
    gone = data.draw(st.sampled_from(s.invoices), label="deleted")
    store.save_pull(gone.connection, deleted_invoices=[gone.id])
    _same(store, terms, history, requests, today)


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
    _same(store, terms, s.history, (), s.today)
    quoted = data.draw(st.sampled_from(invoices), label="quoted lower")
    store.save_pull(quoted.connection, estimates=[(estimate(quoted, (quoted.total / 2).quantize(Decimal(1))), {})])
    _same(store, terms, s.history, (), s.today)
