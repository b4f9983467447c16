"""docs/policy.md §1 (how an invoice finds its contract), §2 (which invoices are in scope), §3 (effective due)."""

from __future__ import annotations

from decimal import Decimal

from bridge.model import Customer, InvoiceStatus, RenegotiationRequest
from bridge.policies.terms import Exclude, Hold
from tests.builders import D, by_key, contract, invoice, invoice_skips, keys, run, skip_codes, standard, terms

ZED = Customer(id="7", name="Zed Ltd", email="Pay@Zed.example")
AMY = Customer(id="3", name="Amy's Bird Sanctuary", email="birds@example.com")


# §1 — contracts and matching


def test_1_first_contract_in_file_order_whose_applies_to_matches_wins():
    t = terms(contract("retainer", applies_to=["Zed Ltd"]), contract("standard"))
    plan = run([invoice("INV-1", customer=ZED), invoice("INV-2", customer=AMY)], "2026-09-04", terms_=t)
    assert {a.invoice.number: a.clause for a in plan.actions} == {
        "INV-1": "contracts.retainer.reminders",
        "INV-2": "contracts.standard.reminders",
    }


def test_1_applies_to_matches_customer_id_name_or_email():
    for token in ["7", "Zed Ltd", "zed ltd", "pay@zed.example"]:
        t = terms(contract("retainer", applies_to=[token]))
        plan = run(invoice("INV-1", customer=ZED), "2026-09-04", terms_=t)
        assert keys(plan) == ["reminder:acme:1:1"], token


def test_1_an_invoice_no_contract_matches_is_skipped_no_contract():
    t = terms(contract("retainer", applies_to=["someone else"]))
    plan = run(invoice("INV-1", customer=ZED), "2026-09-04", terms_=t)
    assert not plan.actions
    assert skip_codes(plan) == {"INV-1": "no_contract"}
    assert plan.skipped[0].clause == "contracts"


def test_1_every_action_and_skip_names_its_clause():
    plan = run(
        [invoice("INV-1"), invoice("INV-2", status=InvoiceStatus.OPEN, paid=[], total="0.001")],
        "2026-10-20",
    )
    assert plan.actions
    assert all(a.clause.startswith("contracts.standard.") for a in plan.actions)
    assert all(s.clause for s in plan.skipped if s.code.value not in ("paid", "void", "draft"))


# §2 — scope, checked in order; the first rule that fails names the skip


def test_2_1_drafts_voids_deleted_and_paid_invoices_are_skipped():
    plan = run(
        [
            invoice("INV-1", status=InvoiceStatus.DRAFT),
            invoice("INV-2", status=InvoiceStatus.VOID),
            invoice("INV-3", status=InvoiceStatus.DELETED),
            invoice("INV-4", paid=[("2026-09-01", "2000.00")]),
        ],
        "2026-10-20",
    )
    assert not plan.actions
    assert skip_codes(plan) == {"INV-1": "draft", "INV-2": "void", "INV-3": "void", "INV-4": "paid"}


def test_2_1_a_bill_is_not_a_sales_invoice():
    plan = run(invoice("INV-1", is_sale=False), "2026-10-20")
    assert skip_codes(plan) == {"INV-1": "not_a_sale"}


def test_2_2_an_invoice_without_a_due_date_is_skipped():
    plan = run(invoice("INV-1", due=None), "2026-10-20")
    assert skip_codes(plan) == {"INV-1": "no_due_date"}


def test_2_3_disputed_or_held_invoices_and_customers_are_on_hold():
    hold = Hold(invoices=("INV-2",), customers=("birds@example.com",))
    t = terms(standard(), hold=hold)
    plan = run(
        [
            invoice("INV-1", customer=ZED, disputed=True),
            invoice("INV-2", customer=ZED),
            invoice("INV-3", customer=AMY),
            invoice("INV-4", customer=ZED),
        ],
        "2026-10-20",
        terms_=t,
    )
    assert invoice_skips(plan) == {"INV-1": "on_hold", "INV-2": "on_hold", "INV-3": "on_hold"}
    assert {a.invoice.number for a in plan.actions} == {"INV-4"}
    clauses = {s.invoice: s.clause for s in plan.skipped}
    assert clauses["INV-2"] == "hold.invoices" and clauses["INV-3"] == "hold.customers"


def test_2_4_excluded_customers_are_skipped():
    t = terms(standard(), exclude=Exclude(customers=("Zed Ltd",)))
    plan = run([invoice("INV-1", customer=ZED), invoice("INV-2", customer=AMY)], "2026-10-20", terms_=t)
    assert invoice_skips(plan) == {"INV-1": "excluded"}


def test_2_6_a_balance_below_min_balance_is_skipped():
    t = terms(contract(reminders={"min_balance": "5.00"}, late_fee={"percent": "1.5"}))
    plan = run(invoice("INV-1", paid=[("2026-09-01", "1995.01")]), "2026-10-20", terms_=t)
    assert skip_codes(plan) == {"INV-1": "below_min_balance"}
    assert plan.skipped[0].clause == "contracts.standard.reminders.min_balance"


def test_2_checks_run_in_order_and_the_first_failure_names_the_skip():
    t = terms(standard(), hold=Hold(customers=("3",)), exclude=Exclude(customers=("3",)))
    plan = run(
        [
            invoice("INV-1", status=InvoiceStatus.PAID, disputed=True),  # paid before on_hold
            invoice("INV-2", due=None, disputed=True),  # no_due_date before on_hold
            invoice("INV-3"),  # on_hold before excluded
        ],
        "2026-10-20",
        terms_=t,
    )
    assert skip_codes(plan) == {"INV-1": "paid", "INV-2": "no_due_date", "INV-3": "on_hold"}


def test_2_paid_invoices_get_no_reminder_even_when_a_step_is_due():
    plan = run(invoice("INV-1", paid=[("2026-09-10", "2000.00")]), "2026-09-14")
    assert not plan.actions and skip_codes(plan) == {"INV-1": "paid"}


# §3 — effective due date


def test_3_an_accepted_renegotiation_moves_the_dates_reminders_and_fees_run_from():
    accepted = RenegotiationRequest(
        connection="acme",
        invoice_id="1",
        requested_on=D("2026-09-01"),
        new_due_date=D("2026-10-01"),
        status="accepted",
        original_due_date=D("2026-09-07"),
    )
    # On 09-12 the original due date would call for reminder step 2 and fee occurrence 1.
    plan = run(invoice("INV-1"), "2026-09-12", renegotiations=[accepted])
    assert keys(plan) == ["renegotiation:acme:1"]
    # Reminder step 1 falls on 10-01 - 3 = 09-28 (Mon); fee occurrence 1 on 10-06.
    plan = run(invoice("INV-1"), "2026-10-06", renegotiations=[accepted], history=[])
    actions = by_key(plan)
    assert actions["reminder:acme:1:2"].step_date == D("2026-10-02")
    assert actions["late_fee:acme:1:1"].occurrence_date == D("2026-10-06")
    assert actions["late_fee:acme:1:1"].invoice.effective_due_date == D("2026-10-01")


# §2.1 — the estimate check


def _estimated(total: str, estimate: str, **extra: object) -> object:
    from bridge.model import Estimate

    return invoice("INV-1", total=total, estimate=Estimate(number="EST-7", total=Decimal(estimate)), **extra)


def test_2_1_an_invoice_over_its_estimate_tolerance_gets_no_reminder_or_fee_and_a_warning_names_both_amounts():
    t = terms(standard().model_copy(update={"estimate_tolerance_percent": Decimal("10")}))
    plan = run(_estimated("1200.00", "1000.00"), "2026-10-20", terms_=t)
    assert not plan.actions
    assert invoice_skips(plan) == {"INV-1": "exceeds_estimate"}
    skip = plan.skipped[0]
    assert skip.clause == "contracts.standard.estimate_tolerance_percent"
    assert skip.detail == (
        "invoice total 1200.00 USD is 20.0% over estimate EST-7 (1000.00 USD); the contract tolerates 10%"
    )
    [warning] = [w for w in plan.warnings if w.code == "exceeds_estimate"]
    assert "1200.00 USD" in warning.detail and "1000.00 USD" in warning.detail
    assert "talk to the client" in warning.detail


def test_2_1_within_tolerance_without_an_estimate_or_with_the_check_off_it_is_chased_as_usual():
    on = terms(standard().model_copy(update={"estimate_tolerance_percent": Decimal("10")}))
    usual = keys(run(invoice("INV-1", total="1100.00"), "2026-10-20"))
    assert usual, "the §8 contract chases this invoice"
    assert keys(run(_estimated("1100.00", "1000.00"), "2026-10-20", terms_=on)) == usual  # exactly +10%: within
    assert keys(run(invoice("INV-1", total="1100.00"), "2026-10-20", terms_=on)) == usual  # no estimate
    assert keys(run(_estimated("1100.00", "900.00"), "2026-10-20")) == usual  # the check is off by default


def test_2_1_a_renegotiation_request_is_still_decided_on_an_invoice_over_its_estimate():
    on = terms(standard().model_copy(update={"estimate_tolerance_percent": Decimal("0")}))
    request = RenegotiationRequest(
        connection="acme", invoice_number="INV-1", requested_on=D("2026-09-01"), new_due_date=D("2026-09-20")
    )
    plan = run(_estimated("1001.00", "1000.00", due="2026-09-07"), "2026-09-02", terms_=on, renegotiations=[request])
    assert [a.kind.value for a in plan.actions] == ["update_due_date"]
    assert invoice_skips(plan)["INV-1"] == "exceeds_estimate"
