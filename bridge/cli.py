"""The `bridge` command line: click commands and rich output, no logic of its own."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, NoReturn

import click
from rich.console import Console

from bridge import clock, collector
from bridge.errors import BridgeError, ConfigError
from bridge.plan import ActionKind, Plan, PlanStream
from bridge.render import console, printable, safe


@dataclass(frozen=True, slots=True)
class Context:
    """Global options, shared by every command."""

    config: str | None
    as_of: date | None
    json: bool
    verbose: bool
    quiet: bool
    yes: bool = False

    @property
    def out(self) -> Console:
        """Human output: stdout, or stderr when stdout carries JSON. Data is never read as markup or emoji."""
        return console(stderr=self.json, width=None if sys.stdout.isatty() else 160)

    @property
    def err(self) -> Console:
        """Errors and progress."""
        return console(stderr=True)


class _DateType(click.ParamType[date]):
    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date: {_what_is_wrong(str(value))}", param, ctx)


def _what_is_wrong(text: str) -> str:
    """Which part of a would-be YYYY-MM-DD date is wrong, in words."""
    import calendar
    import re

    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text.strip())
    if match is None:
        return "not of the form YYYY-MM-DD (e.g. 2026-12-07)"
    year, month, day = (int(part) for part in match.groups())
    if not 1 <= month <= 12:
        return f"month {match.group(2)} is not 1-12"
    last = calendar.monthrange(year, month)[1] if year >= 1 else 31
    if not 1 <= day <= last:
        return f"day {match.group(3)} is not in month {match.group(2)} (1-{last})"
    return "not a valid date of the form YYYY-MM-DD"


DATE = _DateType()


@click.group()
@click.option(
    "--config", "config", metavar="PATH", help="Config file (default $BRIDGE_CONFIG, else ./config/bridge.toml)."
)
@click.option(
    "--as-of",
    "as_of",
    type=DATE,
    help="Evaluate as if today were this date (default: today in each contract's time zone).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine output on stdout; human text and progress on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Say more (lists every skip).")
@click.option("-q", "--quiet", is_flag=True, help="Say only what matters.")
@click.option("-y", "--yes", is_flag=True, help="Apply without asking first (on a terminal, applying commands ask).")
@click.version_option(package_name="bridge")
@click.pass_context
def cli(
    ctx: click.Context, config: str | None, as_of: date | None, as_json: bool, verbose: bool, quiet: bool, yes: bool
) -> None:
    """Enforce contract terms (reminders, late fees, renegotiations) on your accounting provider (a plugin each)."""
    from bridge import logs

    ctx.obj = Context(config=config, as_of=as_of, json=as_json, verbose=verbose, quiet=quiet, yes=yes)
    # Slow work says what it is doing: a live status on a terminal, timestamped lines on stderr otherwise.
    ctx.call_on_close(logs.install(terminal=sys.stderr.isatty(), quiet=quiet, console=ctx.obj.err))


def _emit_plan(c: Context, plan: Plan, terms: Any = None) -> None:
    """The plan as JSON on stdout (--json, with a one-line summary on stderr), else as tables."""
    from bridge.render import echo_json, render_plan, summary_line

    if c.json:
        echo_json(plan)
        if not c.quiet:
            c.err.print(summary_line(plan))
    elif c.quiet:
        c.out.print(summary_line(plan))
    else:
        from bridge.sync import days_by_zone

        days = days_by_zone(terms, c.as_of) if terms is not None else None
        render_plan(plan, c.out, verbose=c.verbose, days=days)


YES = click.option("-y", "--yes", is_flag=True, help="Do it without asking first.")


def _asks(c: Context, yes: bool) -> bool:
    """Whether an applying command asks first: on a terminal (stdin and stdout), unless --yes or --json (machine
    use). Off a terminal it does not ask, and says so in one line (`--yes` silences it)."""
    if yes or c.yes or c.json:
        return False
    if sys.stdin.isatty() and sys.stdout.isatty():
        return True
    logging.getLogger("bridge.cli").info("not a terminal: applying without asking (use --yes to silence this)")
    return False


class _PlanConfirm:
    """Shows the evaluated plan and asks "Apply these N actions? [y/N]" (the progress display paused meanwhile)."""

    def __init__(self, c: Context, progress: _Progress, terms: Any = None) -> None:
        self.c = c
        self.progress = progress
        self.terms = terms
        self.shown = False

    def __call__(self, plan: Plan) -> bool:
        with self.progress.paused():
            _emit_plan(self.c, plan, self.terms)
            self.shown = True
            n = len(plan.actions)
            return click.confirm(f"Apply {'this action' if n == 1 else f'these {n} actions'}?", default=False)


def _cancelled(c: Context) -> None:
    c.out.print("Nothing was applied.")
    raise SystemExit(1)


@cli.command()
@click.option(
    "--invoices",
    "invoices_path",
    required=True,
    type=click.Path(path_type=Path),
    help="JSON list of normalized invoices (docs/interfaces.md).",
)
@click.option(
    "--history",
    "history_path",
    type=click.Path(path_type=Path),
    help="Actions already carried out: a JSON list, or a plan's `applied` list.",
)
@click.option(
    "--contracts",
    "contracts_path",
    type=click.Path(path_type=Path),
    help="TOML with [contracts], [hold], [exclude] (default: the config).",
)
@click.option(
    "--renegotiations",
    "renegotiations_path",
    type=click.Path(path_type=Path),
    help="JSON list of renegotiation requests, decided or not.",
)
@click.option(
    "--out", "out_path", type=click.Path(path_type=Path, dir_okay=False), help="Also write the plan JSON to this file."
)
@click.pass_obj
def evaluate(
    c: Context,
    invoices_path: Path,
    history_path: Path | None,
    contracts_path: Path | None,
    renegotiations_path: Path | None,
    out_path: Path | None,
) -> None:
    """The policy engine alone, offline: no store, no provider. Prints the plan."""
    from bridge.config import load_terms, resolve_config_path
    from bridge.inputs import load_history, load_invoices, load_renegotiations
    from bridge.policies.evaluate import evaluate as run_policies
    from bridge.policies.evaluate import evaluate_stream

    terms_path = contracts_path if contracts_path is not None else resolve_config_path(c.config, os.environ)
    terms = load_terms(terms_path)
    today: date | dict[str, date] = (
        c.as_of if c.as_of is not None else {k.name: clock.today_in(k.timezone) for k in terms.contracts}
    )
    if isinstance(today, dict) and not today:
        today = clock.today_in("UTC")
    with collector.paused():
        invoices, errors = load_invoices(invoices_path)
        history = load_history(history_path) if history_path else []
        renegotiations = load_renegotiations(renegotiations_path) if renegotiations_path else []
        if c.json:  # written as it is evaluated: a large plan is never held whole
            stream = evaluate_stream(invoices, terms, history, renegotiations, today, errors)
            _emit_stream(c, stream, out_path)
            failed = bool(stream.errors)
        else:
            plan = run_policies(invoices, terms, history, renegotiations, today, errors)
            if out_path is not None:
                _write_atomically(out_path, plan.json_chunks())
            _emit_plan(c, plan, terms if c.as_of is None else None)
            failed = bool(plan.errors)
    if failed:
        raise SystemExit(3)


def _emit_stream(c: Context, stream: PlanStream, out_path: Path | None) -> None:
    """A streamed plan's JSON on stdout (and in `--out`, the same bytes), then its one-line summary on stderr. Its
    skips wait in a temporary file (in memory while small) until the last action is written."""
    import tempfile

    from bridge.render import summary_line

    with tempfile.SpooledTemporaryFile(max_size=SKIPS_IN_MEMORY) as spool:
        if out_path is None:
            for chunk in stream.json_chunks(spool):
                click.echo(chunk, nl=False)
        else:  # the file first, as for a plan held whole; then its bytes on stdout
            _write_atomically(out_path, stream.json_chunks(spool))
            with out_path.open("rb") as written:
                for block in iter(lambda: written.read(1 << 20), b""):
                    click.echo(block, nl=False)
    if not c.quiet:
        c.err.print(summary_line(stream))


SKIPS_IN_MEMORY = 1 << 20  # bytes of a streamed plan's encoded skips kept in memory before they go to a file


def _runtime(
    c: Context, connections: Sequence[str | None] = (), *, applying: bool = False, decrypts: bool = True
) -> Any:
    """Settings, store and token vault for commands that touch the providers.

    Only a command that `decrypts` tokens needs the secret key: a read-only one (the ledger, the list of
    connections) runs without it.

    The named `connections` are checked against the config first: a usage error writes nothing, not even the store.
    An `applying` command (one that writes to the books) refuses `--as-of` unless every connection it touches is an
    emulator: a date in the future would charge fees that are not owed yet.
    """
    from bridge.auth.vault import TokenVault, fernet_from_env
    from bridge.config import load_settings, resolve_config_path
    from bridge.store import Store
    from bridge.sync import Runtime

    settings = load_settings(resolve_config_path(c.config, os.environ))
    for name in connections:
        if name is not None:
            settings.connection(name)  # ConfigError (exit 2) naming it when unknown
    if applying:
        _writes_as_of_today(c, settings, [n for n in connections if n is not None])
    try:
        fernet = fernet_from_env(os.environ, settings.secrets.key_env)
    except ConfigError:
        if decrypts:
            raise
        from cryptography.fernet import Fernet, MultiFernet

        fernet = MultiFernet([Fernet(Fernet.generate_key())])  # a throwaway key: this command decrypts nothing
    store = Store.open(settings.store.url)
    return Runtime(settings, store, TokenVault(store, fernet))


def _writes_as_of_today(c: Context, settings: Any, named: Sequence[str]) -> None:
    """`--as-of` with a command that writes to the books: refused (exit 2) unless every connection it touches (the
    named ones, else all) is an emulator."""
    if c.as_of is None:
        return
    touched = [settings.connection(n) for n in named] if named else list(settings.connections)
    real = [conn.name for conn in touched if not conn.is_emulator]
    if real:
        raise ConfigError(
            f"--as-of {c.as_of.isoformat()} is for looking, not for writing: {', '.join(real)} "
            f"{'is a real provider' if len(real) == 1 else 'are real providers'} (no loopback base_url), and "
            "a date other than today could charge fees that are not owed or send reminders that are not due. "
            "Use `bridge --as-of ... sync --dry-run` to see that day's plan; apply only as of today."
        )


class _Progress:
    """Progress on stderr: a spinner while pulling, a bar while applying (silent with -q)."""

    def __init__(self, c: Context) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            console=c.err,
            transient=True,
            disable=c.quiet,
        )
        self._task = self._bar.add_task("starting", total=None)

    def __enter__(self) -> _Progress:
        from bridge.logs import status_handler

        self._bar.start()
        self._handler = status_handler()
        if self._handler is not None:  # the log's lines of slow work become this display's status
            self._saved = self._handler.console, self._handler.status
            self._handler.console, self._handler.status = self._bar.console, self.phase
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handler is not None:
            self._handler.console, self._handler.status = self._saved
        self._bar.stop()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The display off while the block prints and asks."""
        self._bar.stop()
        try:
            yield
        finally:
            self._bar.start()

    def phase(self, text: str) -> None:
        """A step whose length is unknown (a pull)."""
        self._bar.update(self._task, description=printable(text), total=None, completed=0)

    def actions(self, total: int) -> None:
        """Applying starts: `total` actions."""
        self._bar.update(self._task, description="applying", total=total, completed=0)

    def step(self, action: Any, outcome: str) -> None:
        """One action done."""
        what = printable(f"{action.kind.value} {action.invoice.number}: {outcome}")
        self._bar.update(self._task, advance=1, description=what)


def _report_outcome(
    c: Context,
    outcome: Any,
    out_path: Path | None,
    again: str = "bridge sync",
    *,
    shown: bool = False,
    terms: Any = None,
) -> None:
    """The plan as asked (table or JSON; only its summary when it was `shown` before asking), what happened per
    connection and action, and the exit code."""
    from bridge.render import render_outcome, summary_line

    if outcome.cancelled:
        _cancelled(c)
    if out_path is not None:
        _write_atomically(out_path, outcome.plan.json_chunks())
    if shown:
        c.out.print(summary_line(outcome.plan))
    else:
        _emit_plan(c, outcome.plan, terms)
    if not c.quiet:
        render_outcome(outcome, c.out if not c.json else c.err)
    _report_interruption(c, outcome.report, again)
    raise SystemExit(outcome.exit_code)


def _report_interruption(c: Context, report: Any, again: str) -> None:
    """After a SIGINT/SIGTERM while applying: how much was done, and that running again finishes it."""
    if report is None or not report.interrupted:
        return
    console = c.out if not c.json else c.err
    rest = f"; run `{again}` again to continue" if report.not_started else "; nothing was left undone"
    console.print(
        f"Interrupted: {len(report.applied)} applied, {len(report.not_started)} not started{rest}.", markup=False
    )
    if c.verbose:
        for item in report.not_started:
            console.print(f"not started {item['key']}", markup=False)


NO_CONNECTIONS = (
    "No connections yet: run `bridge link quickbooks|xero|freshbooks` (or `bridge demo` to try the emulators)."
)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Pull and evaluate; write nothing to any provider, send nothing.")
@click.option("--connection", "connections", multiple=True, metavar="NAME", help="Only this connection (repeatable).")
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False), help="Write the plan JSON here.")
@click.option("--full", is_flag=True, help="Read everything again instead of only what changed.")
@YES
@click.pass_obj
def sync(c: Context, dry_run: bool, connections: tuple[str, ...], out_path: Path | None, full: bool, yes: bool) -> None:
    """Pull every (or the named) connection, evaluate the contracts, apply the plan.

    On a terminal the plan is shown first and applied only when you say yes (--yes: without asking)."""
    from bridge.interrupt import StopOnSignal
    from bridge.sync import sync as run_sync

    rt = _runtime(c, connections, applying=not dry_run)
    if not rt.settings.connections and not c.quiet:
        c.err.print(NO_CONNECTIONS)
    asks = not dry_run and _asks(c, yes)
    try:
        with _Progress(c) as progress:
            confirm = _PlanConfirm(c, progress, rt.settings.terms) if asks else None
            outcome = run_sync(
                rt,
                connections,
                dry_run=dry_run,
                as_of=c.as_of,
                full=full,
                progress=progress,
                stop=StopOnSignal(),
                confirm=confirm,
            )
    finally:
        rt.store.close()
    shown = confirm is not None and confirm.shown
    _report_outcome(c, outcome, out_path, shown=shown, terms=rt.settings.terms)


@cli.command()
@click.argument("plan_path", metavar="PLAN.json", type=click.Path(path_type=Path, dir_okay=False))
@YES
@click.pass_obj
def apply(c: Context, plan_path: Path, yes: bool) -> None:
    """Carry out a plan written by `sync --dry-run --out` after re-checking each invoice."""
    from bridge.errors import ConfigError
    from bridge.inputs import read_json
    from bridge.interrupt import StopOnSignal
    from bridge.plan import Plan
    from bridge.sync import apply_plan

    data = read_json(plan_path, "plan")
    try:
        plan = Plan.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"not a plan written by bridge sync --out: {exc}", str(plan_path)) from None
    named = sorted({a.connection for a in plan.actions})
    rt = _runtime(c, named, applying=True)
    asks = _asks(c, yes)
    try:
        with _Progress(c) as progress:
            confirm = _PlanConfirm(c, progress, rt.settings.terms) if asks else None
            outcome = apply_plan(rt, plan, progress, as_of=c.as_of, stop=StopOnSignal(), confirm=confirm)
    finally:
        rt.store.close()
    shown = confirm is not None and confirm.shown
    _report_outcome(c, outcome, None, again=f"bridge apply {plan_path}", shown=shown, terms=rt.settings.terms)


@cli.command()
@click.option("--connection", help="Only this connection.")
@click.option("--invoice", "invoice_number", metavar="NUMBER", help="Only this invoice number.")
@click.option("--state", "states", multiple=True, help="Only entries in this state (pending, applied, in_doubt, ...).")
@click.option(
    "--kind", "kinds", multiple=True, type=click.Choice([k.value for k in ActionKind]), help="Only this kind."
)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Only entries dated on or after this day.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Only entries dated on or before this day.")
@click.option("--customer", metavar="TEXT", help="Only customers whose name contains TEXT (any case).")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Write the rows as CSV to this file ('-': stdout) for a spreadsheet.",
)
@click.pass_obj
def ledger(
    c: Context,
    connection: str | None,
    invoice_number: str | None,
    states: tuple[str, ...],
    kinds: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    customer: str | None,
    csv_path: Path | None,
) -> None:
    """The audit trail: every action planned, applied, dropped or failed, with totals per currency.

    An entry's date is the day it was applied at the provider, else the day it was planned (UTC).
    """
    import json as jsonlib

    from bridge.files import write_private
    from bridge.render import ledger_csv, ledger_customer, ledger_date, render_ledger
    from bridge.store.rows import LEDGER_STATES

    unknown = sorted(set(states) - set(LEDGER_STATES))
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)} (states: {', '.join(LEDGER_STATES)})", param_hint="--state")
    rt = _runtime(c, decrypts=False)
    try:
        configured = {x.name for x in rt.settings.connections}
        if connection is not None and connection not in configured and not rt.store.ledger(connection=connection):
            # Neither configured nor in the ledger (a removed connection keeps its history): a typo, not "empty".
            rt.settings.connection(connection)  # ConfigError (exit 2) naming it and the configured ones
        entries = rt.store.ledger(
            connection=connection, invoice_number=invoice_number, states=states or None, kinds=kinds or None
        )
        wanted = (customer or "").casefold()
        entries = [
            e
            for e in entries
            if (since is None or ledger_date(e) >= since.date())
            and (until is None or ledger_date(e) <= until.date())
            and wanted in ledger_customer(e).casefold()
        ]
        events = {e.key: rt.store.ledger_events(e.key) for e in entries} if c.verbose else {}
    finally:
        rt.store.close()
    if csv_path is not None:
        text = ledger_csv(entries)
        if str(csv_path) == "-":
            click.echo(text, nl=False)
        else:
            write_private(csv_path, text)
            c.err.print(safe(f"{len(entries)} ledger rows written to {csv_path}."))
        return
    if c.json:
        rows = [
            {
                "key": e.key,
                "connection": e.connection,
                "kind": e.kind,
                "invoice": e.invoice_number,
                "customer": ledger_customer(e),
                "date": ledger_date(e).isoformat(),
                "state": e.state,
                "amount": None if e.amount is None else f"{e.amount:f}",
                "currency": e.currency,
                "clause": e.clause,
                "reason": e.reason,
                "form": e.form,
                "response_id": e.response_id,
                "error": e.error,
                "attempts": e.attempts,
                "applied_on": e.applied_on.isoformat() if e.applied_on else None,
                "created_at": e.created_at.isoformat(),
                "updated_at": e.updated_at.isoformat(),
            }
            for e in entries
        ]
        click.echo(jsonlib.dumps(rows, indent=2))
    else:
        filtered = bool(states or kinds or since or until or customer)
        render_ledger(entries, events, c.out, filtered=filtered)
        if not entries and not rt.settings.connections:
            c.out.print(NO_CONNECTIONS)


@cli.command()
@click.option("--connection", required=True, help="The connection the invoice is in.")
@click.option("--invoice", "invoice_number", required=True, metavar="NUMBER", help="The invoice number.")
@click.option("--new-due-date", "new_due", required=True, type=DATE, help="The due date the client asks for.")
@click.option("--note", default="", help="What the client said.")
@click.option("--by", "requested_by", default="", help="Who asked (e-mail or name).")
@click.option("--dry-run", is_flag=True, help="Decide and show, but record and write nothing.")
@YES
@click.pass_obj
def renegotiate(
    c: Context,
    connection: str,
    invoice_number: str,
    new_due: date,
    note: str,
    requested_by: str,
    dry_run: bool,
    yes: bool,
) -> None:
    """Record a client's request to move a due date: accepted or refused, with the clause and the message."""
    from bridge.interrupt import StopOnSignal
    from bridge.render import render_decision
    from bridge.sync import renegotiate as run_renegotiate

    rt = _runtime(c, [connection], applying=not dry_run)
    shown: list[bool] = []

    def confirm(decision: Any) -> bool:
        render_decision(decision, c.out)
        shown.append(True)
        return click.confirm(f"Record this and write it back to {connection}?", default=False)

    asks = not dry_run and _asks(c, yes)
    try:
        decision = run_renegotiate(
            rt,
            connection,
            invoice_number,
            new_due,
            note=note,
            requested_by=requested_by,
            as_of=c.as_of,
            dry_run=dry_run,
            stop=StopOnSignal(),
            confirm=confirm if asks else None,
        )
    finally:
        rt.store.close()
    if decision.cancelled:
        _cancelled(c)
    if c.json:
        from bridge.render import echo_json

        echo_json(decision.plan)
    render_decision(decision, c.err if c.json else c.out, outcome_only=bool(shown))
    _report_interruption(c, decision.report, "bridge sync")
    raise SystemExit(decision.exit_code)


@cli.command()
@click.argument("action_key")
@click.option("--note", default="", help="Why it is forgiven (kept in the ledger with who forgave it).")
@click.option("--by", "forgiven_by", default="", metavar="NAME", help="Who forgives it (default: the OS user).")
@click.option("--all", "all_fees", is_flag=True, help="Also forgive every later late fee on the invoice, for good.")
@YES
@click.pass_obj
def forgive(c: Context, action_key: str, note: str, forgiven_by: str, all_fees: bool, yes: bool) -> None:
    """Take back a late fee the bridge charged (ACTION_KEY, as `bridge ledger` shows it): its line comes off the
    invoice, or its separate fee invoice is voided, exactly once; the ledger records who forgave it and why."""
    from bridge.forgive import charged_fee
    from bridge.forgive import forgive as run_forgive
    from bridge.render import render_forgiven

    rt = _runtime(c)
    try:
        fee = charged_fee(rt.store, action_key)  # usage errors first: nothing is written
        _writes_as_of_today(c, rt.settings, [fee.connection])
        if _asks(c, yes):
            what = f"{fee.amount} {fee.currency} on invoice {fee.invoice_number} ({fee.connection})"
            more = ", and every later late fee on that invoice" if all_fees else ""
            if not click.confirm(f"Take back the late fee of {what}{more}?", default=False):
                _cancelled(c)
        result = run_forgive(rt, action_key, note=note, by=forgiven_by, all_fees=all_fees, as_of=c.as_of)
    finally:
        rt.store.close()
    if c.json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    render_forgiven(result, c.err if c.json else c.out)
    raise SystemExit(result.exit_code)


def _refuse_secret_option(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise click.UsageError(
            "--client-secret is not taken: a secret on the command line shows in `ps` and the shell's history. "
            "Set BRIDGE_<PROVIDER>_CLIENT_SECRET, or leave it unset on a terminal to be asked for it hidden "
            "(and consider the secret you typed exposed: rotate it in the provider's developer portal).",
            ctx,
        )


def _client_secret(provider: str, client_id: str | None, base_url: str | None) -> str | None:
    """The app's client secret: the environment, else a hidden prompt on a terminal, else None (app_for says what
    to set). Not asked for against the sandbox, nor before there is a client id to go with it."""
    prefix = f"BRIDGE_{provider.upper()}_"
    secret = os.environ.get(prefix + "CLIENT_SECRET")
    if secret or base_url is not None or not (client_id or os.environ.get(prefix + "CLIENT_ID")):
        return secret or None
    if not sys.stdin.isatty():
        return None
    return str(click.prompt(f"{provider} client secret", hide_input=True, err=True)) or None


def _config_for_link(c: Context) -> tuple[Path, Any]:
    """The config file `link` writes to (created when missing) and the settings it holds now."""
    from bridge.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, Settings, StoreSettings, load_settings

    path = Path(c.config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH).expanduser()
    if path.is_file():
        return path, load_settings(path)
    store = StoreSettings(url=f"sqlite:///{path.parent.resolve() / 'bridge.db'}")
    return path, Settings(source=path.resolve(), store=store)


class _InstalledProviders(click.Choice[str]):
    """The names of the installed provider plugins, read when the choice is first needed (not at import)."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        from bridge.providers import installed

        return tuple(sorted(installed()))

    @choices.setter
    def choices(self, value: object) -> None:
        pass


@cli.command()
@click.argument("provider", type=_InstalledProviders())
@click.option("--name", help="The connection's name in the config (default: the provider's name).")
@click.option("--manual", is_flag=True, help="Headless: print the consent URL, then paste the URL it sends you to.")
@click.option("--base-url", help="An emulator instead of the real provider (`bridge sandbox serve` prints it).")
@click.option(
    "--environment",
    type=click.Choice(["production", "sandbox"]),
    default="production",
    show_default=True,
    help="Which of the real service's environments (QuickBooks: sandbox = Intuit's development companies).",
)
@click.option("--client-id", help="Your app's client id (or BRIDGE_<PROVIDER>_CLIENT_ID).")
@click.option("--client-secret", hidden=True, expose_value=False, callback=_refuse_secret_option)
@click.option("--tenant", help="The company / organisation / account id to link, without a prompt.")
@click.option(
    "--via-server",
    metavar="URL",
    help="Receive the provider's redirect on a running `bridge serve` at URL (its public_url), for providers that "
    "redirect only to https addresses; register URL/oauth/PROVIDER/callback with the provider's app.",
)
@click.pass_obj
def link(
    c: Context,
    provider: str,
    name: str | None,
    manual: bool,
    base_url: str | None,
    environment: str,
    client_id: str | None,
    tenant: str | None,
    via_server: str | None,
) -> None:
    """Link a company through OAuth; the connection goes into the config, its tokens (encrypted) into the store.

    The app's client secret is read from BRIDGE_<PROVIDER>_CLIENT_SECRET, or typed at a hidden prompt on a
    terminal (never an option: options show in `ps` and shell history). The sandbox needs none.
    """
    import webbrowser

    from pydantic import ValidationError

    from bridge.auth import link as linking
    from bridge.auth.vault import fernet_from_env
    from bridge.config import ConnectionSettings
    from bridge.providers import get as provider_named

    descriptor = provider_named(provider)
    name = name or provider
    try:
        ConnectionSettings(name=name, provider=provider, tenant_id="-", base_url=base_url, environment=environment)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = str(problem["loc"][0]) if problem["loc"] else "environment"
        option = {"name": "--name", "base_url": "--base-url"}.get(where, f"--{where}")
        message = str(problem["msg"]).removeprefix("Value error, ").removeprefix("environment: ")
        raise ConfigError(f"{option}: {message}") from None
    path, settings = _config_for_link(c)
    if not manual and not via_server and base_url is None and descriptor.https_redirect_only:
        raise ConfigError(f"{provider} redirects to https addresses only: link with --via-server URL or --manual")
    if via_server:
        _check_via_server(via_server, provider, manual=manual, emulator=base_url is not None)
    app = linking.app_for(
        provider, os.environ, client_id, _client_secret(provider, client_id, base_url), sandbox=base_url is not None
    )
    fernet = fernet_from_env(os.environ, settings.secrets.key_env)
    if via_server:
        import dataclasses

        app = dataclasses.replace(app, redirect_uri=linking.ServerCallback.redirect_uri(via_server, provider))

        def browse(url: str) -> None:
            c.err.print("Open this page in a browser (on any machine), consent, and come back here:")
            c.err.print(safe(url), soft_wrap=True)
            webbrowser.open(url)

        receive: Any = linking.ServerCallback(via_server, provider, linking.browse_sandbox if base_url else browse)
    elif manual:

        def ask(url: str) -> str:
            c.err.print("Open this page in a browser, consent, then paste the address it sends you to:")
            c.err.print(safe(url), soft_wrap=True)
            return str(click.prompt("redirect URL", err=True))

        receive = linking.paste(ask)
    elif base_url is not None:
        receive = linking.follow_redirect  # the sandbox consents at once: no browser
    else:
        receive = linking.LoopbackCallback(open_browser=webbrowser.open)

    def ask_tenant(tenants: list[Any]) -> Any:
        if not sys.stdin.isatty():
            return linking.pick(None)(tenants)  # raises, listing them: use --tenant
        for i, t in enumerate(tenants, start=1):
            c.err.print(safe(f"  {i}. {t.name or t.id} ({t.id})"))
        return tenants[int(click.prompt("which one", type=click.IntRange(1, len(tenants)), err=True)) - 1]

    created = _absent_files(path, settings.store.url)
    try:
        described, entry, tenant_name = _link_into_store(
            settings,
            fernet,
            provider,
            name,
            app,
            (base_url, environment),
            receive,
            linking.pick(tenant, ask_tenant),
            path,
        )
    except BaseException:
        _remove_created(created)  # a failed link leaves no store or config file it made behind
        raise
    c.err.print(safe(f"Linked {name}: {described}; written to {path}."))
    if c.json:
        print(json.dumps({**entry, "tenant_name": tenant_name, "check": described}))


@cli.command("worker")
@click.option("--broker", metavar="URL", help="redis://HOST:PORT/DB (default [server] broker).")
@click.option("--concurrency", type=click.IntRange(1, 256), help="Syncs run at once (default [server] workers, 2).")
@click.pass_obj
def worker_command(c: Context, broker: str | None, concurrency: int | None) -> None:
    """Run the syncs a `bridge serve --broker` schedules (a Celery worker on Redis; any number, on any machine).

    Each provider account's rate budget is shared with every other process through the broker's Redis. Logs are
    JSON lines on stderr. SIGTERM: no new run is taken, the runs in flight stop after their current action, exit 0.
    """
    from bridge import logs
    from bridge.server.distributed import check_broker, check_store, run_worker

    logs.switch_to_json(quiet=c.quiet, also=("celery",))
    rt = _runtime(c)
    try:
        url = broker if broker is not None else rt.settings.server.broker
        if not url:
            raise ConfigError("bridge worker needs a broker: --broker redis://HOST:PORT/DB or [server] broker")
        check_broker(url, "--broker" if broker is not None else "server.broker")
        check_store(rt.settings.store.url)
        from bridge.review.service import for_runtime

        server = rt.settings.server
        # Plans held for review go to the store, and notices to [notify], as on `bridge serve`.
        reviews = for_runtime(rt, server.public_url or f"http://{server.host}:{server.port}")
        try:
            code = run_worker(
                lambda: rt,
                url,
                concurrency=concurrency or server.workers,
                review=reviews,
                notices=reviews,
            )
        finally:
            reviews.close()
    finally:
        rt.store.close()
    raise SystemExit(code)


def _check_via_server(url: str, provider: str, *, manual: bool, emulator: bool) -> None:
    """`--via-server URL`: an http(s) address without a query; https unless it is a loopback address (which only
    development apps and the sandbox accept)."""
    from urllib.parse import urlsplit

    if manual:
        raise ConfigError("--via-server and --manual: choose one way to receive the redirect")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"--via-server: expected the server's public address (https://host[/path]), got {url!r}")
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not loopback and not emulator:
        raise ConfigError(
            f"--via-server: {provider} redirects only to https addresses (loopback aside): {url!r} is not one"
        )


def _absent_files(config: Path, store_url: str) -> list[Path]:
    """The config file, the SQLite store (with its side files) and their folders that do not exist yet."""
    from bridge.store.engine import parse_url, sqlite_path

    candidates = [config.parent, config]
    try:
        database = sqlite_path(parse_url(store_url))
    except ConfigError:
        database = None
    if database is not None:
        candidates += [database.parent, database]
        candidates += [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", "-journal")]
    return [p for p in dict.fromkeys(candidates) if not p.exists()]


def _remove_created(created: Sequence[Path]) -> None:
    """Remove what `_absent_files` listed and now exists: files first, then the folders if left empty."""
    import contextlib

    for p in created:
        if p.is_file():
            with contextlib.suppress(OSError):
                p.unlink()
    for p in created:
        if p.is_dir():
            with contextlib.suppress(OSError):
                p.rmdir()  # only when empty


def _link_into_store(
    settings: Any,
    fernet: Any,
    provider: str,
    name: str,
    app: Any,
    where: tuple[str | None, str],
    receive: Any,
    choose: Any,
    path: Path,
) -> tuple[str, dict[str, Any], str | None]:
    """The OAuth dance, the tokens into the store, one check call, then the connection into the config.

    `where`: the emulator's base URL (None: the real service) and the real service's environment."""
    base_url, environment = where
    from bridge.auth import link as linking
    from bridge.auth.vault import TokenVault
    from bridge.config import ConnectionSettings
    from bridge.config_edit import upsert_connection
    from bridge.providers import get as provider_named
    from bridge.store import Store

    descriptor = provider_named(provider)
    with Store.open(settings.store.url) as store:
        vault = TokenVault(store, fernet)
        linked = linking.link(
            store,
            vault,
            provider,
            name=name,
            app=app,
            base_url=base_url,
            receive=receive,
            choose=choose,
            environment=environment,
        )
        conn = ConnectionSettings(
            name=name, provider=provider, tenant_id=linked.tenant.id, base_url=base_url, environment=environment
        )
        env = {**os.environ, f"BRIDGE_{provider.upper()}_CLIENT_ID": app.client_id}
        env[f"BRIDGE_{provider.upper()}_CLIENT_SECRET"] = app.client_secret
        try:
            described = descriptor.build_connector(conn, vault, env).check()
        except BridgeError:
            store.remove_connection(name)  # nothing half-linked stays behind
            raise
        entry = {
            "name": name,
            "provider": provider,
            "tenant_id": linked.tenant.id,
            "base_url": base_url,
            "environment": None if environment == "production" else environment,  # None: the key is left out
        }
        upsert_connection(path, entry)
    return str(described), entry, linked.tenant.name


@cli.group()
def connections() -> None:
    """The linked connections: list, check, remove."""


@connections.command("list")
@click.pass_obj
def connections_list(c: Context) -> None:
    """Every connection in the config, and whether the store holds its tokens."""
    rt = _runtime(c, decrypts=False)
    with rt.store:
        known = {row.name: row for row in rt.store.connections()}
        rows = []
        for conn in rt.settings.connections:
            row = known.get(conn.name)
            linked = rt.store.load_token(conn.name) is not None
            last = row.last_sync_at if row and row.last_sync_at else None
            rows.append(
                {
                    "name": conn.name,
                    "provider": conn.provider,
                    "tenant_id": conn.tenant_id,
                    "base_url": conn.base_url,
                    "linked": linked,
                    "last_sync_at": last.isoformat() if last else None,
                    "last_sync_shown": clock.local_text(last) if last else "never",
                }
            )
    if c.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "last_sync_shown"} for r in rows], indent=2))
        return
    if not rows:
        c.out.print(NO_CONNECTIONS)
        return
    from rich.table import Table

    table = Table("name", "provider", "tenant", "linked", "last sync")
    for r in rows:
        table.add_row(
            safe(r["name"]),
            safe(r["provider"]),
            safe(r["tenant_id"]),
            "yes" if r["linked"] else "no (run bridge link)",
            r["last_sync_shown"],
        )
    c.out.print(table)


@connections.command("check")
@click.argument("name")
@click.pass_obj
def connections_check(c: Context, name: str) -> None:
    """One authenticated call to the provider (tokens are refreshed if they need to be)."""
    rt = _runtime(c, [name])
    with rt.store:
        conn = rt.settings.connection(name)
        built, failed = rt.connectors([conn])
        if name in failed:
            raise BridgeError(f"connection {name!r} cannot be used: {failed[name]}")
        described = built[name].check()
    if c.json:
        click.echo(json.dumps({"name": name, "provider": conn.provider, "ok": True, "check": described}))
        return
    c.out.print(safe(f"{name}: ok, {described}"))


@connections.command("remove")
@click.argument("name")
@YES
@click.pass_obj
def connections_remove(c: Context, name: str, yes: bool) -> None:
    """Revoke the connection's tokens at the provider, forget them, and take it out of the config.

    On a terminal it asks first (--yes: without asking); the ledger keeps the connection's history."""
    from bridge.auth import link as linking
    from bridge.config_edit import remove_connection
    from bridge.providers import installed

    rt = _runtime(c, [name])
    if _asks(c, yes):
        question = f"Remove {name}: revoke its tokens at the provider and take it out of {rt.settings.source}?"
        if not click.confirm(question, default=False):
            rt.store.close()
            c.out.print("Nothing was removed.")
            raise SystemExit(1)
    with rt.store:
        conn = rt.settings.connection(name)
        revoked = "no tokens were stored"
        if rt.store.load_token(name) is not None:
            tokens, _ = rt.vault.load(name)
            descriptor = installed().get(conn.provider)
            if descriptor is None:
                revoked = f"{conn.provider} has no revocation here"
            else:
                app = linking.app_for(conn.provider, os.environ, None, None, sandbox=conn.base_url is not None)
                descriptor.link_flow(conn.base_url, conn.environment).revoke(app, tokens)
                revoked = "tokens revoked at the provider"
        rt.store.remove_connection(name)
    remove_connection(rt.settings.source, name)
    if c.json:
        click.echo(json.dumps({"name": name, "provider": conn.provider, "removed": True, "tokens": revoked}))
        return
    c.out.print(safe(f"Removed {name}: {revoked}; the ledger keeps its history."))


@cli.group("secrets")
def secrets_group() -> None:
    """The key that encrypts stored tokens."""


@secrets_group.command("rotate")
@click.pass_obj
def secrets_rotate(c: Context) -> None:
    """Re-encrypt every stored token under the current key.

    Put the new key in BRIDGE_SECRET_KEY (or the config's `secrets.key_env`) and the previous one(s) in
    BRIDGE_SECRET_KEY_OLD (comma-separated); syncs keep working meanwhile. Afterwards the old keys can go.
    """
    from bridge.auth.vault import OLD_KEYS_ENV

    rt = _runtime(c)
    with rt.store:
        done = rt.vault.rotate()
    if c.json:
        click.echo(json.dumps({"reencrypted": len(done.rotated), "unreadable": list(done.unreadable)}))
    if not c.quiet or done.unreadable:
        said = c.err if c.json else c.out
        said.print(safe(f"Re-encrypted {len(done.rotated)} token(s) under the current key."))
        if done.unreadable:
            said.print(
                safe(
                    f"No key could read the tokens of {', '.join(done.unreadable)}: put the key they were stored "
                    f"under in ${OLD_KEYS_ENV} and run this again, or re-link them."
                )
            )
        elif done.rotated and os.environ.get(OLD_KEYS_ENV):
            said.print(safe(f"Every stored token now uses the current key: ${OLD_KEYS_ENV} can be removed."))
    if done.unreadable:
        raise SystemExit(1)


NO_CONNECTIONS_TO_SERVE = (
    "No connections to serve: link one first (`bridge link quickbooks|xero|freshbooks`), give it a `schedule` "
    "in the config if 07:00 UTC every day does not suit, then start `bridge serve` again."
)


@cli.command("serve")
@click.option("--host", help="Address to listen on (default [server] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default [server] port, 8720; 0: any free port).")
@click.option("--workers", type=click.IntRange(1, 256), help="Worker threads (default [server] workers, 2).")
@click.option("--broker", metavar="URL", help="redis://HOST:PORT/DB: run syncs on `bridge worker` processes.")
@click.pass_obj
def serve_command(c: Context, host: str | None, port: int | None, workers: int | None, broker: str | None) -> None:
    """Schedule every connection's sync, receive provider webhooks, serve /healthz, /readyz and /metrics.

    Logs are JSON lines on stderr. SIGTERM drains: the runs in flight finish their current action, then exit 0."""
    from bridge import logs
    from bridge.server.oauth import oauth_routes
    from bridge.server.serve import serve

    logs.switch_to_json(quiet=c.quiet, also=("uvicorn",))
    rt = _runtime(c)
    server = rt.settings.server
    source = "server.broker" if broker is None else "--broker"
    broker = server.broker if broker is None else broker
    executor: Any = None  # the Celery executor and the metrics that add up the workers', with a broker
    metrics: Any = None
    if broker:
        from bridge.server.distributed import CeleryExecutor, FleetMetrics, celery_app, check_broker, check_store

        try:
            check_broker(broker, source)
            check_store(rt.settings.store.url)
            executor = CeleryExecutor(celery_app(broker))
            metrics = FleetMetrics(broker)
        except BaseException:
            rt.store.close()
            raise
    if not rt.settings.connections:
        rt.store.close()
        c.err.print(NO_CONNECTIONS_TO_SERVE)
        raise SystemExit(2)
    from bridge.review.service import for_runtime
    from bridge.review.web import review_routes

    port = server.port if port is None else port
    reviews = for_runtime(rt, server.public_url or f"http://{host or server.host}:{port}")
    try:
        code = serve(
            rt,
            host=host or server.host,
            port=port,
            workers=workers or server.workers,
            executor_factory=None if executor is None else (lambda run: executor),
            checks=[] if executor is None else [executor.problem],
            metrics=metrics,
            routes=[*oauth_routes(), *review_routes(reviews)],
            ready=lambda url: logging.getLogger("bridge.server").info("listening on %s", url),
            review=reviews,
            notices=reviews,
        )
    finally:
        reviews.close()
        rt.store.close()
    raise SystemExit(code)


@cli.group()
def sandbox() -> None:
    """The local emulators of the three providers."""


@sandbox.command("serve")
@click.option(
    "--seed", "seed_path", type=click.Path(path_type=Path, dir_okay=False), help="Seed file (default: the demo book)."
)
@click.option(
    "--port",
    type=int,
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (fixed, so a linked base_url keeps working after a restart; 0: any free port).",
)
@click.option("--latency-ms", type=click.IntRange(min=0), default=0, help="Delay added to every response.")
@click.option(
    "--faults", "faults", metavar="SPEC", help="Fault rates: JSON text or a JSON file (as POST /_sandbox/faults)."
)
@click.option(
    "--rate-limits",
    "rate_limits",
    type=click.Choice(["published", "strict", "off"]),
    default="published",
    show_default=True,
    help="Each provider's published API limits, half of each (strict), or none.",
)
@click.option("--no-rate-limits", "no_rate_limits", is_flag=True, help="Same as --rate-limits off.")
@click.option(
    "--webhook-url",
    metavar="URL",
    help="Send a signed webhook for every change to URL/PROVIDER (e.g. http://127.0.0.1:8720/webhooks).",
)
@click.option(
    "--webhook-key",
    metavar="KEY",
    help="The key that signs them: the emulator's test key, which the bridge's webhook_secret_env must hold too.",
)
@click.option(
    "--smtp-port",
    "smtp_port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also run an SMTP server on this port (0: any free one); its messages appear in /_sandbox/outbox.",
)
@click.pass_obj
def sandbox_serve(
    c: Context,
    seed_path: Path | None,
    port: int,
    latency_ms: int,
    faults: str | None,
    rate_limits: Literal["published", "strict", "off"],
    no_rate_limits: bool,
    webhook_url: str | None,
    webhook_key: str | None,
    smtp_port: int | None,
) -> None:
    """Run the emulators until interrupted; prints the base URLs (with --json: one JSON line on stdout)."""
    from bridge.errors import ConfigError

    try:  # the emulators are a distribution of their own (sandbox/), never in bridge's wheel
        from bridge_sandbox import Sandbox, SandboxError, WebhookSettings, serve
    except ModuleNotFoundError as exc:
        if exc.name != "bridge_sandbox":
            raise
        from bridge.demo import EMULATORS_MISSING

        raise ConfigError(EMULATORS_MISSING) from None

    webhooks = None
    if webhook_url or webhook_key:
        if not (webhook_url and webhook_key):
            raise ConfigError("--webhook-url and --webhook-key go together")
        webhooks = WebhookSettings(webhook_url, webhook_key)

    def announce(sandbox: Sandbox) -> None:
        # The one JSON document of --json: the base URL and each provider's endpoints, on one line.
        smtp = sandbox.smtp_address
        described: dict[str, Any] = {"base_url": sandbox.base_url, "providers": sandbox.describe()}
        if smtp is not None:
            described["smtp"] = {"host": smtp[0], "port": smtp[1]}
        click.echo(json.dumps(described))
        sys.stdout.flush()

    def to_stderr(line: str) -> None:
        click.echo(line, err=True)

    try:
        limits: Literal["published", "strict", "off"] = "off" if no_rate_limits else rate_limits
        # With --json the human lines go to stderr and the one JSON document to stdout.
        shown: dict[str, Any] = {"echo": to_stderr, "ready": announce} if c.json else {}
        serve(
            seed_path=seed_path,
            port=port,
            latency_ms=latency_ms,
            faults_spec=faults,
            rate_limits=limits,
            webhooks=webhooks,
            smtp_port=smtp_port,
            **shown,
        )
    except SandboxError as exc:  # a bad seed or fault spec: nothing is listening yet
        raise ConfigError(str(exc)) from None


@cli.command()
@click.option("--connection", "connections", multiple=True, metavar="NAME", help="Only this connection (repeatable).")
@click.option("--invoice", "invoice_number", metavar="NUMBER", help="Only the messages about this invoice number.")
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), help="Write one .eml file per e-mail here."
)
@click.pass_obj
def preview(c: Context, connections: tuple[str, ...], invoice_number: str | None, out_dir: Path | None) -> None:
    """The e-mails the next sync would send, exactly as the client will receive them (nothing is sent)."""
    from bridge.preview import preview as run_preview
    from bridge.preview import write_eml

    rt = _runtime(c, connections)
    try:
        with _Progress(c) as progress:
            previews, code = run_preview(rt, connections, as_of=c.as_of, invoice=invoice_number, progress=progress)
    finally:
        rt.store.close()
    written = write_eml(out_dir, previews) if out_dir is not None else []
    if c.json:
        click.echo(json.dumps([p.to_dict() for p in previews], indent=2, ensure_ascii=False))
    else:
        from bridge.render import render_previews

        render_previews(previews, c.out)
    if written and not c.quiet:
        c.err.print(f"{len(written)} .eml file(s) written to {out_dir}", markup=False)
    raise SystemExit(code)


@cli.command()
@click.option(
    "--seed", "seed_path", type=click.Path(path_type=Path, dir_okay=False), help="Seed file (default: the demo book)."
)
@click.option(
    "--contracts",
    "contracts_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Contracts TOML (default: config/demo.toml).",
)
@click.option("--dry-run", is_flag=True, help="Show the plan only; apply nothing.")
@click.option("--keep", is_flag=True, help="Keep the temporary store and config (their folder is printed).")
@click.option("--review", is_flag=True, help="Print a review link per plan and wait for approval instead of applying.")
@click.pass_obj
def demo(
    c: Context, seed_path: Path | None, contracts_path: Path | None, dry_run: bool, keep: bool, review: bool
) -> None:
    """Emulators in-process, connections linked through their OAuth, a dry run, then the real sync (or, with
    --review, the review pages: each plan applied once approved there)."""
    from bridge.demo import run_demo

    code = run_demo(c, seed_path=seed_path, contracts_path=contracts_path, dry_run=dry_run, keep=keep, review=review)
    raise SystemExit(code)


def _write_atomically(path: Path, text: str | Iterable[bytes]) -> None:
    # Never leave a half-written plan behind, nor one others can read: see bridge.files.
    from bridge.files import write_private

    write_private(path, text)


PASSWORD_ENV = "BRIDGE_USER_PASSWORD"


@cli.group()
def users() -> None:
    """The people who review plans on the review page."""


@users.command("add")
@click.argument("name")
@click.option(
    "--connection",
    "connections",
    multiple=True,
    metavar="NAME",
    help="Only the plans of this connection (repeatable; default: every connection).",
)
@click.pass_obj
def users_add(c: Context, name: str, connections: tuple[str, ...]) -> None:
    """Add a reviewer (or set an existing one's password). The password comes from a hidden prompt, or from
    $BRIDGE_USER_PASSWORD when set (for scripts); it is stored only as an argon2 hash."""
    from bridge.review.auth import hash_password
    from bridge.store.review import Reviews

    if not name.strip() or len(name) > 200 or any(ch.isspace() or not ch.isprintable() for ch in name):
        raise ConfigError(f"NAME: {name!r} is not a user name (printable, no spaces, at most 200 characters)")
    rt = _runtime(c, list(connections), decrypts=False)
    password = os.environ.get(PASSWORD_ENV) or ""
    if not password:
        if not sys.stdin.isatty():
            rt.store.close()
            raise ConfigError(f"no password: set ${PASSWORD_ENV}, or run on a terminal to be asked for it")
        password = click.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        rt.store.close()
        raise ConfigError("the password is too short: use at least 10 characters")
    with rt.store:
        new = Reviews(rt.store).add_user(name, hash_password(password), connections or ("*",))
    scope = ", ".join(connections) if connections else "every connection"
    c.out.print(f"{'Added' if new else 'Updated'} user {safe(name)}: reviews the plans of {safe(scope)}.")


def _register_setup_commands() -> None:
    from bridge.cli_setup import config_group, init

    cli.add_command(init)
    cli.add_command(config_group)


_register_setup_commands()


def main() -> None:
    """Console-script entry point: runs the CLI and maps bridge errors to exit codes."""
    try:
        cli.main(standalone_mode=False, prog_name="bridge")
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        raise SystemExit(1) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except BridgeError as exc:
        click.echo(f"error: {printable(exc, multiline=True)}", err=True)
        raise SystemExit(exc.exit_code) from None
    except SystemExit:
        raise
    raise SystemExit(0)


def run() -> NoReturn:
    """The `bridge` process (the console script, `python -m bridge`): `main`, then a quick exit.

    When `main` returns, a command's work is done: its output written, its store committed and closed. Python would
    then free every module and object one at a time (about 0.15 s after a sync: SQLAlchemy, pydantic, the SDKs), and
    the operating system takes the memory back whole anyway. So the exit handlers run (logging flushed, temporary
    files removed), the standard streams are flushed, and the process ends there. Python's usual exit is kept
    whenever something may still need it: another thread still running, a profiler or tracer attached, an exit
    code that is a message, standard streams that cannot be flushed (a closed pipe: Python reports it).
    """
    try:
        main()
        code: str | int | None = 0
    except SystemExit as exc:
        code = exc.code
    if not isinstance(code, int) or sys.getprofile() is not None or sys.gettrace() is not None or _threads_running():
        raise SystemExit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):  # what an exit handler printed
        with suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _threads_running() -> bool:
    """Whether a thread other than this one, which Python's exit would wait for, is still running."""
    import threading

    main_thread = threading.main_thread()
    return any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate())
