"""docs/policy.md §8, step by step: contract `standard`, INV-1001, USD 2,000.00 due 2026-09-07, 500.00 paid 09-20."""

from __future__ import annotations

from decimal import Decimal

from tests.builders import LineItem, amounts, applied, by_key, invoice, keys, run, skip_codes

KEY = "acme:1001"


def before_payment():
    return invoice("INV-1001")


def after_payment(*fee_lines: LineItem):
    return invoice("INV-1001", paid=[("2026-09-20", "500.00")], lines=fee_lines)


def test_fri_09_04_upcoming_reminder_step_1():
    plan = run(before_payment(), "2026-09-04")
    assert keys(plan) == [f"reminder:{KEY}:1"]
    action = by_key(plan)[f"reminder:{KEY}:1"]
    assert action.message == "upcoming"
    assert action.step_date.isoformat() == "2026-09-04"
    assert action.clause == "contracts.standard.reminders"


def test_sat_09_12_reminder_step_2_and_first_fee_on_the_full_balance():
    history = [applied(f"reminder:{KEY}:1", "2026-09-04")]
    plan = run(before_payment(), "2026-09-12", history=history)
    assert keys(plan) == [f"late_fee:{KEY}:1", f"reminder:{KEY}:2"]
    reminder = by_key(plan)[f"reminder:{KEY}:2"]
    assert reminder.message == "overdue" and reminder.step_date.isoformat() == "2026-09-08"
    assert amounts(plan) == {f"late_fee:{KEY}:1": "30.00"}
    fee = by_key(plan)[f"late_fee:{KEY}:1"]
    assert fee.occurrence_date.isoformat() == "2026-09-12"
    assert fee.clause == "contracts.standard.late_fee"
    assert fee.reason == "occurrence 1 fell on 2026-09-12: 1.5% of 2000.00"


def test_tue_10_20_one_reminder_step_5_steps_3_and_4_superseded_and_fee_on_1500():
    history = [
        applied(f"reminder:{KEY}:1", "2026-09-04"),
        applied(f"reminder:{KEY}:2", "2026-09-12"),
        applied(f"late_fee:{KEY}:1", "2026-09-12", "30.00"),
    ]
    own_line = LineItem(
        item="Late Fee", description="Late fee (no. 1, 2026-09-12) on invoice INV-1001", amount=Decimal("30.00")
    )
    for inv in (after_payment(), after_payment(own_line)):
        plan = run(inv, "2026-10-20", history=history)
        assert keys(plan) == [f"late_fee:{KEY}:2", f"reminder:{KEY}:5"]
        assert amounts(plan) == {f"late_fee:{KEY}:2": "22.50"}
        assert skip_codes(plan) == {f"reminder:{KEY}:3": "superseded", f"reminder:{KEY}:4": "superseded"}
        assert [w.code for w in plan.warnings] == ["provider_email_template"]  # the bridge's own line is not foreign


def test_cap_10_percent_of_2000_cuts_occurrence_9_and_stops_at_10():
    history = [applied(f"late_fee:{KEY}:1", "2026-09-12", "30.00"), applied(f"late_fee:{KEY}:2", "2026-10-12", "22.50")]
    # Occurrence 12 (the last under max_occurrences) falls on 2026-09-12 + 11 * 30 days = 2027-08-08.
    plan = run(after_payment(), "2027-08-08", history=history)
    fees = amounts(plan)
    assert fees == {
        **{f"late_fee:{KEY}:{k}": "22.50" for k in range(3, 9)},
        f"late_fee:{KEY}:9": "12.50",
    }
    assert 30 + 22.5 * 7 == 187.5  # running total after occurrence 8, as docs/policy.md says
    assert sum(Decimal(v) for v in fees.values()) + Decimal("52.50") == Decimal("200.00")
    codes = skip_codes(plan)
    assert [codes[f"late_fee:{KEY}:{k}"] for k in (10, 11, 12)] == ["cap_reached"] * 3
