"""docs/policy.md §4 — reminders: schedule, repeats, business days, catch-up, min gap, max count, messages."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from bridge.policies.reminders import latest_due_step, step_at
from bridge.policies.terms import Reminders
from tests.builders import D, applied, by_key, contract, invoice, keys, run, skip_codes, terms

DUE = D("2026-09-07")  # a Monday


def test_4_schedule_must_be_strictly_increasing():
    with pytest.raises(ValidationError, match="strictly increasing"):
        Reminders(schedule=(1, 1, 7))
    with pytest.raises(ValidationError, match="strictly increasing"):
        Reminders(schedule=(7, 1))


def test_4_step_i_falls_on_effective_due_plus_schedule_offset():
    r = Reminders()
    assert [step_at(DUE, r, i).date.isoformat() for i in range(1, 6)] == [
        "2026-09-04",
        "2026-09-08",
        "2026-09-14",
        "2026-09-21",
        "2026-10-07",
    ]


def test_4_repeats_continue_the_count_from_the_last_step_before_its_business_day_shift():
    r = Reminders(schedule=(1,), repeat_every_days=10)
    due = D("2026-09-04")  # Fri: step 1 on Sat 09-05 moves to Mon 09-07
    assert step_at(due, r, 1).date == D("2026-09-07")
    assert step_at(due, r, 2).raw_date == D("2026-09-15")  # 09-05 + 10, not 09-07 + 10
    assert step_at(due, r, 3).raw_date == D("2026-09-25")


def test_4_repeat_every_days_zero_means_no_repeats_after_the_schedule():
    r = Reminders(schedule=(1, 7), repeat_every_days=0)
    assert latest_due_step(DUE, r, D("2027-09-07")).number == 2  # type: ignore[union-attr]
    r = Reminders(schedule=(1, 7), repeat_every_days=30)
    assert latest_due_step(DUE, r, D("2026-10-14")).number == 3  # type: ignore[union-attr]


def test_4_business_days_move_weekend_steps_to_monday():
    r = Reminders(schedule=(5,))
    assert step_at(DUE, r, 1).date == D("2026-09-14")  # Sat 09-12 -> Mon 09-14
    plain = Reminders(schedule=(5,), business_days=False)
    assert step_at(DUE, plain, 1).date == D("2026-09-12")


def test_4_holidays_move_steps_to_the_next_business_day():
    r = Reminders(schedule=(1,), holidays="US")
    assert step_at(D("2026-11-25"), r, 1).date == D("2026-11-27")  # Thanksgiving Thu 11-26 -> Fri
    assert step_at(D("2026-09-04"), r, 1).date == D("2026-09-08")  # Sat -> Mon is Labor Day -> Tue
    assert step_at(D("2026-11-25"), Reminders(schedule=(1,)), 1).date == D("2026-11-26")


def test_4_a_step_is_due_only_when_its_shifted_date_has_come():
    t = terms(contract(reminders={"schedule": [1]}))
    friday_due = invoice("INV-1", due="2026-09-04")
    assert not run(friday_due, "2026-09-05", terms_=t).actions  # Saturday: step moved to Monday
    assert keys(run(friday_due, "2026-09-07", terms_=t)) == ["reminder:acme:1:1"]


def test_4_at_most_one_reminder_the_latest_due_step_earlier_ones_superseded():
    plan = run(invoice("INV-1"), "2026-10-20")
    assert keys(plan, "reminder") == ["reminder:acme:1:5"]
    assert skip_codes(plan) == {f"reminder:acme:1:{n}": "superseded" for n in range(1, 5)}


def test_4_superseded_steps_are_never_sent_later():
    history = [applied("reminder:acme:1:5", "2026-10-20")]
    for day in ("2026-10-21", "2026-10-30", "2026-11-05"):
        assert not keys(run(invoice("INV-1"), day, history=history), "reminder")
    # The first repeat falls on 10-07 + 30 = 11-06 (Fri).
    assert keys(run(invoice("INV-1"), "2026-11-06", history=history), "reminder") == ["reminder:acme:1:6"]


def test_4_a_step_already_in_the_history_is_not_sent_again():
    history = [applied("reminder:acme:1:2", "2026-09-08")]
    assert not run(invoice("INV-1"), "2026-09-10", history=history).actions


def test_4_min_gap_days_holds_a_reminder_back():
    t = terms(contract(reminders={"schedule": [1, 3], "min_gap_days": 5}))
    history = [applied("reminder:acme:1:1", "2026-09-08")]
    plan = run(invoice("INV-1"), "2026-09-10", terms_=t, history=history)
    assert not plan.actions
    assert skip_codes(plan) == {"reminder:acme:1:2": "min_gap"}
    assert plan.skipped[0].clause == "contracts.standard.reminders.min_gap_days"
    assert keys(run(invoice("INV-1"), "2026-09-13", terms_=t, history=history)) == ["reminder:acme:1:2"]


def test_4_max_reminders_stops_reminding():
    t = terms(contract(reminders={"schedule": [1, 7, 14], "max_reminders": 2}))
    history = [applied("reminder:acme:1:1", "2026-09-08"), applied("reminder:acme:1:2", "2026-09-14")]
    plan = run(invoice("INV-1"), "2026-09-21", terms_=t, history=history)
    assert not plan.actions
    assert skip_codes(plan) == {"reminder:acme:1:3": "max_reminders"}


def test_4_steps_before_the_due_date_use_upcoming_on_or_after_use_overdue():
    t = terms(contract(reminders={"schedule": [-3, 0, 1], "min_gap_days": 0}))
    messages = {}
    history = []
    for day in ("2026-09-04", "2026-09-07", "2026-09-08"):
        plan = run(invoice("INV-1"), day, terms_=t, history=history)
        (action,) = plan.actions
        messages[action.step] = action.message
        history.append(applied(action.key, day))
    assert messages == {1: "upcoming", 2: "overdue", 3: "overdue"}


def test_4_the_message_names_customer_invoice_amount_after_this_runs_fees_due_date_days_overdue_and_the_terms():
    inv = invoice("INV-1", paid=[("2026-09-20", "500.00")], provider="freshbooks")
    plan = run(inv, "2026-10-20", history=[applied("late_fee:acme:1:1", "2026-09-12", "30.00")])
    action = by_key(plan)["reminder:acme:1:5"]
    assert action.channel == "provider" and action.to == "birds@example.com"
    assert action.sends == "contract_text" and "INV-1" in action.subject
    # Occurrence 2 (22.50 on 1,500.00) is charged in the same run, as a line, before the reminder: it states 1,522.50.
    assert by_key(plan)["late_fee:acme:1:2"].amount == Decimal("22.50")
    assert action.balance == Decimal("1522.50")
    for text in ("Amy's Bird Sanctuary", "INV-1", "$1,522.50", "September 7, 2026", "43 days", "1.5%"):
        assert text in action.body, text


def test_4_a_reminder_through_quickbooks_or_xero_shows_no_text_because_their_own_invoice_email_goes_out():
    for provider, name in (("quickbooks", "QuickBooks"), ("xero", "Xero")):
        invoices = [invoice("INV-1", provider=provider), invoice("INV-2", provider=provider)]
        plan = run(invoices, "2026-10-20")
        reminders = [a for a in plan.actions if a.kind.value == "reminder"]
        assert len(reminders) == 2
        assert all(a.sends == "provider_invoice_email" and a.subject is None and a.body is None for a in reminders)
        (warning,) = plan.warnings  # once per connection
        assert warning.code == "provider_email_template" and f"{name} sends its own invoice e-mail" in warning.detail
        assert 'reminders.channel = "smtp"' in warning.detail  # how to send the contract's own words


def test_4_the_message_uses_the_contract_locale_and_template():
    t = terms(contract(locale="de_DE", reminders={"template": "firm"}, late_fee={"percent": "1"}))
    plan = run(invoice("INV-1", currency="EUR", provider="freshbooks"), "2026-09-04", terms_=t)
    (action,) = plan.actions
    assert "2.000,00" in action.body and "€" in action.body


def test_4_action_key_is_reminder_connection_invoice_step():
    plan = run(invoice("INV-1", id="130", connection="acme-qbo"), "2026-09-04")
    assert keys(plan) == ["reminder:acme-qbo:130:1"]


def test_4_a_due_step_for_a_client_without_an_email_address_is_skipped_and_not_lost():
    from bridge.model import Customer

    nobody = Customer(id="9", name="Port & Philip Freight", email=None)
    plan = run(invoice(customer=nobody), "2026-09-15")
    assert keys(plan, "reminder") == []
    assert skip_codes(plan)["reminder:acme:1001:3"] == "no_email"
    # Once the address is there, the latest due step goes out (the catch-up rule): nothing was recorded as sent.
    later = run(invoice(), "2026-09-15")
    assert keys(later, "reminder") == ["reminder:acme:1001:3"]
