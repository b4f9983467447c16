"""Every message kind, in every shipped language and set: the words are the client's language, amounts,
percentages and dates are written as Babel writes them for the locale, the firm's name signs, nothing of the
template is left, and the HTML part says the same words with every character of a hostile name escaped."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from html import escape
from html.parser import HTMLParser
from typing import Any

import pytest
from babel.dates import format_date
from babel.numbers import format_currency, format_percent

from bridge.messages import (
    FALLBACK_LANGUAGE,
    MESSAGE_NAMES,
    REFUSAL_REASONS,
    FeeTerms,
    MessageContext,
    RenderedMessage,
    RenegotiationTerms,
    html_body,
    render_message,
    template_language,
    template_languages,
    template_sets,
)

FIRM = "Maple & Finch Design"
# One locale per shipped language, each with a currency of its own (KRW has no minor unit).
LOCALES = {"en": ("en_US", "USD"), "ko": ("ko_KR", "KRW"), "de": ("de_DE", "EUR"), "fr": ("fr_FR", "EUR"),
           "es": ("es_ES", "EUR")}  # fmt: skip
# A word each language's messages always use (the invoice), and English words no other language may carry.
INVOICE_WORD = {"en": "invoice", "ko": "청구서", "de": "rechnung", "fr": "facture", "es": "factura"}
ENGLISH_ONLY = ("Dear ", "invoice ", "agreement", "Kind regards", "Thank you", " day")
DUE = date(2026, 9, 7)
NEW_DUE = date(2026, 10, 2)  # not the 1st: French writes that one as an ordinal ('1er'), CLDR does not
EARLIER = date(2026, 7, 3)
FEE = FeeTerms(
    percent=Decimal("1.5"), flat=Decimal(25), grace_days=5, every_days=30, max_total=Decimal(500),
    max_percent_of_total=Decimal("12.5"),
)  # fmt: skip
TEMPLATE_SYNTAX = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}|Undefined|\bNone\b")


def context(message: str, currency: str, **changes: Any) -> MessageContext:
    values: dict[str, Any] = {
        "message": message,
        "customer_name": "Acme Corp",
        "invoice_number": "INV-1001",
        "currency": currency,
        "amount_due": Decimal("1522.50") if currency != "KRW" else Decimal(1522500),
        "total": Decimal("2022.50") if currency != "KRW" else Decimal(2022500),
        "due_date": DUE,
        "today": date(2026, 10, 20),
        "days_overdue": 43,
        "clause": "contracts.standard.reminders",
        "firm_name": FIRM,
        "fee_added": Decimal("22.50") if currency != "KRW" else Decimal(22500),
        "late_fee": FEE,
        "renegotiation": RenegotiationTerms(max_per_project=1, max_extension_days=30),
        "step": 5,
    }
    if message == "upcoming":
        values.update(today=date(2026, 9, 4), days_overdue=-3, step=1, fee_added=Decimal(0))
    elif message == "renegotiation_accepted":
        values.update(new_due_date=NEW_DUE, step=None)
    elif message == "renegotiation_refused":
        values.update(
            requested_due_date=NEW_DUE, refusal_reason="limit_reached", earlier_invoice="INV-0990",
            earlier_date=EARLIER, step=None,
        )  # fmt: skip
    values.update(changes)
    return MessageContext(**values)


def money(amount: Decimal, currency: str, locale: str) -> str:
    return format_currency(amount, currency, locale=locale)


CASES = [
    pytest.param(template_set, language, message, id=f"{template_set}-{language}-{message}")
    for template_set in ("polite", "firm")
    for language in LOCALES
    for message in MESSAGE_NAMES
]


def test_every_set_ships_five_languages() -> None:
    assert template_sets() == ("firm", "polite")
    for template_set in template_sets():
        assert template_languages(template_set) == ("de", "en", "es", "fr", "ko")
    assert template_languages("no-such-set") == ()


@pytest.mark.parametrize(("template_set", "language", "message"), CASES)
def test_every_message_in_every_language_reads_as_the_locale_writes(
    template_set: str, language: str, message: str
) -> None:
    locale, currency = LOCALES[language]
    ctx = context(message, currency)

    rendered = render_message(ctx, template_set=template_set, locale=locale)

    assert rendered.language == language
    assert_complete(rendered)
    assert INVOICE_WORD[language] in rendered.body.lower()
    if language != "en":
        assert not any(word in rendered.body for word in ENGLISH_ONLY), rendered.body
    # Amounts and dates exactly as Babel writes them for the locale.
    assert money(ctx.amount_due, currency, locale) in rendered.body
    assert format_date(DUE, "long", locale=locale) in rendered.body
    if message == "upcoming":
        assert format_date(DUE, "long", locale=locale) in rendered.subject
    elif message == "overdue":
        assert money(ctx.fee_added, currency, locale) in rendered.body, "the fee this run adds is stated"
        assert money(ctx.total, currency, locale) in rendered.body, "partly paid: the total is stated too"
        # The clause in plain words: the percentage, the flat part and the caps, in the locale's own form.
        assert format_percent(Decimal("0.015"), locale=locale, decimal_quantization=False) in rendered.body
        assert format_percent(Decimal("0.125"), locale=locale, decimal_quantization=False) in rendered.body
        assert money(Decimal(25), currency, locale) in rendered.body
        assert money(Decimal(500), currency, locale) in rendered.body
        assert "30" in rendered.body and "5" in rendered.body
    elif message == "renegotiation_accepted":
        assert format_date(NEW_DUE, "long", locale=locale) in rendered.subject + rendered.body
    else:
        assert format_date(NEW_DUE, "long", locale=locale) in rendered.body
        assert format_date(EARLIER, "long", locale=locale) in rendered.body and "INV-0990" in rendered.body
        assert "30" in rendered.body, "the refusal restates the clause"
    # Signed with the firm's name, as the last line.
    last = rendered.body.rstrip("\n").splitlines()[-1]
    assert last == FIRM or last == f"{FIRM} 드림"


@pytest.mark.parametrize("template_set", ["polite", "firm"])
@pytest.mark.parametrize("language", list(LOCALES))
@pytest.mark.parametrize("reason", REFUSAL_REASONS)
@pytest.mark.parametrize("allowed", [0, 1, 3])
def test_every_refusal_in_every_language(template_set: str, language: str, reason: str, allowed: int) -> None:
    locale, currency = LOCALES[language]
    ctx = context(
        "renegotiation_refused", currency, refusal_reason=reason,
        renegotiation=RenegotiationTerms(max_per_project=allowed, max_extension_days=1 if allowed == 3 else 30),
    )  # fmt: skip

    rendered = render_message(ctx, template_set=template_set, locale=locale)

    assert_complete(rendered)
    if reason != "not_open":
        assert money(ctx.amount_due, currency, locale) in rendered.body


@pytest.mark.parametrize("template_set", ["polite", "firm"])
@pytest.mark.parametrize("language", list(LOCALES))
@pytest.mark.parametrize(
    "changes",
    [
        {"days_overdue": 0},
        {"days_overdue": 1},
        {"late_fee": None, "fee_added": Decimal(0)},
        {"fee_added": Decimal(0)},
        {"late_fee": FeeTerms(flat=Decimal(40), every_days=0)},
        {"late_fee": FeeTerms(percent=Decimal(2), flat=Decimal(40), combine="max", every_days=1)},
        {"firm_name": ""},
        {"total": None},  # not partly paid
    ],
    ids=["due-today", "one-day", "no-clause", "no-fee-today", "flat-once", "max-daily", "unsigned", "unpaid"],
)
def test_overdue_variants_in_every_language(template_set: str, language: str, changes: dict[str, Any]) -> None:
    locale, currency = LOCALES[language]
    base = context("overdue", currency)
    if changes.get("total", 0) is None:
        changes = {"total": base.amount_due}
    ctx = context("overdue", currency, **changes)

    rendered = render_message(ctx, template_set=template_set, locale=locale)

    assert_complete(rendered, signed=bool(ctx.firm_name))
    if ctx.late_fee is not None and ctx.late_fee.flat:
        assert money(ctx.late_fee.flat, currency, locale) in rendered.body


def test_a_locale_without_templates_falls_back_to_english_words_in_its_own_formats() -> None:
    ctx = context("overdue", "JPY", amount_due=Decimal(152250), total=Decimal(202250), fee_added=Decimal(2250))

    rendered = render_message(ctx, locale="ja_JP")

    assert template_language("polite", "ja_JP") == FALLBACK_LANGUAGE == rendered.language == "en"
    assert rendered.body.startswith("Dear Acme Corp,")
    assert money(Decimal(152250), "JPY", "ja_JP") in rendered.body
    assert format_date(DUE, "long", locale="ja_JP") in rendered.body
    assert_complete(rendered)


def test_a_regional_locale_takes_its_language() -> None:
    assert template_language("firm", "de_AT") == "de"
    assert template_language("firm", "es-MX") == "es"
    rendered = render_message(context("upcoming", "EUR"), template_set="firm", locale="de_AT")
    assert rendered.body.startswith("Guten Tag Acme Corp,")


def test_french_writes_the_first_of_the_month_as_an_ordinal() -> None:
    ctx = context("renegotiation_accepted", "EUR", new_due_date=date(2026, 10, 1))
    assert "1er octobre 2026" in render_message(ctx, locale="fr_FR").subject


# --- the HTML part ---------------------------------------------------------------------------------------

HOSTILE = "<script>alert(\"x\")</script> & <b onclick='y'>Bold</b> &amp; \x1b[2J\x07 \u202eftp"


class _Text(HTMLParser):
    """The text of an HTML document's body, and every element and attribute in it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]
        self._in_body = self._in_body or tag == "body"
        if tag in ("br", "p"):
            self.text.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_body:
            self.text.append(data)


@pytest.mark.parametrize("template_set", ["polite", "firm"])
@pytest.mark.parametrize("language", list(LOCALES))
@pytest.mark.parametrize("message", MESSAGE_NAMES)
def test_the_html_part_says_the_same_words_and_escapes_hostile_names(
    template_set: str, language: str, message: str
) -> None:
    locale, currency = LOCALES[language]
    ctx = context(message, currency, customer_name=HOSTILE, invoice_number="<i>INV</i>&1", firm_name="A<b>&C")

    rendered = render_message(ctx, template_set=template_set, locale=locale)

    assert "<script" not in rendered.html and "<i>" not in rendered.html and "<b>" not in rendered.html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b onclick=&#x27;y&#x27;&gt;" in rendered.html
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", rendered.html), "no control character in HTML"
    parsed = _Text()
    parsed.feed(rendered.html)
    assert set(parsed.tags) == {"html", "head", "meta", "title", "body", "div", "p", "br"}
    assert set(parsed.attributes) <= {"lang", "charset", "name", "content", "style"}
    assert f'<html lang="{language}">' in rendered.html
    # The same words, paragraph for paragraph (control characters replaced).
    words = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", "\ufffd", rendered.body).split()
    assert "".join(parsed.text).split() == words


def test_html_body_keeps_paragraphs_and_line_breaks() -> None:
    html = html_body("One & two\nthree\n\n\nFour <five>\n", subject="S <x>", lang="de")
    p = '<p style="margin:0 0 1em 0">'
    assert f"{p}One &amp; two<br>\nthree</p>\n{p}Four &lt;five&gt;</p>" in html
    assert "<title>S &lt;x&gt;</title>" in html and '<html lang="de">' in html


def test_only_the_links_the_sender_vouches_for_are_clickable() -> None:
    pay = "https://pay.example/inv/130?t=abc&u=1"
    text = f"Dear https://evil.example/x,\n\nPay here:\n{pay}\n"

    html = html_body(text, links=[pay])

    shown = pay.replace("&", "&amp;")
    assert html.count("<a ") == 1 and f'<a href="{shown}">{shown}</a>' in html
    assert "https://evil.example/x" in html and 'href="https://evil.example' not in html
    assert "<a " not in html_body(text)
    for bad in ("javascript:alert(1)", 'https://x.example/"onmouseover=', "https://x.example/a b", "ftp://x"):
        with pytest.raises(ValueError, match="not a plain http"):
            html_body(text, links=[bad])


def assert_complete(rendered: RenderedMessage, *, signed: bool = True) -> None:
    """No template syntax left, one clean subject line, tidy paragraphs, signed by the firm."""
    for text in (rendered.subject, rendered.body, rendered.html):
        assert not TEMPLATE_SYNTAX.search(text), text
    assert rendered.subject and rendered.subject == rendered.subject.strip()
    assert "\n" not in rendered.subject and "  " not in rendered.subject
    assert rendered.body.endswith("\n") and not rendered.body.endswith("\n\n")
    assert "\n\n\n" not in rendered.body and "  " not in rendered.body
    assert not re.search(r"[ \t]\n|\n[ \t]", rendered.body), "no stray spaces around line breaks"
    assert not re.search(r"\s[.,)]|\(\s", rendered.body), "no space before a full stop, comma or bracket"
    assert "!" not in rendered.body
    assert (FIRM in rendered.body) is signed
    assert f"<title>{escape(rendered.subject)}</title>" in rendered.html


# --- through the policy engine ---------------------------------------------------------------------------


def test_the_plan_carries_the_contract_language_the_balance_after_fees_and_the_firm_signature() -> None:
    from bridge.model import RenegotiationRequest
    from tests.builders import contract, invoice, run, terms

    german = contract(
        currency="EUR",
        locale="de_DE",
        reminders={"schedule": [-3, 1, 7, 14, 30], "business_days": True},
        late_fee={"percent": "1.5", "grace_days": 5, "every_days": 30, "max_percent_of_total": "10"},
    )
    inv = invoice(currency="EUR", provider="freshbooks", paid=[("2026-09-20", "500.00")])
    request = RenegotiationRequest(
        connection="acme", invoice_id=inv.id, requested_on=date(2026, 10, 20), new_due_date=date(2026, 12, 24)
    )
    plan = run(inv, "2026-10-20", terms_=terms(german, firm_name=FIRM), renegotiations=[request])

    # Occurrences 1 (30.00 on 2,000.00) and 2 (22.50 on 1,500.00) are owed; the reminder states what they leave.
    assert [a.amount for a in plan.actions if a.kind == "late_fee"] == [Decimal("30.00"), Decimal("22.50")]
    (reminder,) = [a for a in plan.actions if a.kind == "reminder"]
    (refusal,) = [a for a in plan.actions if a.kind == "renegotiation_refused"]
    assert reminder.balance == Decimal("1552.50")
    assert reminder.subject == "Rechnung INV-1001: Zahlung 43 Tage überfällig"
    assert reminder.body is not None and refusal.body is not None
    assert "(1.552,50\xa0€ offen von insgesamt 2.052,50\xa0€)" in reminder.body
    assert "Verzugsgebühr von 52,50\xa0€ enthalten" in reminder.body and "1,5\xa0%" in reminder.body
    assert "mehr als 30 Tage nach dem ursprünglichen Fälligkeitstag" in refusal.body
    for body in (reminder.body, refusal.body):
        assert body.startswith("Guten Tag Amy's Bird Sanctuary,\n\n") and body.endswith(f"\n{FIRM}\n")


@pytest.mark.parametrize("template_set", ["polite", "firm"])
@pytest.mark.parametrize("language", list(LOCALES))
def test_a_contract_that_allows_no_change_says_so_once(template_set: str, language: str) -> None:
    locale, currency = LOCALES[language]
    ctx = context("renegotiation_refused", currency, renegotiation=RenegotiationTerms(0, 30), earlier_invoice=None)
    paragraphs = render_message(ctx, template_set=template_set, locale=locale).body.split("\n\n")
    assert len(paragraphs) == len(set(paragraphs))
    assert sum("30" in p for p in paragraphs) == 0, "no extension to restate when no change is allowed"
