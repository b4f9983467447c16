"""Client messages: reminders and renegotiation replies, rendered from packaged Jinja2 templates.

One template per message per set, `templates/<set>/<message>.txt`: the first line
is `Subject: ...`, then a blank line, then the plain-text body. Two sets ship:
`polite` (the default) and `firm`. The text is English; `locale` governs how
amounts and dates are written (Babel), e.g. '1.500,00 €' and '7. September 2026'
for de_DE.

Pure: the only I/O is reading the package's own templates, once each. No clock
(`today` is an argument), no network. The Jinja2 environment, compiled templates,
Babel locales, amount formatters and formatted dates are cached, because a sync
may render a reminder for every open invoice of many companies.

Template variables: the context's strings (`customer_name`, `invoice_number`,
`currency`, `clause`, `clause_text`, `refusal_reason`, `earlier_invoice`), its
amounts and dates already formatted (`amount_due`, `total`, `due_date`, `today`,
`new_due_date`, `requested_due_date`, `earlier_date`; None when not given), the
integers (`step`, `days_overdue`, `max_extension_days`, `max_per_project`),
`days_late` / `days_until` (the non-negative distance after / before the due
date), `partly_paid`, `due_date_changed`, and `ctx`, the `MessageContext`
itself for raw values. The `days` filter writes '1 day' / '3 days'. Names and
invoice numbers are collapsed to one line, so no input can break the subject
header. Amounts carry the currency's ISO 4217 places (see `_formatting`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Final, Literal, get_args

import jinja2

from bridge.messages._formatting import amount_formatter, format_long_date

__all__ = [
    "MESSAGE_NAMES",
    "REFUSAL_REASONS",
    "MessageContext",
    "MessageName",
    "RenderedMessage",
    "render_message",
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

_SUBJECT_PREFIX: Final = "Subject: "


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Everything one message says: who, which invoice, how much, when, and under which clause."""

    message: MessageName
    customer_name: str
    invoice_number: str
    currency: str  # ISO 4217
    amount_due: Decimal
    total: Decimal
    due_date: date  # the effective due date
    today: date
    days_overdue: int  # today - due_date in days; negative = days until due
    clause: str  # dotted clause path, e.g. "contracts.standard.reminders"
    clause_text: str = ""  # plain sentence(s) restating the contract terms; may be ""
    step: int | None = None
    new_due_date: date | None = None  # accepted renegotiation
    requested_due_date: date | None = None  # refused renegotiation: what the client asked for
    refusal_reason: str | None = None  # limit_reached | extension_too_long | not_later | not_open
    earlier_invoice: str | None = None  # limit_reached: invoice number of the earlier renegotiation
    earlier_date: date | None = None  # limit_reached: when it was agreed
    max_extension_days: int | None = None
    max_per_project: int | None = None


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A rendered e-mail: a one-line subject and a plain-text body ending in a newline."""

    subject: str
    body: str


def render_message(ctx: MessageContext, *, template_set: str = "polite", locale: str = "en_US") -> RenderedMessage:
    """Render `ctx.message` from `template_set`, with amounts and dates written for `locale`.

    Raises ValueError for an unknown template set (naming the known ones), an
    unknown message or locale, an accepted renegotiation without `new_due_date`,
    or a refusal without a known `refusal_reason`.
    """
    text = _template(template_set, ctx.message).render(_variables(ctx, locale))
    # The first line is 'Subject: ...', the second is blank; found without copying the body twice.
    end = text.find("\n")
    if not text.startswith(_SUBJECT_PREFIX) or end < 0 or not text.startswith("\n", end + 1):
        raise ValueError(
            f"template {template_set}/{ctx.message}.txt must start with a 'Subject: ...' line followed by a blank line"
        )
    # Collapse whitespace so the subject is always one clean header line.
    subject = " ".join(text[len(_SUBJECT_PREFIX) : end].split())
    return RenderedMessage(subject=subject, body=text[end + 2 :])


def template_sets() -> tuple[str, ...]:
    """The names of the shipped template sets, sorted: ('firm', 'polite')."""
    return _template_sets()


@cache
def _template_sets() -> tuple[str, ...]:
    root = resources.files(__name__).joinpath("templates")
    return tuple(
        sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(("_", ".")))
    )


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(__name__, "templates"),
        autoescape=False,  # plain-text e-mail, not HTML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates are package data: never stat them again
    )
    # No default globals (range, dict, lipsum, …): the templates do not need them, and merging
    # them into every render's context costs about a third of the render.
    env.globals.clear()
    env.filters["days"] = _days
    return env


@cache
def _template(template_set: str, message: str) -> _Compiled:
    # Only valid (set, message) pairs reach the cache: an exception is not cached.
    known = _template_sets()
    if template_set not in known:
        raise ValueError(f"unknown template set {template_set!r}; known sets: {', '.join(known)}")
    if message not in MESSAGE_NAMES:
        raise ValueError(f"unknown message {message!r}; known messages: {', '.join(MESSAGE_NAMES)}")
    return _Compiled(_environment().get_template(f"{template_set}/{message}.txt"))


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


def _days(count: int) -> str:
    """'1 day', '3 days', '0 days'."""
    return f"{count} day" if abs(count) == 1 else f"{count} days"


def _one_line(text: str) -> str:
    # Names and numbers may reach a subject line: never let them carry a line break.
    return " ".join(text.split())


def _variables(ctx: MessageContext, locale: str) -> dict[str, Any]:
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
    customer_name = _one_line(ctx.customer_name)
    invoice_number = _one_line(ctx.invoice_number)
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
    return {
        "ctx": ctx,
        "customer_name": customer_name,
        "invoice_number": invoice_number,
        "currency": currency,
        "amount_due": amount_due_text,
        "total": total_text,
        "partly_paid": amount_due != total,
        "due_date": format_long_date(ctx.due_date, locale),
        "today": format_long_date(ctx.today, locale),
        "days_overdue": days_overdue,
        "days_late": max(days_overdue, 0),
        "days_until": max(-days_overdue, 0),
        "clause": ctx.clause,
        "clause_text": ctx.clause_text.strip(),
        "step": ctx.step,
        "new_due_date": None if new_due_date is None else format_long_date(new_due_date, locale),
        "due_date_changed": new_due_date is not None and new_due_date != ctx.due_date,
        "requested_due_date": _date_or_none(ctx.requested_due_date, locale),
        "refusal_reason": ctx.refusal_reason,
        "earlier_invoice": None if ctx.earlier_invoice is None else _one_line(ctx.earlier_invoice),
        "earlier_date": _date_or_none(ctx.earlier_date, locale),
        "max_extension_days": ctx.max_extension_days,
        "max_per_project": ctx.max_per_project,
    }


def _date_or_none(day: date | None, locale: str) -> str | None:
    return None if day is None else format_long_date(day, locale)
