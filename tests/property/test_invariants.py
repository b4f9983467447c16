"""docs/policy.md §7: the seven invariants the policy engine must hold for any input, as Hypothesis properties."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

from hypothesis import given
from hypothesis import strategies as st

from bridge.model import HistoryEntry, Invoice, RenegotiationRequest
from bridge.money import minor_units, quantum, round_down
from bridge.plan import Action, ActionKind, Plan, SkipCode
from bridge.policies.evaluate import evaluate
from bridge.policies.terms import Contract, Terms
from tests.builders import record
from tests.property.strategies import CLOSED_STATUSES, Scenario, customer_tokens, scenarios

# --------------------------------------------------------------------------- oracles (independent of the engine)


def inv_key(inv: Invoice) -> tuple[str, str]:
    return inv.connection, inv.id


def action_inv_key(action: Action) -> tuple[str, str]:
    return action.connection, action.invoice.id


def closed_or_held(inv: Invoice, terms: Terms) -> str | None:
    """Why docs/policy.md §7.1 forbids any action on `inv` (None when it does not). Customers match by exact token."""
    if inv.status in CLOSED_STATUSES:
        return f"status {inv.status.value}"
    if inv.disputed:
        return "disputed"
    if inv.number in terms.hold.invoices:
        return "hold.invoices"
    if set(customer_tokens(inv.customer)) & set(terms.hold.customers):
        return "hold.customers"
    return None


def excluded(inv: Invoice, terms: Terms) -> bool:
    return bool(set(customer_tokens(inv.customer)) & set(terms.exclude.customers))


def history_fees(history: list[HistoryEntry] | tuple[HistoryEntry, ...], inv: Invoice) -> dict[int, Decimal]:
    prefix = f"late_fee:{inv.connection}:{inv.id}:"
    return {
        int(e.key[len(prefix) :]): e.amount or Decimal(0)
        for e in history
        if e.key.startswith(prefix) and e.key[len(prefix) :].isdigit()
    }


def own_lines(inv: Invoice) -> dict[int, Decimal]:
    return {int(line.id[4:]): line.amount for line in inv.lines if line.id and line.id.startswith("own-")}


def foreign_lines(inv: Invoice) -> list[Decimal]:
    return [line.amount for line in inv.lines if line.id and line.id.startswith("foreign-")]


def principal(inv: Invoice) -> Decimal:
    """The invoice's total without any late-fee line (the generator tags them own-K / foreign-N)."""
    return inv.total - sum(own_lines(inv).values(), Decimal(0)) - sum(foreign_lines(inv), Decimal(0))


def contract_named(terms: Terms, clause: str) -> Contract:
    name = clause.split(".")[1]
    return next(c for c in terms.contracts if c.name == name)


def fees_of(plan: Plan) -> dict[str, Decimal]:
    """Late-fee amounts by action key."""
    out: dict[str, Decimal] = {}
    for a in plan.actions:
        if a.kind is ActionKind.LATE_FEE:
            assert a.amount is not None, a.key
            out[a.key] = a.amount
    return out


def reminder_steps(plan: Plan) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for a in plan.actions:
        if a.kind is ActionKind.REMINDER:
            assert a.step is not None
            out.setdefault(action_inv_key(a), []).append(a.step)
    return out


# --------------------------------------------------------------------------- 1. no action on closed or held invoices


@given(scenarios())
def test_invariant_1_no_action_on_closed_or_held_invoices(s: Scenario) -> None:
    """Paid, void, draft, deleted, disputed, hold.invoices, hold.customers: no action of any kind.

    Also §2.4, checked alongside: an excluded customer's invoices get no action either.
    """
    plan = s.evaluate()
    forbidden = {inv_key(inv): "excluded" for inv in s.invoices if excluded(inv, s.terms)}
    forbidden.update({inv_key(inv): why for inv in s.invoices if (why := closed_or_held(inv, s.terms))})
    for action in plan.actions:
        why = forbidden.get(action_inv_key(action))
        assert why is None, f"{action.key} ({action.kind.value}) on an invoice that is {why}"


# --------------------------------------------------------------------------- 2. caps and no key twice


def check_caps(s: Scenario, plan: Plan) -> None:
    """History fees + fee lines already there + planned fees stay within both caps (or nothing is added)."""
    by_invoice: dict[tuple[str, str], list[Action]] = {}
    for a in plan.actions:
        if a.kind is ActionKind.LATE_FEE:
            by_invoice.setdefault(action_inv_key(a), []).append(a)
    invoices = {inv_key(inv): inv for inv in s.invoices}
    for key, actions in by_invoice.items():
        inv = invoices[key]
        clauses = {a.clause for a in actions}
        assert len(clauses) == 1, clauses
        late_fee = contract_named(s.terms, clauses.pop()).late_fee
        assert late_fee is not None
        hist = history_fees(s.history, inv)
        own = own_lines(inv)
        pre = (
            sum(hist.values(), Decimal(0))
            + sum((v for k, v in own.items() if k not in hist), Decimal(0))
            + sum(foreign_lines(inv), Decimal(0))
        )
        planned = sum((a.amount or Decimal(0) for a in actions), Decimal(0))
        caps: dict[str, Decimal] = {}
        if late_fee.max_total is not None:
            caps["max_total"] = late_fee.max_total
        if late_fee.max_percent_of_total is not None:
            caps["max_percent_of_total"] = round_down(
                late_fee.max_percent_of_total * principal(inv) / 100, inv.currency
            )
        for name, cap in caps.items():
            if pre > cap:
                assert not actions, (
                    f"{inv.number}: fees already there ({pre}) exceed {name} = {cap}, yet the plan adds "
                    f"{[(a.key, str(a.amount)) for a in actions]}"
                )
            else:
                assert pre + planned <= cap, (
                    f"{inv.number}: {pre} already charged + {planned} planned "
                    f"{[(a.key, str(a.amount)) for a in actions]} exceeds {name} = {cap}"
                )


def check_no_key_twice(s: Scenario, plan: Plan) -> None:
    """No key twice in the plan, none already in the history, no fee occurrence already on the invoice."""
    keys = [a.key for a in plan.actions]
    dupes = [k for k, n in Counter(keys).items() if n > 1]
    assert not dupes, f"keys twice in the plan: {dupes}"
    again = sorted(set(keys) & {e.key for e in s.history})
    assert not again, f"keys already in the history planned again: {again}"
    # A fee line already on the invoice (the bridge's own, or a foreign one in the lowest free slot)
    # is an occurrence already charged.
    for inv in s.invoices:
        taken = set(history_fees(s.history, inv)) | set(own_lines(inv))
        slot = 1
        for _ in foreign_lines(inv):
            while slot in taken:
                slot += 1
            taken.add(slot)
        planned = {
            a.occurrence for a in plan.actions if a.kind is ActionKind.LATE_FEE and action_inv_key(a) == inv_key(inv)
        }
        assert not planned & taken, (
            f"{inv.number}: occurrences {sorted(planned & taken)} charged again (taken: {sorted(taken)})"
        )


@given(scenarios())
def test_invariant_2_fees_within_both_caps_and_no_occurrence_or_step_key_twice(s: Scenario) -> None:
    plan = s.evaluate()
    check_caps(s, plan)
    check_no_key_twice(s, plan)


@given(scenarios())
def test_invariant_1_currency_no_contract_amount_is_applied_to_an_invoice_in_another_currency(s: Scenario) -> None:
    """POLICY §1: a contract governs only invoices in the currency it states; every fee stays within its caps."""
    plan = s.evaluate()
    invoices = {inv_key(inv): inv for inv in s.invoices}
    for a in plan.actions:
        if not a.clause.startswith("contracts."):
            continue
        contract = contract_named(s.terms, a.clause)
        assert contract.currency in (None, a.invoice.currency), (
            f"{a.key}: contract {contract.name} is in {contract.currency}, the invoice in {a.invoice.currency}"
        )
        inv = invoices[action_inv_key(a)]
        assert a.invoice.currency == inv.currency
    for skip in plan.skipped:
        if skip.code is SkipCode.CURRENCY_MISMATCH:
            inv = next(i for i in s.invoices if (i.connection, i.number) == (skip.connection, skip.invoice))
            cust = inv.customer
            asked = [cust.id, cust.name.casefold(), *([cust.email.casefold()] if cust.email else [])]
            applying = [
                c
                for c in s.terms.contracts
                if "*" in c.applies_to or {*c.applies_to, *(t.casefold() for t in c.applies_to)} & set(asked)
            ]
            assert applying and all(c.currency not in (None, inv.currency) for c in applying), skip
    check_caps(s, plan)


# --------------------------------------------------------------------------- 3. idempotent on the same day


@given(scenarios())
def test_invariant_3_second_evaluation_after_recording_the_plan_is_empty(s: Scenario) -> None:
    first = s.evaluate()
    history = [*s.history, *record(first, s.today)]
    second = s.evaluate(history=history)
    assert not second.actions, (
        f"planned again after {[a.key for a in first.actions]} were carried out: {[a.key for a in second.actions]}"
    )


# --------------------------------------------------------------------------- 4. day by day == once


@given(scenarios(max_invoices=3, with_renegotiations=False), st.integers(0, 60))
def test_invariant_4_day_by_day_charges_the_same_fees_as_one_run(s: Scenario, days: int) -> None:
    d1 = s.today
    d2 = d1 + timedelta(days=days)
    history = list(s.history)
    daily_fees: dict[str, Decimal] = {}
    daily_steps: dict[tuple[str, str], list[int]] = {}
    day = d1
    last_plan = None
    while day <= d2:
        plan = last_plan = s.evaluate(today=day, history=history)
        for key, amount in fees_of(plan).items():
            assert key not in daily_fees, f"{key} charged twice day by day (again on {day})"
            daily_fees[key] = amount
        for inv, steps in reminder_steps(plan).items():
            daily_steps.setdefault(inv, []).extend(steps)
        history.extend(record(plan, day))
        day += timedelta(days=1)

    assert last_plan is not None
    once = s.evaluate(today=d2)
    assert fees_of(once) == daily_fees, f"D1={d1} D2={d2}: once {fees_of(once)} vs day by day {daily_fees}"

    # Reminders: neither run sends a step twice (nor one already sent before D1) ...
    sent_before = {e.key for e in s.history}
    for (conn, inv_id), steps in daily_steps.items():
        assert len(steps) == len(set(steps)), f"{conn}:{inv_id}: day by day sent steps {steps}"
        resent = [n for n in steps if f"reminder:{conn}:{inv_id}:{n}" in sent_before]
        assert not resent, f"{conn}:{inv_id}: day by day sent steps {resent} already sent before D1"
    once_steps = reminder_steps(once)
    for inv, steps in once_steps.items():
        assert len(steps) == 1, f"{inv}: one run sent several steps {steps}"
    for a in once.actions:
        assert a.key not in sent_before
    # ... and they differ only by `superseded` (or a step held back by min_gap / max_reminders).
    held_or_superseded = {
        sk.key: sk.code
        for sk in once.skipped
        if sk.key and sk.code in (SkipCode.SUPERSEDED, SkipCode.MIN_GAP, SkipCode.MAX_REMINDERS)
    }
    once_keys = {a.key for a in once.actions}
    for (conn, inv_id), steps in daily_steps.items():
        for step in steps:
            key = f"reminder:{conn}:{inv_id}:{step}"
            assert key in once_keys or key in held_or_superseded, (
                f"D1={d1} D2={d2}: {key} sent day by day, but the one run neither sends it nor skips it as "
                "superseded / min_gap / max_reminders"
            )
    # The day-by-day run's own evaluation on D2: the steps it holds back there.
    daily_held = {
        sk.key: sk.code
        for sk in last_plan.skipped
        if sk.key and sk.code in (SkipCode.MIN_GAP, SkipCode.MAX_REMINDERS, SkipCode.SUPERSEDED)
    }
    sent_daily = {f"reminder:{c}:{i}:{n}" for (c, i), steps in daily_steps.items() for n in steps}
    for (conn, inv_id), steps in once_steps.items():
        key = f"reminder:{conn}:{inv_id}:{steps[0]}"
        assert key in sent_daily or key in daily_held, (
            f"D1={d1} D2={d2}: the one run sends {key}; day by day neither sent it nor holds it back"
        )


# --------------------------------------------------------------------------- 5. moving today forward


@given(scenarios(with_renegotiations=False), st.integers(1, 400))
def test_invariant_5_moving_today_forward_never_removes_an_owed_fee(s: Scenario, days: int) -> None:
    t1, t2 = s.today, s.today + timedelta(days=days)
    earlier = fees_of(s.evaluate(today=t1))
    later = fees_of(s.evaluate(today=t2))
    lost = {k: v for k, v in earlier.items() if later.get(k) != v}
    assert not lost, f"T1={t1} T2={t2}: owed at T1 {lost}, at T2 { ({k: later.get(k) for k in lost}) }"


# --------------------------------------------------------------------------- 6. minor-unit places


def _places_pattern(currency: str) -> re.Pattern[str]:
    places = minor_units(currency)
    return re.compile(r"-?\d+" if places == 0 else rf"-?\d+\.\d{{{places}}}")


@given(scenarios())
def test_invariant_6_every_amount_has_exactly_the_currency_minor_unit_places(s: Scenario) -> None:
    plan = s.evaluate()
    fee_currencies: set[str] = set()
    for a in plan.actions:
        cur = a.invoice.currency
        if a.kind is ActionKind.LATE_FEE:
            assert a.amount is not None, a.key
            fee_currencies.add(cur)
        if a.amount is not None:
            assert isinstance(a.amount, Decimal), (a.key, type(a.amount))
            exponent = a.amount.as_tuple().exponent
            assert exponent == -minor_units(cur), f"{a.key}: {a.amount!r} in {cur}"
    data = plan.to_dict()
    for a in data["actions"]:
        pattern = _places_pattern(a["invoice"]["currency"])
        for name, value in (
            ("amount", a.get("amount")),
            ("total", a["invoice"]["total"]),
            ("amount_due", a["invoice"]["amount_due"]),
        ):
            if value is not None:
                assert isinstance(value, str) and pattern.fullmatch(value), f"{a['key']}: {name} = {value!r}"
    totals = data["summary"]["late_fee_total"]
    assert set(totals) == fee_currencies
    for cur, value in totals.items():
        assert _places_pattern(cur).fullmatch(value), f"summary late_fee_total {cur} = {value!r}"


# --------------------------------------------------------------------------- 7. deterministic


@given(scenarios(), st.randoms(use_true_random=False))
def test_invariant_7_deterministic_same_input_same_bytes(s: Scenario, rnd: random.Random) -> None:
    """Twice the same bytes; and the same whatever the order of the invoices, the history and the requests."""
    first = s.evaluate().to_json()
    assert s.evaluate().to_json() == first
    invoices, history, requests = list(s.invoices), list(s.history), list(s.renegotiations)
    rnd.shuffle(invoices)
    assert s.evaluate(invoices=invoices).to_json() == first, "the invoice order changed the plan"
    rnd.shuffle(history)
    requests = _interleaved(requests, s.invoices, rnd)
    assert s.evaluate(invoices=invoices, history=history, renegotiations=requests).to_json() == first, (
        "the order of the history / renegotiation requests changed the plan"
    )


def _interleaved(requests: list[RenegotiationRequest], invoices: tuple[Invoice, ...], rnd: random.Random) -> list:
    """The requests shuffled, except that those on one invoice keep their order: it is their identity (POLICY §6)."""
    ids = {(inv.connection, inv.number): inv.id for inv in invoices}
    groups: dict[tuple[str, str | None], list[RenegotiationRequest]] = {}
    for r in requests:
        invoice = r.invoice_id or ids.get((r.connection, r.invoice_number or ""), r.invoice_number)
        groups.setdefault((r.connection, invoice), []).append(r)
    lanes = [list(reversed(g)) for g in groups.values()]
    out: list[RenegotiationRequest] = []
    while lanes:
        lane = rnd.choice(lanes)
        out.append(lane.pop())
        if not lane:
            lanes.remove(lane)
    return out


# --------------------------------------------------------------------------- the estimate check (docs/policy.md §2.1)


@given(scenarios(), st.randoms(use_true_random=False))
def test_never_a_reminder_or_fee_on_an_invoice_over_its_estimate_tolerance(s: Scenario, rnd: random.Random) -> None:
    """Estimates somewhere below, at and above each invoice's total, and tolerances on some contracts: no
    reminder or fee ever goes out on an invoice that bills more than its estimate plus the governing contract's
    tolerance; with the check off everywhere the plan is what it was without estimates."""
    from dataclasses import replace

    from bridge.model import Estimate

    invoices = []
    for inv in s.invoices:
        if rnd.random() < 0.7:
            factor = Decimal(rnd.choice(["0", "0.5", "0.8", "0.9", "0.95", "1", "1.2"]))
            agreed = (inv.total * factor).quantize(Decimal("0.01"))
            inv = replace(inv, estimate=Estimate(number=f"EST-{inv.id}", total=agreed))
        invoices.append(inv)
    plain = Terms(contracts=s.terms.contracts, hold=s.terms.hold, exclude=s.terms.exclude, fee_modes=s.terms.fee_modes)
    checked = plain.model_copy(
        update={
            "contracts": tuple(
                c.model_copy(update={"estimate_tolerance_percent": Decimal(rnd.choice(["0", "5", "10", "25"]))})
                if rnd.random() < 0.7
                else c
                for c in plain.contracts
            )
        }
    )
    plan = evaluate(invoices, checked, list(s.history), list(s.renegotiations), s.today)
    by_key = {inv_key(inv): inv for inv in invoices}
    for a in plan.actions:
        if a.kind not in (ActionKind.REMINDER, ActionKind.LATE_FEE):
            continue
        inv, contract = by_key[action_inv_key(a)], contract_named(checked, a.clause)
        tolerance = contract.estimate_tolerance_percent
        if tolerance is not None and inv.estimate is not None:
            assert inv.total <= inv.estimate.total * (1 + tolerance / 100), (a.key, inv.total, inv.estimate, tolerance)
    unchecked = evaluate(invoices, plain, list(s.history), list(s.renegotiations), s.today)
    assert unchecked.to_json() == s.evaluate().to_json()


def _raw_estimate(provider: str, est_id: int, number: str, total: Decimal, currency: str, agreed: bool) -> dict:
    """An estimate as each provider sends it, and the link an invoice made from it carries."""
    if provider == "quickbooks":
        status = "Closed" if agreed else random.Random(est_id).choice(["Pending", "Rejected"])
        return {"Id": str(est_id), "DocNumber": number, "TxnStatus": status, "TotalAmt": str(total),
                "CurrencyRef": {"value": currency}}  # fmt: skip
    if provider == "xero":
        status = "INVOICED" if agreed else random.Random(est_id).choice(["DRAFT", "SENT", "DECLINED"])
        return {"QuoteID": f"q-{est_id}", "QuoteNumber": number, "Status": status, "Total": str(total),
                "CurrencyCode": currency}  # fmt: skip
    ui = "invoiced" if agreed else random.Random(est_id).choice(["draft", "sent", "declined"])
    return {"id": est_id, "estimate_number": number, "ui_status": ui, "amount": {"amount": str(total),
            "code": currency}}  # fmt: skip


def _invoice_link(provider: str, raw_estimate: dict) -> tuple[str, ...]:
    from bridge.mapping import freshbooks, quickbooks, xero

    if provider == "quickbooks":
        return quickbooks.estimate_links({"LinkedTxn": [{"TxnId": raw_estimate["Id"], "TxnType": "Estimate"}]})
    if provider == "xero":  # the invoice's Reference names the quote by its number
        return xero.map_invoice(_xero_invoice(raw_estimate["QuoteNumber"]), "c", {}).estimate_keys
    return freshbooks.estimate_links({"estimateid": raw_estimate["id"]})


def _xero_invoice(reference: str) -> dict:
    return {"InvoiceID": "i", "Status": "AUTHORISED", "CurrencyCode": "USD", "Total": "1", "AmountDue": "1",
            "Contact": {"ContactID": "c"}, "Type": "ACCREC", "Reference": reference}  # fmt: skip


@given(scenarios(), st.randoms(use_true_random=False))
def test_never_a_reminder_or_fee_on_an_invoice_over_its_pulled_estimates(s: Scenario, rnd: random.Random) -> None:
    """The same, through the way a sync gets there: estimates in each provider's own shape (accepted or not, in
    the invoice's currency or not), mapped by the provider's mapping, linked the provider's way and attached by
    `attach_estimates` as the read cache is. No reminder or fee goes out on an invoice whose total is over what
    its accepted estimates in its currency agreed plus the tolerance; an invoice without one is planned as if
    the check were off."""
    from dataclasses import replace

    from bridge.mapping import freshbooks, quickbooks, xero
    from bridge.mapping.common import attach_estimates

    mappings = {"quickbooks": quickbooks, "xero": xero, "freshbooks": freshbooks}
    records, invoices, agreed_of = [], [], {}
    for n, inv in enumerate(s.invoices):
        keys: tuple[str, ...] = ()
        agreed = Decimal(0)
        for k in range(rnd.choice([0, 0, 1, 1, 2])):
            provider = rnd.choice(sorted(mappings))
            accepted = rnd.random() < 0.8
            currency = inv.currency if rnd.random() < 0.9 else ("EUR" if inv.currency != "EUR" else "USD")
            factor = Decimal(rnd.choice(["0", "0.4", "0.8", "0.9", "1", "1.3"]))
            total = (inv.total * factor).quantize(quantum(inv.currency), ROUND_DOWN).quantize(quantum(currency))
            raw = _raw_estimate(provider, 1000 * n + k + 1, f"E{n}-{k}", total, currency, accepted)
            records.append(mappings[provider].map_estimate(raw, inv.connection))
            keys += _invoice_link(provider, raw)
            if accepted and currency == inv.currency:
                agreed += total
                agreed_of[inv_key(inv)] = agreed
        invoices.append(replace(inv, estimate_keys=keys))
    checked = s.terms.model_copy(
        update={
            "contracts": tuple(
                c.model_copy(update={"estimate_tolerance_percent": Decimal(rnd.choice(["0", "10", "25"]))})
                for c in s.terms.contracts
            )
        }
    )
    attached = attach_estimates(invoices, records)
    plan = evaluate(attached, checked, list(s.history), list(s.renegotiations), s.today)
    by_key = {inv_key(inv): inv for inv in attached}
    for a in plan.actions:
        if a.kind not in (ActionKind.REMINDER, ActionKind.LATE_FEE):
            continue
        inv = by_key[action_inv_key(a)]
        tolerance = contract_named(checked, a.clause).estimate_tolerance_percent
        assert tolerance is not None
        if inv_key(inv) in agreed_of:
            assert inv.estimate is not None and inv.estimate.total == agreed_of[inv_key(inv)]
            assert inv.total <= agreed_of[inv_key(inv)] * (1 + tolerance / 100), (a.key, inv.total, inv.estimate)
        else:
            assert inv.estimate is None
    without = [i for i in attached if inv_key(i) not in agreed_of]
    assert all(i.estimate is None for i in without)
