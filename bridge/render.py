"""Human rendering of a plan with rich: what an accountant reads before anything is applied."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from bridge.money import format_amount
from bridge.plan import ActionKind, Plan


def _amount_or_detail(
    action_kind: ActionKind,
    amount: str | None,
    step: int | None,
    message: str | None,
    new_due: str | None,
    refusal: str | None,
) -> str:
    if action_kind is ActionKind.LATE_FEE:
        return amount or ""
    if action_kind is ActionKind.REMINDER:
        return f"step {step} ({message})"
    if action_kind is ActionKind.UPDATE_DUE_DATE:
        return f"new due {new_due}"
    return f"refused: {refusal}"


def render_plan(plan: Plan, console: Console, *, verbose: bool = False) -> None:
    """Print the plan as tables: actions, then skips (counted, or listed with -v), warnings and errors."""
    console.print(f"[bold]Plan as of {plan.as_of.isoformat()}[/bold]")
    if plan.actions:
        table = Table(show_lines=False, header_style="bold")
        for col in ("connection", "invoice", "customer", "action", "what", "clause", "why"):
            table.add_column(col, overflow="fold")
        for a in plan.actions:
            amount = (
                format_amount(a.amount, a.invoice.currency) + f" {a.invoice.currency}" if a.amount is not None else None
            )
            what = _amount_or_detail(
                a.kind,
                amount,
                a.step,
                a.message,
                a.new_due_date.isoformat() if a.new_due_date else None,
                a.refusal_reason,
            )
            table.add_row(a.connection, a.invoice.number, a.invoice.customer, a.kind.value, what, a.clause, a.reason)
        console.print(table)
    else:
        console.print("Nothing to do: no reminder, fee or due-date change is called for.")

    if plan.skipped:
        if verbose:
            table = Table(title="Skipped", header_style="bold")
            for col in ("connection", "invoice", "code", "detail", "clause"):
                table.add_column(col, overflow="fold")
            for s in plan.skipped:
                table.add_row(s.connection, s.invoice, s.code.value, s.detail, s.clause or "")
            console.print(table)
        else:
            counts = Counter(s.code.value for s in plan.skipped)
            listed = ", ".join(f"{code} {n}" for code, n in sorted(counts.items()))
            console.print(f"Skipped: {listed}  (-v lists them)")
    for w in plan.warnings:
        console.print(f"[yellow]warning[/yellow] {w.connection} {w.invoice or ''} {w.code}: {w.detail}")
    for e in plan.errors:
        console.print(f"[red]error[/red] {e.connection} {e.record}: {e.error}")
    console.print(summary_line(plan))


def summary_line(plan: Plan) -> str:
    """One line: how many actions of each kind, and the fees per currency."""
    summary = plan.summary()
    fees = ", ".join(f"{amount} {cur}" for cur, amount in summary["late_fee_total"].items()) or "none"
    return (
        f"{summary['actions']} action(s): {summary['reminders']} reminder(s), "
        f"{summary['late_fees']} late fee(s) totalling {fees}, {summary['due_date_updates']} due-date change(s), "
        f"{summary['renegotiations_refused']} refusal(s); {summary['skipped']} skipped, "
        f"{summary['warnings']} warning(s), {summary['errors']} error(s)."
    )


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
            run.name,
            run.provider,
            "full" if run.full else "changes",
            str(run.invoices),
            str(run.payments),
            str(run.deleted),
            str(run.quarantined),
            str(run.stats.calls),
            str(run.stats.retries),
            f"[red]{run.error}[/red]" if run.error else "ok",
        )
    console.print(table)
    for run in outcome.runs:
        if run.stats.retries:
            console.print(f"{run.name} retried: {run.stats.describe_retries()}")
    for key, what in outcome.reconciled:
        console.print(f"reconciled {key}: {what}")
    report = outcome.report
    if report is None:
        console.print("Dry run: nothing was written to any provider and nothing was sent.")
        return
    console.print(
        f"[bold]{len(report.applied)} applied[/bold], {len(report.dropped)} dropped, "
        f"{len(report.failed)} failed, {len(report.in_doubt)} in doubt, {len(report.skipped)} already done."
    )
    for item in report.dropped:
        console.print(f"[yellow]dropped[/yellow] {item['key']}: {item['reason']}")
    for item in report.failed:
        console.print(f"[red]failed[/red] {item['key']}: {item['error']}")
    for item in report.in_doubt:
        console.print(f"[red]in doubt[/red] {item['key']}: {item['error']} (not sent again; check with the client)")


def render_ledger(entries: Sequence[Any], events: Mapping[str, Sequence[Any]], console: Console) -> None:
    """The audit trail as a table (with each entry's state changes when `events` is given)."""
    if not entries:
        console.print("The ledger is empty.")
        return
    table = Table(header_style="bold")
    for col in ("updated", "key", "state", "invoice", "amount", "clause", "response id", "note"):
        table.add_column(col, overflow="fold")
    for e in entries:
        amount = "" if e.amount is None else f"{e.amount:f} {e.currency}"
        table.add_row(
            e.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.key,
            e.state,
            e.invoice_number,
            amount,
            e.clause,
            e.response_id or "",
            e.error or "",
        )
        for ev in events.get(e.key, ()):
            table.add_row("", f"  {ev.at:%Y-%m-%d %H:%M:%S}", ev.state, "", "", "", "", ev.detail or "")
    console.print(table)


def render_decision(decision: Any, console: Console) -> None:
    """A renegotiation decision: accepted or refused, the clause, the reason, and the message to send."""
    record, action = decision.record, decision.action
    verdict = "[green]accepted[/green]" if record.status == "accepted" else f"[red]refused[/red] ({record.reason})"
    console.print(f"Request to move invoice {record.invoice_number} to {record.new_due_date}: {verdict}")
    console.print(f"clause: {action.clause}")
    console.print(f"why: {action.reason}")
    console.print(f"\n[bold]Subject:[/bold] {action.subject}\n\n{action.body}")
    if decision.dry_run:
        console.print("Dry run: nothing was recorded or written back.")
    elif decision.report and decision.report.applied:
        what = "due date written back" if record.status == "accepted" else "refusal recorded"
        console.print(f"Recorded; {what} ({action.key}).")
    elif decision.report:
        for item in [*decision.report.failed, *decision.report.dropped]:
            console.print(f"[red]not written back[/red]: {item.get('error') or item.get('reason')}")
