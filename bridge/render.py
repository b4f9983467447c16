"""Human rendering of a plan with rich: what an accountant reads before anything is applied."""

from __future__ import annotations

from collections import Counter

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
