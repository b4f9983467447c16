"""docs/policy.md §6 — one-time schedule renegotiation per project."""

from __future__ import annotations

from bridge.model import Customer, RenegotiationRequest
from bridge.policies.renegotiation import decide
from tests.builders import D, applied, by_key, contract, invoice, keys, run, terms

NO_REMINDERS = {"schedule": []}
BOB = Customer(id="9", name="Bob's Barn", email="bob@example.com")


def ask(invoice_id: str, new_due: str, on: str = "2026-09-01", **kw: object) -> RenegotiationRequest:
    return RenegotiationRequest(
        connection="acme", invoice_id=invoice_id, requested_on=D(on), new_due_date=D(new_due), **kw
    )


def plain(**settings: object):
    return terms(contract(reminders=NO_REMINDERS, **settings))


def refusals(plan) -> dict[str, str]:
    return {a.invoice.number: a.refusal_reason for a in plan.actions if a.kind == "renegotiation_refused"}


def test_6_an_accepted_request_plans_update_due_date_and_later_dates_run_from_it():
    plan = run(invoice("INV-1"), "2026-09-01", terms_=plain(), renegotiations=[ask("1", "2026-10-01")])
    (action,) = plan.actions
    assert action.key == "renegotiation:acme:1" and action.kind == "update_due_date"
    assert action.new_due_date == D("2026-10-01") and action.clause == "contracts.standard.renegotiation"
    assert "October 1, 2026" in action.body
    recorded = [applied(action.key, "2026-09-01")]
    t = terms(contract(late_fee={"percent": "1.5"}, reminders={"schedule": [1]}))
    later = run(invoice("INV-1"), "2026-10-02", terms_=t, renegotiations=[ask("1", "2026-10-01")], history=recorded)
    assert keys(later) == ["late_fee:acme:1:1", "reminder:acme:1:1"]
    assert by_key(later)["late_fee:acme:1:1"].occurrence_date == D("2026-10-01")


def test_6_fees_already_charged_stay_after_a_renegotiation():
    t = terms(contract(reminders=NO_REMINDERS, late_fee={"percent": "1.5"}))
    history = [applied("late_fee:acme:1:1", "2026-09-07", "30.00")]
    plan = run(
        invoice("INV-1"),
        "2026-09-10",
        terms_=t,
        history=history,
        renegotiations=[ask("1", "2026-09-30", on="2026-09-10")],
    )
    assert keys(plan) == ["renegotiation:acme:1"]  # occurrence 1 is neither charged again nor refunded


def test_6_limit_reached_cites_the_clause_and_the_earlier_renegotiation():
    invoices = [invoice("INV-1"), invoice("INV-2", due="2026-09-14")]
    requests = [ask("1", "2026-09-20", on="2026-09-01"), ask("2", "2026-09-30", on="2026-09-05")]
    plan = run(invoices, "2026-09-05", terms_=plain(), renegotiations=requests)
    assert keys(plan) == ["renegotiation:acme:1", "renegotiation_refused:acme:2:1"]
    refused = by_key(plan)["renegotiation_refused:acme:2:1"]
    assert refused.refusal_reason == "limit_reached"
    assert refused.clause == "contracts.standard.renegotiation.max_per_project"
    assert "INV-1" in refused.reason and "2026-09-01" in refused.reason
    assert "INV-1" in refused.body and "September 1, 2026" in refused.body
    assert refused.requested_due_date == D("2026-09-30")


def test_6_project_key_invoice_makes_each_invoice_its_own_project():
    invoices = [invoice("INV-1"), invoice("INV-2", due="2026-09-14")]
    requests = [ask("1", "2026-09-20"), ask("2", "2026-09-30")]
    plan = run(invoices, "2026-09-05", terms_=plain(project_key="invoice"), renegotiations=requests)
    assert keys(plan) == ["renegotiation:acme:1", "renegotiation:acme:2"]


def test_6_project_key_provider_uses_the_invoices_project_else_the_customer():
    invoices = [
        invoice("INV-1", project="P-7"),
        invoice("INV-2", project="P-7"),
        invoice("INV-3", project="P-8"),
        invoice("INV-4", customer=BOB),
        invoice("INV-5", customer=BOB),
    ]
    requests = [ask(str(i), "2026-09-20", on=f"2026-09-0{i}") for i in range(1, 6)]
    plan = run(invoices, "2026-09-06", terms_=plain(project_key="provider"), renegotiations=requests)
    assert refusals(plan) == {"INV-2": "limit_reached", "INV-5": "limit_reached"}
    assert {a.invoice.number for a in plan.actions if a.kind == "update_due_date"} == {"INV-1", "INV-3", "INV-4"}


def test_6_project_key_customer_counts_all_of_a_customers_invoices():
    invoices = [invoice("INV-1"), invoice("INV-2"), invoice("INV-3", customer=BOB)]
    requests = [
        ask("1", "2026-09-20", on="2026-09-01"),
        ask("2", "2026-09-20", on="2026-09-02"),
        ask("3", "2026-09-20"),
    ]
    plan = run(invoices, "2026-09-05", terms_=plain(), renegotiations=requests)
    assert refusals(plan) == {"INV-2": "limit_reached"}


def test_6_max_per_project_allows_more_than_one():
    invoices = [invoice("INV-1"), invoice("INV-2")]
    requests = [ask("1", "2026-09-20", on="2026-09-01"), ask("2", "2026-09-20", on="2026-09-02")]
    plan = run(invoices, "2026-09-05", terms_=plain(renegotiation={"max_per_project": 2}), renegotiations=requests)
    assert not refusals(plan)


def test_6_the_new_date_may_be_at_most_max_extension_days_after_the_original_due_date():
    ok = run(invoice("INV-1"), "2026-09-01", terms_=plain(), renegotiations=[ask("1", "2026-10-07")])
    assert keys(ok) == ["renegotiation:acme:1"]  # 09-07 + 30 days exactly
    too_long = run(invoice("INV-1"), "2026-09-01", terms_=plain(), renegotiations=[ask("1", "2026-10-08")])
    assert refusals(too_long) == {"INV-1": "extension_too_long"}
    assert too_long.actions[0].clause == "contracts.standard.renegotiation.max_extension_days"
    assert "30 days" in too_long.actions[0].body


def test_6_the_new_date_must_be_after_the_current_effective_due_date():
    plan = run(invoice("INV-1"), "2026-09-01", terms_=plain(), renegotiations=[ask("1", "2026-09-07")])
    assert refusals(plan) == {"INV-1": "not_later"}


def test_6_a_request_on_an_invoice_that_is_not_open_is_refused_not_open():
    paid = invoice("INV-1", paid=[("2026-09-01", "2000.00")])
    record, why = decide(ask("1", "2026-09-20"), paid, contract(), [], [], D("2026-09-02"))
    assert record.status == "refused" and record.reason == "not_open" and "paid" in why
    # evaluate takes no action on a closed invoice (invariant 1); the request is reported as a skip
    plan = run(paid, "2026-09-02", terms_=plain(), renegotiations=[ask("1", "2026-09-20")])
    assert not plan.actions and any("renegotiation" in s.detail for s in plan.skipped)


def test_6_a_refusal_restates_the_terms_politely():
    invoices = [invoice("INV-1"), invoice("INV-2")]
    requests = [ask("1", "2026-09-20", on="2026-09-01"), ask("2", "2026-09-20", on="2026-09-02")]
    refused = run(invoices, "2026-09-05", terms_=plain(), renegotiations=requests).actions[-1]
    assert "once" in refused.body and "30 days" in refused.body
    assert refused.subject and "\n" not in refused.subject


def test_6_decided_requests_are_replayed_not_decided_again_and_applied_ones_not_repeated():
    accepted = ask(
        "1", "2026-09-20", status="accepted", original_due_date=D("2026-09-07"), project="standard:customer:acme:3"
    )
    plan = run(invoice("INV-1", due="2026-09-20"), "2026-09-05", terms_=plain(), renegotiations=[accepted])
    assert keys(plan) == ["renegotiation:acme:1"]  # not yet written back
    done = [applied("renegotiation:acme:1", "2026-09-01")]
    assert not run(
        invoice("INV-1", due="2026-09-20"), "2026-09-05", terms_=plain(), renegotiations=[accepted], history=done
    ).actions
    # the extension limit still counts from the original due date, not the written-back one
    second = ask("1", "2026-10-10", on="2026-09-06")
    t = plain(renegotiation={"max_per_project": 2})
    plan = run(
        invoice("INV-1", due="2026-09-20"), "2026-09-06", terms_=t, renegotiations=[accepted, second], history=done
    )
    assert refusals(plan) == {"INV-1": "extension_too_long"}


def test_6_a_request_is_decided_only_once_it_has_been_made():
    plan = run(invoice("INV-1"), "2026-08-31", terms_=plain(), renegotiations=[ask("1", "2026-09-20", on="2026-09-01")])
    assert not plan.actions


def test_6_a_contract_allowing_no_renegotiation_refuses_with_limit_reached():
    plan = run(
        invoice("INV-1"),
        "2026-09-01",
        terms_=plain(renegotiation={"max_per_project": 0}),
        renegotiations=[ask("1", "2026-09-20")],
    )
    assert refusals(plan) == {"INV-1": "limit_reached"}
    assert "max_per_project = 0" in plan.actions[0].reason
