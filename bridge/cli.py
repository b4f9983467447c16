"""The `bridge` command line: click commands and rich output, no logic of its own."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from bridge import clock
from bridge.errors import BridgeError
from bridge.plan import Plan


@dataclass(frozen=True, slots=True)
class Context:
    """Global options, shared by every command."""

    config: str | None
    as_of: date | None
    json: bool
    verbose: bool
    quiet: bool

    @property
    def out(self) -> Console:
        """Human output: stdout, or stderr when stdout carries JSON."""
        return Console(stderr=self.json, highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)

    @property
    def err(self) -> Console:
        """Errors and progress."""
        return Console(stderr=True, highlight=False)


class _DateType(click.ParamType[date]):
    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date of the form YYYY-MM-DD", param, ctx)


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
@click.version_option(package_name="bridge")
@click.pass_context
def cli(ctx: click.Context, config: str | None, as_of: date | None, as_json: bool, verbose: bool, quiet: bool) -> None:
    """Enforce contract terms (reminders, late fees, renegotiations) on QuickBooks Online, Xero and FreshBooks."""
    ctx.obj = Context(config=config, as_of=as_of, json=as_json, verbose=verbose, quiet=quiet)


def _emit_plan(c: Context, plan: Plan) -> None:
    """The plan as JSON on stdout (--json, with a one-line summary on stderr), else as tables."""
    from bridge.render import render_plan, summary_line

    if c.json:
        click.echo(plan.to_json(), nl=False)
        if not c.quiet:
            c.err.print(summary_line(plan))
    elif c.quiet:
        c.out.print(summary_line(plan))
    else:
        render_plan(plan, c.out, verbose=c.verbose)


@cli.command()
@click.option(
    "--invoices",
    "invoices_path",
    required=True,
    type=click.Path(path_type=Path),
    help="JSON list of normalized invoices (INTERFACES.md §5).",
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

    terms_path = contracts_path if contracts_path is not None else resolve_config_path(c.config, os.environ)
    terms = load_terms(terms_path)
    invoices, errors = load_invoices(invoices_path)
    history = load_history(history_path) if history_path else []
    renegotiations = load_renegotiations(renegotiations_path) if renegotiations_path else []
    today: date | dict[str, date] = (
        c.as_of if c.as_of is not None else {k.name: clock.today_in(k.timezone) for k in terms.contracts}
    )
    if isinstance(today, dict) and not today:
        today = clock.today_in("UTC")
    plan = run_policies(invoices, terms, history, renegotiations, today, errors)
    if out_path is not None:
        _write_atomically(out_path, plan.to_json())
    _emit_plan(c, plan)
    if plan.errors:
        raise SystemExit(3)


def _write_atomically(path: Path, text: str) -> None:
    # Never leave a half-written plan behind: write beside it, then rename over it.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


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
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None
    except SystemExit:
        raise
    raise SystemExit(0)
