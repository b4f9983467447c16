"""Human rendering of a plan with rich: what an accountant reads before anything is applied."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import IO, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bridge import clock
from bridge.money import format_amount
from bridge.plan import Action, ActionKind, Plan, PlanStream

# C0 and C1 control characters, DEL, and the Unicode formatting characters that reorder or hide text
# (bidi embeddings, overrides and isolates; zero-width and word joiners; the BOM).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_UNSAFE_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, *, multiline: bool = False) -> str:
    """Any data as text that cannot drive the terminal: control and invisible formatting characters are shown
    escaped (ESC as `\\x1b`); newlines and tabs stay only when `multiline`."""
    return (_UNSAFE_MULTILINE if multiline else _UNSAFE).sub(_shown, "" if value is None else str(value))


def safe(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """Provider or user text as a rich Text: never read as markup or emoji, control characters escaped."""
    return Text(printable(value, multiline=multiline), style=style)


def console(*, stderr: bool = False, width: int | None = None, file: IO[str] | None = None) -> Console:
    """A Console that prints data as it is: no markup, no emoji codes, no highlighting."""
    return Console(stderr=stderr, file=file, width=width, markup=False, emoji=False, highlight=False, soft_wrap=False)


def echo_json(plan: Plan) -> None:
    """The plan's canonical JSON on stdout, written a piece at a time (a large plan is never one text)."""
    for chunk in plan.json_chunks():
        click.echo(chunk, nl=False)


def _what(a: Action) -> str:
    """The action in a few words: the fee and the form it takes, what a reminder puts in front of the client."""
    currency = a.invoice.currency
    if a.kind is ActionKind.LATE_FEE:
        amount = "" if a.amount is None else f"{format_amount(a.amount, currency)} {currency}"
        return f"{amount} as a fee line" if a.form == "line" else f"{amount} as a separate fee invoice"
    if a.kind is ActionKind.REMINDER:
        step = f"step {a.step} ({a.message})"
        if a.sends == "provider_invoice_email":
            return f"{step}: the provider's own invoice e-mail"
        balance = "" if a.balance is None else f", states {format_amount(a.balance, currency)} {currency}"
        return f"{step}: e-mail {a.subject!r}{balance}"
    if a.kind is ActionKind.UPDATE_DUE_DATE:
        return f"new due {a.new_due_date.isoformat() if a.new_due_date else ''}"
    return f"refused: {a.refusal_reason}"


def plan_heading(plan: Plan, days: Mapping[str, date] | None = None) -> str:
    """ "Plan as of 2026-12-07", naming the contract time zones where today is another day (`days`: today per zone),
    e.g. "Plan as of 2026-12-07 (America/New_York: 2026-12-06)"."""
    other = [f"{zone}: {day.isoformat()}" for zone, day in sorted((days or {}).items()) if day != plan.as_of]
    return f"Plan as of {plan.as_of.isoformat()}" + (f" ({', '.join(other)})" if other else "")


def render_plan(plan: Plan, console: Console, *, verbose: bool = False, days: Mapping[str, date] | None = None) -> None:
    """Print the plan as tables: actions, then skips (counted, or listed with -v), warnings and errors.

    `days`: today in each contract time zone, when the plan is of today (see `plan_heading`)."""
    console.print(Text(plan_heading(plan, days), style="bold"))
    if plan.actions:
        table = Table(show_lines=False, header_style="bold")
        for col in ("connection", "invoice", "customer", "action", "what", "clause", "why"):
            # Keys a reader searches for (the action, the clause) stay whole; prose wraps.
            table.add_column(col, overflow="fold", no_wrap=col in ("action", "clause"))
        for a in plan.actions:
            what = _what(a)
            table.add_row(
                *(safe(v) for v in (a.connection, a.invoice.number, a.invoice.customer, a.kind.value, what, a.clause)),
                safe(a.reason),
            )
        console.print(table)
        if verbose:
            _render_messages(plan, console)
    # An empty plan is said once, by the summary line at the end ("Nothing to do; …").

    if plan.skipped:
        if verbose:
            table = Table(title="Skipped", header_style="bold")
            for col in ("connection", "invoice", "code", "detail", "clause"):
                table.add_column(col, overflow="fold")
            for s in plan.skipped:
                table.add_row(*(safe(v) for v in (s.connection, s.invoice, s.code.value, s.detail, s.clause)))
            console.print(table)
        else:
            counts = Counter(s.code.value for s in plan.skipped)
            listed = ", ".join(f"{code} {n}" for code, n in sorted(counts.items()))
            console.print(safe(f"Skipped: {listed}  (-v lists them)"))
    for w in plan.warnings:
        detail = safe(f"{w.connection} {w.invoice or ''} {w.code}: {w.detail}")
        console.print(Text.assemble(("warning", "yellow"), " ", detail))
    for e in plan.errors:
        console.print(Text.assemble(("error", "red"), " ", safe(f"{e.connection} {e.record}: {e.error}")))
    console.print(safe(summary_line(plan)))


_FIRST_LINES = 3
"""How many lines of each message's body `-v` shows under its subject."""


def _render_messages(plan: Plan, console: Console) -> None:
    """Each e-mail the plan would send in the contract's words: recipient, subject and the body's first lines."""
    messages = [a for a in plan.actions if a.kind is ActionKind.REMINDER and a.subject is not None]
    if not messages:
        return
    console.print(Text("Messages", style="bold"))
    for a in messages:
        copies = f" (cc {', '.join(a.cc + a.bcc)})" if a.cc or a.bcc else ""
        who = safe(f"{a.connection} {a.invoice.number} to {a.to or '(no address)'}{copies}: ")
        console.print(Text.assemble("  ", who, ("Subject: ", "bold"), safe(a.subject)))
        for line in [line for line in (a.body or "").splitlines() if line.strip()][:_FIRST_LINES]:
            console.print(Text.assemble("    ", safe(line)))


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def summary_line(plan: Plan | PlanStream) -> str:
    """One line that reads as a sentence: "3 reminders, 2 late fees (45.00 USD), 1 due-date change; 12 skipped".

    Kinds with nothing are left out; an empty plan says "Nothing to do".
    """
    summary = plan.summary()
    parts = []
    if summary["reminders"]:
        parts.append(_count(summary["reminders"], "reminder"))
    if summary["late_fees"]:
        fees = ", ".join(f"{amount} {cur}" for cur, amount in summary["late_fee_total"].items())
        parts.append(_count(summary["late_fees"], "late fee") + (f" ({fees})" if fees else ""))
    if summary["due_date_updates"]:
        parts.append(_count(summary["due_date_updates"], "due-date change"))
    if summary["renegotiations_refused"]:
        parts.append(_count(summary["renegotiations_refused"], "refusal"))
    line = ", ".join(parts) if parts else "Nothing to do"
    rest = [f"{summary['skipped']} skipped"]
    if summary["warnings"]:
        rest.append(_count(summary["warnings"], "warning"))
    if summary["errors"]:
        rest.append(_count(summary["errors"], "error"))
    return f"{line}; {', '.join(rest)}."


def render_outcome(outcome: Any, console: Console) -> None:
    """What each connection's pull cost, and what happened to each action of a real run."""
    table = Table(title="Connections", header_style="bold")
    for col in (
        "connection",
        "provider",
        "read",
        "invoices",
        "payments",
        "deleted",
        "quarantined",
        "API calls",
        "retries",
        "status",
    ):
        table.add_column(col)
    for run in outcome.runs:
        table.add_row(
            safe(run.name),
            safe(run.provider),
            "full" if run.full else "changes",
            str(run.invoices),
            str(run.payments),
            str(run.deleted),
            str(run.quarantined),
            str(run.stats.calls),
            str(run.stats.retries),
            safe(run.error, "red") if run.error else "ok",
        )
    console.print(table)
    for run in outcome.runs:
        if run.stats.retries:
            console.print(safe(f"{run.name} retried: {run.stats.describe_retries()}"))
    for key, what in outcome.reconciled:
        console.print(safe(f"reconciled {key}: {what}"))
    report = outcome.report
    if report is None:
        console.print("Dry run: nothing was written to any provider and nothing was sent.")
        return
    console.print(
        Text.assemble(
            (f"{len(report.applied)} applied", "bold"),
            f", {len(report.dropped)} dropped, {len(report.failed)} failed, {len(report.in_doubt)} in doubt, "
            f"{len(report.skipped)} already done.",
        )
    )
    for item in report.dropped:
        console.print(Text.assemble(("dropped", "yellow"), " ", safe(f"{item['key']}: {item['reason']}")))
    for item in report.failed:
        console.print(Text.assemble(("failed", "red"), " ", safe(f"{item['key']}: {item['error']}")))
    for item in report.in_doubt:
        detail = safe(f"{item['key']}: {item['error']} (not sent again; check with the client)")
        console.print(Text.assemble(("in doubt", "red"), " ", detail))


def ledger_date(entry: Any) -> date:
    """The day an entry stands for: the day it was applied at the provider, else the (UTC) day it was planned."""
    day: date = entry.applied_on or entry.created_at.date()
    return day


def ledger_customer(entry: Any) -> str:
    """The customer of the invoice an entry is about, as the plan named it."""
    return str(entry.action().invoice.customer)


LEDGER_CSV_COLUMNS = (
    "date",
    "connection",
    "invoice",
    "customer",
    "kind",
    "amount",
    "currency",
    "state",
    "clause",
    "provider_id",
    "key",
)


def _cell(value: object) -> str:
    # A spreadsheet runs a cell that starts with = + - @ (or a tab/CR before one) as a formula: provider text
    # (customer names, invoice numbers) is data, so such a cell is kept as text with a leading apostrophe.
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def ledger_csv(entries: Sequence[Any]) -> str:
    """One row per entry, spreadsheet-ready (RFC 4180, CRLF line ends, amounts as plain decimals)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(LEDGER_CSV_COLUMNS)
    for e in entries:
        text = (
            e.connection,
            e.invoice_number,
            ledger_customer(e),
            e.kind,
        )
        writer.writerow(
            [
                ledger_date(e).isoformat(),
                *(_cell(v) for v in text),
                "" if e.amount is None else f"{e.amount:f}",
                e.currency,
                e.state,
                _cell(e.clause),
                _cell(e.response_id),
                e.key,
            ]
        )
    return out.getvalue()


def ledger_totals(entries: Sequence[Any]) -> list[tuple[str, str, Decimal]]:
    """(currency, state, sum of amounts) over the entries that carry an amount, by currency then state.

    A forgiving's amount (kind `forgive_fee`, the fee's negated) is left out: the fee it takes back is counted once,
    under its own state, `applied` until it is taken back and `forgiven` after, so `total applied` is what stands
    charged and `total forgiven` what was taken back."""
    sums: dict[tuple[str, str], Decimal] = {}
    for e in entries:
        if e.amount is not None and e.kind != ActionKind.FORGIVE_FEE:
            sums[(e.currency, e.state)] = sums.get((e.currency, e.state), Decimal(0)) + e.amount
    return [(cur, state, total) for (cur, state), total in sorted(sums.items())]


def render_ledger(
    entries: Sequence[Any], events: Mapping[str, Sequence[Any]], console: Console, *, filtered: bool = False
) -> None:
    """The audit trail as a table (with each entry's state changes when `events` is given), then the totals per
    currency and state of the amounts shown."""
    if not entries:
        console.print("No ledger entries match." if filtered else "The ledger is empty.")
        return
    table = Table(header_style="bold")
    table.add_column("updated", no_wrap=True)  # a local time to the second, with its zone: kept whole
    # The customer is in --json and --csv; nine columns would fold every cell in a terminal of 80.
    for col in ("key", "state", "invoice", "amount", "clause", "response id", "note"):
        table.add_column(col, overflow="fold")
    for e in entries:
        amount = "" if e.amount is None else f"{format_amount(e.amount, e.currency)} {e.currency}"
        table.add_row(
            clock.local_text(e.updated_at),
            *(
                safe(v)
                for v in (
                    e.key,
                    e.state,
                    e.invoice_number,
                    amount,
                    e.clause,
                    e.response_id,
                    e.error or (e.reason if e.kind == ActionKind.FORGIVE_FEE else None),  # a forgiving: who, why
                )
            ),
        )
        for ev in events.get(e.key, ()):
            table.add_row("", f"  {clock.local_text(ev.at)}", safe(ev.state), "", "", "", "", safe(ev.detail))
    console.print(table)
    for currency, state, total in ledger_totals(entries):
        console.print(safe(f"total {state}: {format_amount(total, currency)} {currency}"))


def render_decision(decision: Any, console: Console, *, outcome_only: bool = False) -> None:
    """A renegotiation decision: accepted or refused, the clause, the reason, and the message to send (not again
    with `outcome_only`: it was shown before asking), then what became of it."""
    if not outcome_only:
        _render_decided(decision, console)
    _render_decision_outcome(decision, console)


def _render_decided(decision: Any, console: Console) -> None:
    record, action = decision.record, decision.action
    verdict = (
        Text("accepted", "green")
        if record.status == "accepted"
        else Text.assemble(("refused", "red"), " (", safe(record.reason), ")")
    )
    console.print(safe(f"Request to move invoice {record.invoice_number} to {record.new_due_date}: ") + verdict)
    console.print(safe(f"clause: {action.clause}"))
    console.print(safe(f"why: {action.reason}"))
    console.print(Text.assemble("\n", ("Subject:", "bold"), " ", safe(action.subject), "\n"))
    console.print(safe(action.body, multiline=True))


def _render_decision_outcome(decision: Any, console: Console) -> None:
    record, action = decision.record, decision.action
    if decision.dry_run:
        console.print("Dry run: nothing was recorded or written back.")
    elif decision.report and decision.report.applied:
        what = "due date written back" if record.status == "accepted" else "refusal recorded"
        console.print(safe(f"Recorded; {what} ({action.key})."))
    elif decision.report:
        for item in [*decision.report.failed, *decision.report.dropped]:
            detail = safe(item.get("error") or item.get("reason"))
            console.print(Text.assemble(("not written back", "red"), ": ", detail))


def render_forgiven(result: Any, console: Console) -> None:
    """`bridge forgive`: what became of the fee, with who and why, and whether later fees are forgiven too."""
    what = f"late fee {result.fee} ({result.amount} {result.currency} on invoice {result.invoice})"
    if result.outcome == "forgiven":
        console.print(Text.assemble(("Forgiven", "green"), safe(f": {what}; {result.detail}.")))
    elif result.outcome == "already":
        console.print(safe(f"Already forgiven: {what}; nothing written."))
    else:
        console.print(Text.assemble(("Not forgiven", "red"), safe(f": {what}; {result.detail}")))
        if result.outcome == "pending":
            console.print(safe(f"Run `bridge forgive {result.fee}` again: it is settled from the provider first."))
        return
    console.print(safe(f"Recorded as {result.key} ({result.by})."))
    if result.all_fees:
        console.print(safe(f"Every later late fee on invoice {result.invoice} is forgiven for good."))


def render_previews(previews: Sequence[Any], console: Console) -> None:
    """`bridge preview`: each message as received (headers, both bodies, attachments), or what the provider sends."""
    if not previews:
        console.print("No messages: the next sync sends nothing.")
        return
    for item in previews:
        action = item.action
        console.print(safe(f"── {action.key} ({action.connection}, invoice {action.invoice.number})", "bold"))
        console.print(safe(f"   how: {item.how}"))
        if item.message is None:
            console.print(safe(f"   To: {action.to}"))
            if action.cc:
                console.print(safe(f"   Cc: {', '.join(action.cc)}"))
            if action.bcc:
                console.print(safe(f"   Bcc: {', '.join(action.bcc)}"))
            console.print(safe(f"   Subject: {action.subject}"))
            console.print(safe(action.body or "", multiline=True))
            console.print()
            continue
        for name in ("From", "Reply-To", "To", "Cc", "Subject", "Message-ID"):
            if item.message[name] is not None:
                console.print(safe(f"   {name}: {item.message[name]}"))
        if action.bcc:  # blind copies: in no header, handed to the server with the message
            console.print(safe(f"   Bcc: {', '.join(action.bcc)}"))
        attached = ", ".join(item.attachments) if item.attachments else "none"
        console.print(safe(f"   Attachments: {attached}"))
        for note in item.notes:
            console.print(safe(f"   note: {note}", "yellow"))
        for subtype in ("plain", "html"):
            part = item.message.get_body(preferencelist=(subtype,))
            if part is not None:
                console.print(safe(f"   ── text/{subtype}", "dim"))
                console.print(safe(part.get_content(), multiline=True))
        console.print()
