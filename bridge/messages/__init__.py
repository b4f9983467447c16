"""Client messages: reminders and renegotiation replies, rendered from packaged Jinja2 templates.

One template per message, set and language, `templates/<set>/<lang>/<message>.txt`:
the first line is `Subject: ...`, then a blank line, then the plain-text body. Two
sets ship, `polite` (the default) and `firm`, each in English (`en`), Korean (`ko`),
German (`de`), French (`fr`) and Spanish (`es`). The contract's `locale` picks the
language (its language part: `de_AT` -> `de`) and how amounts, percentages and dates
are written (Babel), e.g. '1.500,00 €' and '7. September 2026' for de_DE. A locale
whose language has no templates falls back to English words, still formatted for
that locale (`bridge config check` warns about it; `template_language` says which).

The HTML part is made from the rendered text by `html_body` (every character
escaped, paragraphs kept): one source of the words, and no name can inject markup.
The late-fee and renegotiation clauses are restated in the message's language from
the contract's numbers (`FeeTerms`, `RenegotiationTerms`; `templates/_terms/<lang>.txt`).

Pure: the only I/O is reading the package's own templates, once each. No clock
(`today` is an argument), no network. The Jinja2 environment, compiled templates,
Babel locales, amount formatters, formatted dates and clause sentences are cached,
because a sync may render a reminder for every open invoice of many companies.

Template variables: the context's strings (`customer_name`, `invoice_number`,
`currency`, `clause`, `refusal_reason`, `earlier_invoice`, `firm_name`), its amounts
and dates already formatted (`amount_due`, `total`, `fee_added`, `due_date`, `today`,
`new_due_date`, `requested_due_date`, `earlier_date`; None when not given), the
integers (`step`, `days_overdue`, `max_extension_days`, `max_per_project`),
`days_late` / `days_until` (the non-negative distance after / before the due
date), `partly_paid`, `due_date_changed`, `clause_text` (the clause restated in the
message's language, or ""), `lang`, and `ctx`, the `MessageContext` itself for raw
values. The `days` filter writes '1 day' / '3 days' in the message's language.
Names and invoice numbers are collapsed to one line, so no input can break the
subject header. Amounts carry the currency's ISO 4217 places (see `_formatting`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache, lru_cache
from html import escape
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from bridge.messages._formatting import amount_formatter, format_long_date, format_percent, get_locale

if TYPE_CHECKING:  # imported when the first message is rendered: checking a config's template set needs none of it
    import jinja2

__all__ = [
    "DEFAULT_SET",
    "FALLBACK_LANGUAGE",
    "MESSAGE_NAMES",
    "REFUSAL_REASONS",
    "FeeTerms",
    "MessageContext",
    "MessageName",
    "RenderedMessage",
    "RenegotiationTerms",
    "html_body",
    "render_message",
    "template_language",
    "template_languages",
    "template_sets",
]

MessageName = Literal["upcoming", "overdue", "renegotiation_accepted", "renegotiation_refused"]

MESSAGE_NAMES: Final[tuple[str, ...]] = get_args(MessageName)
"""Every message a template set provides, in a stable order."""

REFUSAL_REASONS: Final[tuple[str, ...]] = (
    "limit_reached",
    "extension_too_long",
    "not_later",
    "not_open",
)
"""The reasons a renegotiation can be refused (docs/policy.md §6)."""

DEFAULT_SET: Final = "polite"
"""The template set of a contract that names none. Every shipped set is written in the same languages."""

FALLBACK_LANGUAGE: Final = "en"
"""The language of a message whose locale's language has no templates."""

_SUBJECT_PREFIX: Final = "Subject: "


@dataclass(frozen=True, slots=True)
class FeeTerms:
    """The late-fee clause a reminder restates (docs/policy.md §5); amounts in the message's currency."""

    percent: Decimal = Decimal(0)
    flat: Decimal = Decimal(0)
    combine: Literal["sum", "max"] = "sum"
    grace_days: int = 0
    every_days: int = 30  # 0 = charged once
    max_total: Decimal | None = None
    max_percent_of_total: Decimal | None = None


@dataclass(frozen=True, slots=True)
class RenegotiationTerms:
    """The renegotiation clause the answers restate (docs/policy.md §6)."""

    max_per_project: int = 1
    max_extension_days: int = 30
    scope: Literal["customer", "invoice", "provider"] = "customer"  # the contract's project_key


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Everything one message says: who, which invoice, how much, when, under which clause, signed by whom."""

    message: MessageName
    customer_name: str
    invoice_number: str
    currency: str  # ISO 4217
    amount_due: Decimal  # what the client is asked to pay: the balance after this run's late fees
    total: Decimal
    due_date: date  # the effective due date
    today: date
    days_overdue: int  # today - due_date in days; negative = days until due
    clause: str  # dotted clause path, e.g. "contracts.standard.reminders"
    firm_name: str = ""  # `[firm].name`: signs the message
    fee_added: Decimal = Decimal(0)  # late fees this run adds to the invoice (included in amount_due)
    late_fee: FeeTerms | None = None  # reminders: the late-fee clause, restated when given
    renegotiation: RenegotiationTerms | None = None  # renegotiation answers: the clause, restated when given
    step: int | None = None
    new_due_date: date | None = None  # accepted renegotiation
    requested_due_date: date | None = None  # refused renegotiation: what the client asked for
    refusal_reason: str | None = None  # limit_reached | extension_too_long | not_later | not_open
    earlier_invoice: str | None = None  # limit_reached: invoice number of the earlier renegotiation
    earlier_date: date | None = None  # limit_reached: when it was agreed


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A rendered e-mail: a one-line subject, a plain-text body ending in a newline, and its HTML part."""

    subject: str
    body: str
    language: str  # the language of the words ('en', 'ko', ...): the locale's, or the fallback

    @property
    def html(self) -> str:
        """The HTML part: `html_body` of the text, the same words escaped, as a small HTML document.

        Made when asked for (a plan keeps only the text; the sender derives the HTML from it)."""
        return html_body(self.body, subject=self.subject, lang=self.language)


def render_message(ctx: MessageContext, *, template_set: str = DEFAULT_SET, locale: str = "en_US") -> RenderedMessage:
    """Render `ctx.message` from `template_set` in `locale`'s language (English when it has none),
    with amounts and dates written for `locale`.

    Raises ValueError for an unknown template set (naming the known ones), an
    unknown message or locale, an accepted renegotiation without `new_due_date`,
    or a refusal without a known `refusal_reason`.
    """
    language = template_language(template_set, locale)
    text = _template(template_set, language, ctx.message).render(_variables(ctx, locale, language))
    # The first line is 'Subject: ...', the second is blank; found without copying the body twice.
    end = text.find("\n")
    if not text.startswith(_SUBJECT_PREFIX) or end < 0 or not text.startswith("\n", end + 1):
        raise ValueError(
            f"template {template_set}/{language}/{ctx.message}.txt must start with a 'Subject: ...' line "
            "followed by a blank line"
        )
    # One clean header line: the names and numbers in it were made one line (`_one_line`), so only the
    # template's own spaces are left to tidy; no-break spaces (in '1.500,00 €', '1,5 %') stay.
    subject = text[len(_SUBJECT_PREFIX) : end].strip(" ")
    while "  " in subject:
        subject = subject.replace("  ", " ")
    return RenderedMessage(subject=subject, body=text[end + 2 :], language=language)


def template_sets() -> tuple[str, ...]:
    """The names of the shipped template sets, sorted: ('firm', 'polite')."""
    return _template_sets()


def template_languages(template_set: str) -> tuple[str, ...]:
    """The languages `template_set` is written in, sorted: ('de', 'en', 'es', 'fr', 'ko'); () for an unknown set."""
    return _languages(template_set)


@lru_cache(maxsize=256)
def template_language(template_set: str, locale: str) -> str:
    """The language a message of `template_set` is written in for `locale`: its own, else `FALLBACK_LANGUAGE`.

    ValueError when Babel does not know `locale`."""
    language = get_locale(locale).language
    return language if language in _languages(template_set) else FALLBACK_LANGUAGE


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_PARAGRAPH: Final = '<p style="margin:0 0 1em 0">'


_LINK = re.compile(r"https?://[^\s<>\"'\x00-\x1f\x7f-\x9f]+")


def html_body(text: str, *, subject: str = "", lang: str = FALLBACK_LANGUAGE, links: Iterable[str] = ()) -> str:
    """The HTML part of a message whose plain-text part is `text`: the same words, nothing added.

    Every character of the text is escaped (a customer name like `<script>` or `&amp;` arrives as
    written, never as markup); control characters, which HTML cannot carry, become U+FFFD. Blank
    lines separate paragraphs, single line breaks are kept as `<br>`. `subject` becomes the
    document's title, `lang` its language (so a reader or a screen reader pronounces it right).

    `links` are the URLs the sender vouches for (the provider's pay link): only those become
    clickable, never a URL that came in a name or a number. ValueError for one that is not a plain
    http(s) URL.
    """
    anchors: dict[str, str] = {}
    for url in links:
        if not _LINK.fullmatch(url):
            raise ValueError(f"not a plain http(s) URL: {url!r}")
        shown = escape(url, quote=True)  # as it stands in the escaped text, and as an attribute value
        anchors[shown] = f'<a href="{shown}">{shown}</a>'
    escaped = escape(_CONTROL.sub("\ufffd", text), quote=True)  # escaping leaves line breaks as they are
    content = "\n".join(
        _PARAGRAPH + p.strip("\n").replace("\n", "<br>\n") + "</p>"
        for p in escaped.strip("\n").split("\n\n")
        if p.strip()
    )
    for url, anchor in anchors.items():
        content = content.replace(url, anchor)
    title = escape(_CONTROL.sub("\ufffd", subject), quote=True)
    return (
        f'<!DOCTYPE html>\n<html lang="{escape(lang, quote=True)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n</head>\n"
        '<body style="margin:0;padding:24px;font-family:Arial,Helvetica,sans-serif;font-size:15px;'
        'line-height:1.5;color:#222222;background:#ffffff">\n'
        f'<div style="max-width:600px">\n{content}\n</div>\n</body>\n</html>\n'
    )


@cache
def _template_sets() -> tuple[str, ...]:
    root = resources.files(__name__).joinpath("templates")
    return tuple(
        sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(("_", ".")))
    )


@cache
def _languages(template_set: str) -> tuple[str, ...]:
    if template_set not in _template_sets():
        return ()
    root = resources.files(__name__).joinpath("templates", template_set)
    return tuple(sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")))


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader(__name__, "templates"),
        autoescape=False,  # the text part; the HTML part escapes all of it (html_body)
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates are package data: never stat them again
    )
    # No default globals (range, dict, lipsum, …): the templates do not need them, and merging
    # them into every render's context costs about a third of the render.
    env.globals.clear()
    env.filters["days"] = jinja2.pass_context(_days)
    return env


@cache
def _template(template_set: str, language: str, message: str) -> _Compiled:
    # Only valid (set, message) pairs reach the cache: an exception is not cached.
    known = _template_sets()
    if template_set not in known:
        raise ValueError(f"unknown template set {template_set!r}; known sets: {', '.join(known)}")
    if message not in MESSAGE_NAMES:
        raise ValueError(f"unknown message {message!r}; known messages: {', '.join(MESSAGE_NAMES)}")
    return _Compiled(_environment().get_template(f"{template_set}/{language}/{message}.txt"))


class _Compiled:
    """A loaded template, rendered with less per-call overhead than `jinja2.Template.render`.

    `Template.render` copies the variables into a new dict merged with the template's globals
    (there are none: the environment's are cleared) and builds the context's set of global
    names from a ChainMap; together about a sixth of a reminder's render. Here the context is
    built on the caller's dict, which is fresh for every render, and the compiled root render
    function is called as `Template.render` calls it, errors included (`handle_exception`
    re-raises them with the template's line in the traceback). A template with globals, or an
    async environment, goes through `Template.render`.
    """

    __slots__ = ("_blocks", "_concat", "_context_class", "_environment", "_name", "_plain", "_root", "_template")

    def __init__(self, template: jinja2.Template) -> None:
        environment = template.environment
        self._template = template
        self._environment = environment
        self._context_class = environment.context_class
        self._concat = environment.concat
        self._name = template.name
        self._blocks = template.blocks
        self._root = template.root_render_func
        self._plain = not environment.is_async and not template.globals

    def render(self, variables: dict[str, Any]) -> str:
        if not self._plain:
            return self._template.render(variables)
        environment = self._environment
        context = self._context_class(environment, variables, self._name, self._blocks)
        try:
            return self._concat(self._root(context))
        except Exception:
            environment.handle_exception()


# '1 day' / '3 days' in each language: the form used after a number on its own (nominative).
_DAY_WORDS: Final[dict[str, tuple[str, str]]] = {
    "en": ("day", "days"),
    "de": ("Tag", "Tage"),
    "fr": ("jour", "jours"),
    "es": ("día", "días"),
    "ko": ("일", "일"),
}


def _days(context: jinja2.runtime.Context, count: int) -> str:
    """'1 day', '3 days' (en); '3 Tage' (de); '3일' (ko)."""
    one, many = _DAY_WORDS.get(context.get("lang", FALLBACK_LANGUAGE), _DAY_WORDS[FALLBACK_LANGUAGE])
    word = one if abs(count) == 1 else many
    return f"{count}{word}" if context.get("lang") == "ko" else f"{count} {word}"


def _one_line(text: str) -> str:
    # Names and numbers may reach a subject line: never let them carry a line break.
    return " ".join(text.split())


@cache
def _terms(language: str) -> Any:
    """The clause macros of `language` (`templates/_terms/<lang>.txt`), with `lang` set for the `days` filter."""
    return _environment().get_template(f"_terms/{language}.txt").make_module({"lang": language})


@lru_cache(maxsize=1024)
def _fee_clause(terms: FeeTerms, currency: str, locale: str, language: str) -> str:
    """The late-fee clause in one or two plain sentences of `language` (cached: one per contract and currency)."""
    money = amount_formatter(currency, locale)
    macro = _terms(language).late_fee
    text = macro(
        percent=format_percent(terms.percent, locale) if terms.percent > 0 else None,
        flat=money(terms.flat) if terms.flat > 0 else None,
        combine=terms.combine,
        grace_days=terms.grace_days,
        every_days=terms.every_days,
        max_total=None if terms.max_total is None else money(terms.max_total),
        max_percent=None if terms.max_percent_of_total is None else format_percent(terms.max_percent_of_total, locale),
    )
    return _sentence(text)


@lru_cache(maxsize=256)
def _renegotiation_clause(terms: RenegotiationTerms, language: str) -> str:
    """The renegotiation clause in one plain sentence of `language`."""
    macro = _terms(language).renegotiation
    text = macro(max_per_project=terms.max_per_project, max_extension_days=terms.max_extension_days, scope=terms.scope)
    return _sentence(text)


_SPACE_BEFORE_STOP = re.compile(r" ([,.])")


_BLANKS = re.compile(r"[ \t\n\r\f\v]+")


def _collapse(text: str) -> str:
    """Runs of ASCII whitespace as one space, trimmed; no-break spaces are the locale's and stay."""
    return _BLANKS.sub(" ", text).strip()


def _sentence(text: object) -> str:
    """A clause macro's output as one line: whitespace collapsed, none left before a comma or full stop."""
    return _SPACE_BEFORE_STOP.sub(r"\1", _collapse(str(text)))


def _variables(ctx: MessageContext, locale: str, language: str) -> dict[str, Any]:
    if ctx.message == "renegotiation_accepted" and ctx.new_due_date is None:
        raise ValueError("renegotiation_accepted needs new_due_date")
    if ctx.message == "renegotiation_refused" and ctx.refusal_reason not in REFUSAL_REASONS:
        raise ValueError(
            f"renegotiation_refused needs refusal_reason, one of {', '.join(REFUSAL_REASONS)}; "
            f"got {ctx.refusal_reason!r}"
        )
    currency = ctx.currency
    days_overdue = ctx.days_overdue
    amount_due, total = ctx.amount_due, ctx.total
    money = amount_formatter(currency, locale)
    amount_due_text = money(amount_due)
    # Most invoices are not partly paid: the total is then written exactly as the amount due
    # (same value and sign; both finite, so comparing them cannot signal).
    if (
        total.is_finite()
        and amount_due.is_finite()
        and total == amount_due
        and total.is_signed() == amount_due.is_signed()
    ):
        total_text = amount_due_text
    else:
        total_text = money(total)
    new_due_date = ctx.new_due_date
    renegotiation = ctx.renegotiation
    if ctx.message in ("renegotiation_accepted", "renegotiation_refused"):
        clause_text = "" if renegotiation is None else _renegotiation_clause(renegotiation, language)
    else:
        clause_text = "" if ctx.late_fee is None else _fee_clause(ctx.late_fee, currency, locale, language)
    return {
        "ctx": ctx,
        "lang": language,
        "customer_name": _one_line(ctx.customer_name),
        "invoice_number": _one_line(ctx.invoice_number),
        "firm_name": _one_line(ctx.firm_name),
        "currency": currency,
        "amount_due": amount_due_text,
        "total": total_text,
        "partly_paid": amount_due != total,
        "fee_added": money(ctx.fee_added) if ctx.fee_added > 0 else None,
        "due_date": format_long_date(ctx.due_date, locale),
        "today": format_long_date(ctx.today, locale),
        "days_overdue": days_overdue,
        "days_late": max(days_overdue, 0),
        "days_until": max(-days_overdue, 0),
        "clause": ctx.clause,
        "clause_text": clause_text,
        "step": ctx.step,
        "new_due_date": None if new_due_date is None else format_long_date(new_due_date, locale),
        "due_date_changed": new_due_date is not None and new_due_date != ctx.due_date,
        "requested_due_date": _date_or_none(ctx.requested_due_date, locale),
        "refusal_reason": ctx.refusal_reason,
        "earlier_invoice": None if ctx.earlier_invoice is None else _one_line(ctx.earlier_invoice),
        "earlier_date": _date_or_none(ctx.earlier_date, locale),
        "max_extension_days": None if renegotiation is None else renegotiation.max_extension_days,
        "max_per_project": None if renegotiation is None else renegotiation.max_per_project,
    }


def _date_or_none(day: date | None, locale: str) -> str | None:
    return None if day is None else format_long_date(day, locale)
