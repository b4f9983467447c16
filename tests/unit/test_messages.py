"""Client messages (docs/policy.md §4 reminders, §6 renegotiation): every message of every set renders
short, polite, complete e-mails with amounts and dates written for the contract's locale."""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from bridge.messages import (
    MESSAGE_NAMES,
    REFUSAL_REASONS,
    FeeTerms,
    MessageContext,
    RenderedMessage,
    RenegotiationTerms,
    render_message,
    template_sets,
)

NBSP = "\xa0"
LATE_FEE = FeeTerms(percent=Decimal("1.5"), grace_days=5, every_days=30, max_percent_of_total=Decimal(10))
LATE_FEE_TERMS = (
    "Under our agreement, a late fee of 1.5% of the unpaid balance is added 5 days after the due date and every "
    "30 days after that, up to 10% of the invoice total."
)
RENEGOTIATION_TERMS = (
    "Our agreement allows a due date to be moved once per client, to a date no more than 30 days after the"
    " original due date."
)


def context(message: str = "overdue", **changes: Any) -> MessageContext:
    """The worked example of docs/policy.md §8 (INV-1001, USD 2,000.00, 500.00 paid), as of 2026-10-20.

    `max_per_project` and `max_extension_days` change the renegotiation clause (one change, 30 days)."""
    values: dict[str, Any] = {
        "message": message,
        "customer_name": "Acme Corp",
        "invoice_number": "INV-1001",
        "currency": "USD",
        "amount_due": Decimal("1500.00"),
        "total": Decimal("2000.00"),
        "due_date": date(2026, 9, 7),
        "today": date(2026, 10, 20),
        "days_overdue": 43,
        "clause": "contracts.standard.reminders",
        "late_fee": LATE_FEE,
        "step": 5,
    }
    if message == "upcoming":
        values.update(today=date(2026, 9, 4), days_overdue=-3, step=1)
    elif message == "renegotiation_accepted":
        values.update(
            clause="contracts.standard.renegotiation",
            late_fee=None,
            new_due_date=date(2026, 10, 1),
            renegotiation=RenegotiationTerms(max_per_project=1, max_extension_days=30),
            step=None,
        )
    elif message == "renegotiation_refused":
        values.update(
            clause="contracts.standard.renegotiation",
            late_fee=None,
            requested_due_date=date(2026, 10, 1),
            refusal_reason="limit_reached",
            earlier_invoice="INV-0990",
            earlier_date=date(2026, 7, 1),
            renegotiation=RenegotiationTerms(max_per_project=1, max_extension_days=30),
            step=None,
        )
    allowed, longest = changes.pop("max_per_project", None), changes.pop("max_extension_days", None)
    if allowed is not None or longest is not None:
        values["renegotiation"] = RenegotiationTerms(
            max_per_project=1 if allowed is None else allowed, max_extension_days=30 if longest is None else longest
        )
    values.update(changes)
    return MessageContext(**values)


ALL_CASES = [
    pytest.param(template_set, message, id=f"{template_set}-{message}")
    for template_set in ("polite", "firm")
    for message in MESSAGE_NAMES
]
REFUSALS = [
    pytest.param(template_set, reason, id=f"{template_set}-{reason}")
    for template_set in ("polite", "firm")
    for reason in REFUSAL_REASONS
]


def assert_well_formed(rendered: RenderedMessage) -> None:
    """The properties every message has, whatever it says."""
    assert rendered.subject
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    assert rendered.subject == rendered.subject.strip()
    for text in (rendered.subject, rendered.body):
        assert "{{" not in text and "}}" not in text
        assert "{%" not in text and "%}" not in text
        assert "!" not in text
        assert "None" not in text
    assert rendered.body.startswith("Dear Acme Corp,\n\n")
    assert rendered.body.endswith(("\nThank you,\n", "\nKind regards,\n"))
    assert "\n\n\n" not in rendered.body
    assert not re.search(r"[ \t]\n", rendered.body), "no trailing spaces"
    assert not re.search(r"\s[.,]", rendered.body), "no space before punctuation"
    assert len(rendered.body.split()) < 120


# --- the template sets -------------------------------------------------------------------------


def test_two_sets_ship_polite_and_firm() -> None:
    assert template_sets() == ("firm", "polite")


@pytest.mark.parametrize(("template_set", "message"), ALL_CASES)
def test_each_message_renders_in_each_set(template_set: str, message: str) -> None:
    rendered = render_message(context(message), template_set=template_set)

    assert_well_formed(rendered)
    assert "INV-1001" in rendered.subject
    assert "INV-1001" in rendered.body
    assert "$1,500.00" in rendered.body


@pytest.mark.parametrize(("template_set", "reason"), REFUSALS)
def test_every_refusal_reason_renders(template_set: str, reason: str) -> None:
    rendered = render_message(context("renegotiation_refused", refusal_reason=reason), template_set=template_set)

    assert_well_formed(rendered)
    assert RENEGOTIATION_TERMS in rendered.body, "a refusal restates the terms"
    assert "reply" in rendered.body, "a refusal offers to talk"


def test_polite_is_the_default_set() -> None:
    ctx = context()
    assert render_message(ctx) == render_message(ctx, template_set="polite")
    assert render_message(ctx) != render_message(ctx, template_set="firm")


def test_unknown_set_raises_and_names_the_known_sets() -> None:
    with pytest.raises(ValueError, match=r"'friendly'.*firm, polite"):
        render_message(context(), template_set="friendly")


@pytest.mark.parametrize("name", ["../polite", "polite/..", "", "POLITE"])
def test_set_names_are_not_paths(name: str) -> None:
    with pytest.raises(ValueError, match="unknown template set"):
        render_message(context(), template_set=name)


def test_unknown_locale_raises() -> None:
    with pytest.raises(ValueError, match="xx_YY"):
        render_message(context(), locale="xx_YY")


def test_rendering_is_deterministic() -> None:
    ctx = context()
    assert render_message(ctx) == render_message(dataclasses.replace(ctx))


# --- amounts and dates for the locale ----------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount_due", "total", "locale", "expected_due", "expected_total"),
    [
        ("USD", "1500.00", "2000.00", "en_US", "$1,500.00", "$2,000.00"),
        ("JPY", "150000", "200000", "en_US", "¥150,000", "¥200,000"),
        ("KWD", "1500.125", "2000.250", "en_US", "KWD1,500.125", "KWD2,000.250"),
        ("EUR", "1500.00", "2000.00", "de_DE", f"1.500,00{NBSP}€", f"2.000,00{NBSP}€"),
    ],
)
def test_amounts_are_formatted_for_currency_and_locale(
    currency: str,
    amount_due: str,
    total: str,
    locale: str,
    expected_due: str,
    expected_total: str,
) -> None:
    ctx = context(currency=currency, amount_due=Decimal(amount_due), total=Decimal(total))

    body = render_message(ctx, locale=locale).body

    assert expected_due in body and expected_total in body


def test_jpy_shows_no_decimals_and_kwd_three() -> None:
    jpy = render_message(context(currency="JPY", amount_due=Decimal(1500), total=Decimal(1500)))
    kwd = render_message(context(currency="KWD", amount_due=Decimal("1.5"), total=Decimal("1.5")))

    assert "(¥1,500)" in jpy.body
    assert "(KWD1.500)" in kwd.body


def test_amounts_keep_the_iso_minor_unit_even_where_cldr_rounds() -> None:
    # CLDR shows HUF without decimals; the client must still see the exact amount owed.
    ctx = context(currency="HUF", amount_due=Decimal("12345.50"), total=Decimal("12345.50"))

    assert f"12{NBSP}345,50{NBSP}Ft" in render_message(ctx, locale="hu_HU").body


@pytest.mark.parametrize(
    ("currency", "locale", "amount", "expected"),
    [
        ("INR", "en_IN", "1234567.50", "₹12,34,567.50"),  # lakh grouping
        ("USD", "en_US", "-12.50", "-$12.50"),  # a credit balance
        ("USD", "en_US", "0.00", "$0.00"),
        ("EUR", "fr_FR", "1234.5", f"1{chr(0x202F)}234,50{NBSP}€"),
    ],
)
def test_unusual_amounts_and_locales(currency: str, locale: str, amount: str, expected: str) -> None:
    ctx = context(currency=currency, amount_due=Decimal(amount), total=Decimal(amount))

    assert f"({expected})" in render_message(ctx, locale=locale).body


def test_dates_are_long_form_for_the_locale() -> None:
    assert "September 7, 2026" in render_message(context()).body
    assert "7. September 2026" in render_message(context(), locale="de_DE").body


# --- reminders (docs/policy.md §4) ------------------------------------------------------------------


@pytest.mark.parametrize("template_set", ["polite", "firm"])
def test_upcoming_is_a_heads_up_before_the_due_date(template_set: str) -> None:
    ctx = context("upcoming", amount_due=Decimal("2000.00"))

    rendered = render_message(ctx, template_set=template_set)

    assert "is due on September 7, 2026, in 3 days." in rendered.body
    assert "($2,000.00)" in rendered.body, "no 'remaining of' when nothing was paid"
    assert "overdue" not in rendered.body.lower()
    assert "September 7, 2026" in rendered.subject


@pytest.mark.parametrize("template_set", ["polite", "firm"])
@pytest.mark.parametrize(
    ("message", "days_overdue", "expected"),
    [
        ("upcoming", -1, "in 1 day."),
        ("upcoming", -3, "in 3 days."),
        ("overdue", 1, "1 day overdue"),
        ("overdue", 2, "2 days overdue"),
        ("overdue", 43, "43 days overdue"),
    ],
)
def test_days_are_singular_or_plural(template_set: str, message: str, days_overdue: int, expected: str) -> None:
    rendered = render_message(context(message, days_overdue=days_overdue), template_set=template_set)

    assert expected in rendered.body
    assert not re.search(r"\b1 days", rendered.body + rendered.subject)


@pytest.mark.parametrize("template_set", ["polite", "firm"])
def test_days_in_the_overdue_subject(template_set: str) -> None:
    one = render_message(context(days_overdue=1), template_set=template_set).subject
    nine = render_message(context(days_overdue=9), template_set=template_set).subject

    assert re.search(r"\b1 day\b", one) and "1 days" not in one
    assert "9 days" in nine


@pytest.mark.parametrize("template_set", ["polite", "firm"])
def test_overdue_asks_for_payment_or_a_reply_and_cites_the_late_fee_terms(
    template_set: str,
) -> None:
    body = render_message(context(), template_set=template_set).body

    assert "was due on September 7, 2026" in body
    assert "43 days overdue" in body
    assert "payment" in body
    assert "reply" in body
    assert LATE_FEE_TERMS in body


@pytest.mark.parametrize("template_set", ["polite", "firm"])
def test_overdue_without_clause_text_says_nothing_about_terms(template_set: str) -> None:
    rendered = render_message(context(late_fee=None), template_set=template_set)

    assert_well_formed(rendered)
    assert "agreement" not in rendered.body


@pytest.mark.parametrize("template_set", ["polite", "firm"])
@pytest.mark.parametrize(("message", "days_overdue"), [("overdue", 0), ("upcoming", 0), ("upcoming", 2)])
def test_reminders_on_the_edges_of_the_due_date_still_read_well(
    template_set: str, message: str, days_overdue: int
) -> None:
    # A step shifted to a business day, or sent after an outage, can land on or past the due date.
    rendered = render_message(context(message, days_overdue=days_overdue), template_set=template_set)

    assert_well_formed(rendered)
    assert not re.search(r"\b0 days|-\d+ day", rendered.body + rendered.subject)


def test_the_clause_path_is_not_shown_to_the_client() -> None:
    for template_set in template_sets():
        for message in MESSAGE_NAMES:
            rendered = render_message(context(message), template_set=template_set)
            assert "contracts." not in rendered.subject + rendered.body


def test_a_line_break_in_a_name_cannot_break_the_subject() -> None:
    ctx = context(invoice_number="INV-1001\nBcc: someone@example.com", customer_name="Acme\r\nCorp")

    rendered = render_message(ctx)

    assert rendered.subject == "Invoice INV-1001 Bcc: someone@example.com: payment 43 days overdue"
    assert rendered.body.startswith("Dear Acme Corp,\n\n")


# --- renegotiation (docs/policy.md §6) --------------------------------------------------------------


@pytest.mark.parametrize("template_set", ["polite", "firm"])
def test_accepted_confirms_the_new_date_and_that_it_is_the_one_time_change(
    template_set: str,
) -> None:
    rendered = render_message(context("renegotiation_accepted"), template_set=template_set)

    assert "October 1, 2026" in rendered.subject
    assert "from September 7, 2026 to October 1, 2026" in rendered.body
    assert "one-time change" in rendered.body


@pytest.mark.parametrize("template_set", ["polite", "firm"])
def test_accepted_with_a_larger_allowance_says_how_many(template_set: str) -> None:
    rendered = render_message(context("renegotiation_accepted", max_per_project=3), template_set=template_set)

    assert "up to 3 changes" in rendered.body
    assert "one-time" not in rendered.body


@pytest.mark.parametrize("template_set", ["polite", "firm"])
def test_accepted_when_due_date_is_already_the_new_one(template_set: str) -> None:
    # Whether the caller passes the old or the new effective due date, the text must make sense.
    ctx = context("renegotiation_accepted", due_date=date(2026, 10, 1))

    body = render_message(ctx, template_set=template_set).body

    assert "to October 1, 2026" in body
    assert "from October 1, 2026" not in body


def test_accepted_without_new_due_date_raises() -> None:
    with pytest.raises(ValueError, match="new_due_date"):
        render_message(context("renegotiation_accepted", new_due_date=None))


@pytest.mark.parametrize("template_set", ["polite", "firm"])
def test_limit_reached_cites_the_earlier_invoice_and_date(template_set: str) -> None:
    body = render_message(context("renegotiation_refused"), template_set=template_set).body

    assert "INV-0990" in body
    assert "July 1, 2026" in body
    assert "one change of payment date that our agreement allows has" in body
    assert "remains due on September 7, 2026" in body


@pytest.mark.parametrize("template_set", ["polite", "firm"])
@pytest.mark.parametrize(("allowed", "expected"), [(2, "Both changes of payment date"), (3, "All 3 changes")])
def test_limit_reached_with_several_allowed(template_set: str, allowed: int, expected: str) -> None:
    rendered = render_message(context("renegotiation_refused", max_per_project=allowed), template_set=template_set)

    assert_well_formed(rendered)
    assert expected in rendered.body
    assert "most recently for invoice INV-0990" in rendered.body


@pytest.mark.parametrize("template_set", ["polite", "firm"])
def test_limit_reached_when_no_change_is_allowed(template_set: str) -> None:
    ctx = context("renegotiation_refused", max_per_project=0, earlier_invoice=None, earlier_date=None)

    rendered = render_message(ctx, template_set=template_set)

    assert_well_formed(rendered)
    assert "does not provide for changes of payment date." in rendered.body


@pytest.mark.parametrize("template_set", ["polite", "firm"])
def test_extension_too_long_cites_the_maximum(template_set: str) -> None:
    ctx = context(
        "renegotiation_refused",
        refusal_reason="extension_too_long",
        requested_due_date=date(2026, 11, 1),
        earlier_invoice=None,
        earlier_date=None,
    )

    body = render_message(ctx, template_set=template_set).body

    assert "November 1, 2026" in body
    assert "more than 30 days after the original due date" in body
    assert "INV-0990" not in body


def test_extension_too_long_of_one_day_is_singular() -> None:
    ctx = context("renegotiation_refused", refusal_reason="extension_too_long", max_extension_days=1)

    assert "more than 1 day after" in render_message(ctx).body


@pytest.mark.parametrize("template_set", ["polite", "firm"])
def test_not_later_and_not_open(template_set: str) -> None:
    not_later = render_message(
        context("renegotiation_refused", refusal_reason="not_later"), template_set=template_set
    ).body
    not_open = render_message(
        context("renegotiation_refused", refusal_reason="not_open"), template_set=template_set
    ).body

    assert "not later than the current due date" in not_later
    assert "no longer open" in not_open
    assert "remains due" not in not_open


@pytest.mark.parametrize("reason", [None, "because"])
def test_refusal_needs_a_known_reason(reason: str | None) -> None:
    with pytest.raises(ValueError, match="refusal_reason"):
        render_message(context("renegotiation_refused", refusal_reason=reason))
