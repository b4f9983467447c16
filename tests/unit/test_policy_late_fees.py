"""docs/policy.md §5 — late fees: occurrences, base, rounding, combine, min fee, caps, fees already there, mode."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from bridge.model import Allocation, LineItem
from bridge.policies.terms import Terms
from tests.builders import D, amounts, applied, by_key, contract, invoice, keys, run, skip_codes, terms

NO_REMINDERS = {"schedule": []}


def fees(currency: str | None = None, **late_fee: object) -> Terms:
    late_fee.setdefault("percent", "1.5")
    priced = {"currency": currency} if currency else {}
    return terms(contract(reminders=NO_REMINDERS, late_fee=late_fee, **priced))


def fee_line(description: str, amount: str, item: str | None = "Late Fee", **kw: object) -> LineItem:
    return LineItem(item=item, description=description, amount=Decimal(amount), **kw)


def test_5_occurrence_k_falls_on_due_plus_grace_plus_k_minus_1_periods_without_business_day_shift():
    plan = run(invoice("INV-1"), "2026-11-11", terms_=fees(grace_days=5, every_days=30))
    dates = {a.occurrence: a.occurrence_date.isoformat() for a in plan.actions}
    assert dates == {1: "2026-09-12", 2: "2026-10-12", 3: "2026-11-11"}  # 09-12 is a Saturday: no shift
    assert not run(invoice("INV-1"), "2026-09-11", terms_=fees(grace_days=5)).actions


def test_5_every_days_zero_charges_once():
    assert keys(run(invoice("INV-1"), "2027-09-07", terms_=fees(every_days=0))) == ["late_fee:acme:1:1"]


def test_5_no_occurrence_beyond_max_occurrences():
    plan = run(invoice("INV-1"), "2027-09-07", terms_=fees(max_occurrences=2))
    assert keys(plan) == ["late_fee:acme:1:1", "late_fee:acme:1:2"]


def test_5_a_bridge_down_for_two_periods_charges_both_each_as_its_own_action_never_twice():
    t = fees(grace_days=5)
    plan = run(invoice("INV-1"), "2026-10-12", terms_=t)
    assert amounts(plan) == {"late_fee:acme:1:1": "30.00", "late_fee:acme:1:2": "30.00"}
    history = [applied(a.key, "2026-10-12", f"{a.amount}") for a in plan.actions]
    assert not run(invoice("INV-1"), "2026-10-13", terms_=t, history=history).actions


def test_5_base_is_principal_minus_payments_dated_on_or_before_the_occurrence():
    t = fees(grace_days=5)
    on_the_day = invoice("INV-1", paid=[("2026-09-12", "500.00")])
    day_after = invoice("INV-1", paid=[("2026-09-13", "500.00")])
    assert amounts(run(on_the_day, "2026-09-12", terms_=t)) == {"late_fee:acme:1:1": "22.50"}
    assert amounts(run(day_after, "2026-09-13", terms_=t)) == {"late_fee:acme:1:1": "30.00"}


def test_5_credits_reduce_the_base_like_payments():
    inv = dataclasses.replace(
        invoice("INV-1"), payments=(Allocation(date=D("2026-09-01"), amount=Decimal("1000.00"), kind="credit"),)
    )
    assert amounts(run(inv, "2026-09-07", terms_=fees())) == {"late_fee:acme:1:1": "15.00"}


def test_5_base_excludes_late_fee_lines_already_on_the_invoice():
    own = fee_line("Late fee (no. 1, 2026-09-07) on invoice INV-1", "30.00")
    history = [applied("late_fee:acme:1:1", "2026-09-07", "30.00")]
    plan = run(invoice("INV-1", lines=[own]), "2026-10-07", terms_=fees(), history=history)
    assert amounts(plan) == {"late_fee:acme:1:2": "30.00"}  # 1.5% of 2000.00, not of 2030.00


def test_5_compounding_adds_earlier_fees_to_the_base():
    t = fees(percent="10", compounding=True)
    plan = run(invoice("INV-1"), "2026-10-07", terms_=t)
    assert amounts(plan) == {"late_fee:acme:1:1": "200.00", "late_fee:acme:1:2": "220.00"}
    plain = run(invoice("INV-1"), "2026-10-07", terms_=fees(percent="10"))
    assert amounts(plain)["late_fee:acme:1:2"] == "200.00"


def test_5_an_occurrence_whose_base_is_zero_is_not_owed():
    own = fee_line("Late fee (no. 1, 2026-09-07) on invoice INV-1", "30.00")
    history = [applied("late_fee:acme:1:1", "2026-09-07", "30.00")]
    inv = invoice("INV-1", lines=[own], paid=[("2026-09-20", "2000.00")])  # only the fee is still due
    assert inv.amount_due == Decimal("30.00")
    assert not run(inv, "2026-12-01", terms_=fees(), history=history).actions


def test_5_percent_part_rounds_half_up_to_the_minor_unit():
    assert amounts(run(invoice("INV-1", total="0.50"), "2026-09-07", terms_=fees(percent="1"))) == {
        "late_fee:acme:1:1": "0.01"  # 0.005 rounds up, not to even
    }
    assert amounts(run(invoice("INV-1", total="1000.33"), "2026-09-07", terms_=fees())) == {
        "late_fee:acme:1:1": "15.00"  # 15.00495
    }


def test_5_zero_and_three_decimal_currencies_use_their_iso_4217_minor_units():
    jpy = run(invoice("INV-1", currency="JPY", total="12345"), "2026-09-07", terms_=fees("JPY", flat="25"))
    assert amounts(jpy) == {"late_fee:acme:1:1": "210"}  # 25 + 185.175 -> 25 + 185
    assert jpy.to_dict()["actions"][0]["amount"] == "210"
    kwd = run(invoice("INV-1", currency="KWD", total="1000.125"), "2026-09-07", terms_=fees())
    assert amounts(kwd) == {"late_fee:acme:1:1": "15.002"}  # 15.001875
    assert kwd.to_dict()["actions"][0]["invoice"]["total"] == "1000.125"


def test_1_currency_a_contract_amount_is_never_applied_to_an_invoice_in_another_currency():
    usd_terms = fees("USD", flat="40.00", max_total="40.00")
    for currency, total in (("JPY", "12345"), ("KWD", "1000.125"), ("IDR", "2000.00")):
        plan = run(invoice("INV-1", currency=currency, total=total), "2026-09-07", terms_=usd_terms)
        assert not plan.actions
        skipped = [(s.code.value, s.clause) for s in plan.skipped]
        assert skipped == [("currency_mismatch", "contracts.standard.currency")]
    assert amounts(run(invoice("INV-1"), "2026-09-07", terms_=usd_terms)) == {"late_fee:acme:1:1": "40.00"}


def test_1_currency_a_contract_without_currency_takes_any_currency_with_percentages_only():
    plan = run(invoice("INV-1", currency="JPY", total="12345"), "2026-09-07", terms_=fees())
    assert amounts(plan) == {"late_fee:acme:1:1": "185"}
    # min_fee then means the currency's smallest unit: 1.5% of 10 JPY is 0.15 -> 0, below 1 yen.
    tiny = run(invoice("INV-1", currency="JPY", total="10"), "2026-09-07", terms_=fees())
    assert skip_codes(tiny) == {"late_fee:acme:1:1": "below_min_fee"}


def test_1_currency_an_invoice_goes_on_to_the_next_contract_in_its_currency():
    usd = contract("usd", currency="USD", reminders=NO_REMINDERS, late_fee={"flat": "40.00"})
    eur = contract("eur", currency="EUR", reminders=NO_REMINDERS, late_fee={"flat": "30.00"})
    plan = run(invoice("INV-1", currency="EUR"), "2026-09-07", terms_=terms(usd, eur))
    assert [(a.clause, str(a.amount)) for a in plan.actions] == [("contracts.eur.late_fee", "30.00")]


def test_5_flat_and_percent_combine_by_sum_or_max():
    inv = invoice("INV-1")
    assert amounts(run(inv, "2026-09-07", terms_=fees(flat="25.00")))["late_fee:acme:1:1"] == "55.00"
    assert amounts(run(inv, "2026-09-07", terms_=fees(flat="25.00", combine="max")))["late_fee:acme:1:1"] == "30.00"
    assert amounts(run(inv, "2026-09-07", terms_=fees(flat="40.00", combine="max")))["late_fee:acme:1:1"] == "40.00"
    assert amounts(run(inv, "2026-09-07", terms_=fees(flat="40.00", percent="0")))["late_fee:acme:1:1"] == "40.00"


def test_5_an_amount_below_min_fee_is_skipped():
    plan = run(invoice("INV-1"), "2026-09-07", terms_=fees(min_fee="50.00"))
    assert not plan.actions
    assert skip_codes(plan) == {"late_fee:acme:1:1": "below_min_fee"}


def test_5_a_late_fee_clause_without_flat_or_percent_charges_nothing():
    assert not run(invoice("INV-1"), "2027-01-01", terms_=fees(percent="0")).actions


def test_5_max_total_cuts_the_occurrence_that_crosses_it_then_cap_reached():
    plan = run(invoice("INV-1"), "2026-11-06", terms_=fees(max_total="50.00"))
    assert amounts(plan) == {"late_fee:acme:1:1": "30.00", "late_fee:acme:1:2": "20.00"}
    assert "cut from 30.00 to the 20.00 left under the cap of 50.00" in by_key(plan)["late_fee:acme:1:2"].reason
    assert skip_codes(plan) == {"late_fee:acme:1:3": "cap_reached"}


def test_5_max_percent_of_total_is_rounded_down_and_the_tighter_cap_wins():
    inv = invoice("INV-1", total="1000.33")
    plan = run(inv, "2026-09-07", terms_=fees(percent="10", max_percent_of_total="1.5"))
    assert amounts(plan) == {"late_fee:acme:1:1": "15.00"}  # 15.00495 rounded down
    plan = run(invoice("INV-1"), "2026-09-07", terms_=fees(percent="10", max_percent_of_total="10", max_total="150"))
    assert amounts(plan) == {"late_fee:acme:1:1": "150.00"}


def test_5_caps_count_fees_in_the_history():
    history = [applied("late_fee:acme:1:1", "2026-09-07", "30.00")]
    plan = run(invoice("INV-1"), "2026-10-07", terms_=fees(max_total="40.00"), history=history)
    assert amounts(plan) == {"late_fee:acme:1:2": "10.00"}


def test_5_a_cut_below_min_fee_is_skipped_below_min_fee():
    plan = run(invoice("INV-1"), "2026-10-07", terms_=fees(max_total="30.50", min_fee="1.00"))
    assert amounts(plan) == {"late_fee:acme:1:1": "30.00"}
    assert skip_codes(plan) == {"late_fee:acme:1:2": "below_min_fee"}


def test_5_a_fee_line_the_bridge_did_not_write_counts_as_an_occurrence_and_towards_the_caps_with_a_warning():
    qbo_auto = fee_line("Late Fee", "25.00")
    plan = run(invoice("INV-1", lines=[qbo_auto]), "2026-10-07", terms_=fees(max_total="50.00"))
    assert amounts(plan) == {"late_fee:acme:1:2": "25.00"}  # occurrence 1 is the foreign fee; cut to the cap
    (warning,) = plan.warnings
    assert warning.code == "foreign_late_fee" and "25.00" in warning.detail


def test_5_foreign_fees_are_recognised_by_item_description_or_provider_flag():
    for line in (
        fee_line("Anything", "5.00"),  # same item as the contract
        fee_line("Late payment fee", "5.00", item="Misc"),  # fee words
        fee_line("Finance charge", "5.00", item=None),
        fee_line("Penalty", "5.00", item=None, provider_late_fee=True),  # the provider's own automatic fee
    ):
        plan = run(invoice("INV-1", lines=[line]), "2026-09-07", terms_=fees())
        assert not plan.actions and [w.code for w in plan.warnings] == ["foreign_late_fee"], line


def test_5_the_bridges_own_fee_line_counts_even_when_the_ledger_missed_it():
    own = fee_line("Late fee (no. 1, 2026-09-07) on invoice INV-1", "30.00")
    plan = run(invoice("INV-1", lines=[own]), "2026-09-08", terms_=fees())
    assert not plan.actions and not plan.warnings


def test_5_mode_line_or_invoice_and_the_connection_override():
    assert by_key(run(invoice("INV-1"), "2026-09-07", terms_=fees()))["late_fee:acme:1:1"].form == "line"
    assert by_key(run(invoice("INV-1"), "2026-09-07", terms_=fees(mode="invoice")))["late_fee:acme:1:1"].form == (
        "invoice"
    )
    overridden = fees().model_copy(update={"fee_modes": {"acme": "invoice"}})
    assert by_key(run(invoice("INV-1"), "2026-09-07", terms_=overridden))["late_fee:acme:1:1"].form == "invoice"


def test_5_line_mode_falls_back_to_a_fee_invoice_when_the_invoice_cannot_be_edited():
    plan = run(invoice("INV-1", editable=False), "2026-09-07", terms_=fees())
    assert by_key(plan)["late_fee:acme:1:1"].form == "invoice"


def test_5_the_fee_line_says_item_and_description_with_number_and_period():
    t = fees(item="Finance Charge", description="Late fee {period} for {number}")
    action = by_key(run(invoice("INV-1"), "2026-09-07", terms_=t))["late_fee:acme:1:1"]
    assert action.item == "Finance Charge"
    assert action.description == "Late fee no. 1, 2026-09-07 for INV-1"


def test_5_action_key_is_late_fee_connection_invoice_occurrence():
    plan = run(invoice("INV-1", id="130", connection="acme-qbo"), "2026-10-07", terms_=fees())
    assert keys(plan) == ["late_fee:acme-qbo:130:1", "late_fee:acme-qbo:130:2"]


def test_5_a_fee_that_rounds_to_zero_is_never_charged_even_with_min_fee_zero():
    plan = run(invoice("INV-1", total="0.10"), "2026-09-07", terms_=fees(percent="1", min_fee="0"))
    assert not plan.actions and skip_codes(plan) == {"late_fee:acme:1:1": "below_min_fee"}


def test_5_a_forgiven_occurrence_is_never_charged_again_and_counts_as_nothing_towards_the_caps():
    t = fees(max_total="40.00")
    history = [applied("late_fee:acme:1:1", "2026-09-07", "30.00"), applied("forgive:acme:1:1", "2026-09-20")]
    plan = run(invoice("INV-1"), "2026-10-07", terms_=t, history=history)
    assert amounts(plan) == {"late_fee:acme:1:2": "30.00"}  # occurrence 1 not again; the cap has all 40.00 left
    compounding = fees(compounding=True)
    plan = run(invoice("INV-1"), "2026-10-07", terms_=compounding, history=history)
    assert amounts(plan) == {"late_fee:acme:1:2": "30.00"}  # nor does it compound


def test_5_fees_forgiven_for_good_skip_every_later_occurrence_citing_who_and_why():
    history = [
        applied("late_fee:acme:1:1", "2026-09-07", "30.00"),
        applied("forgive:acme:1:1", "2026-09-20"),
        dataclasses.replace(applied("fees_forgiven:acme:1:1", "2026-09-20"), note="forgiven for good by ann: hardship"),
    ]
    plan = run(invoice("INV-1"), "2026-11-06", terms_=fees(), history=history)
    assert not plan.actions
    assert skip_codes(plan) == {"late_fee:acme:1:2": "forgiven", "late_fee:acme:1:3": "forgiven"}
    assert all("by ann: hardship" in s.detail for s in plan.skipped if s.key)
    other = run(invoice("INV-2", id="2"), "2026-10-07", terms_=fees(), history=history)
    assert keys(other) == ["late_fee:acme:2:1", "late_fee:acme:2:2"]  # another invoice is not touched
