"""Getting started: `bridge init` (a starter config) and `bridge config check` (every problem, nothing touched).

Registered on the `bridge` group by bridge/cli.py. `config check` loads the config exactly as every
command does, then checks what loading alone does not: the message templates render, the store URL is
usable, every connection's provider plugin loads and the connection is linked to a company, and the
environment variables the config names are set. It lists every problem found, not only the first.
"""

from __future__ import annotations

import json
import os
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bridge.errors import ConfigError

if TYPE_CHECKING:
    from bridge.cli import Context
    from bridge.config import Settings

STARTER = """\
# The bridge's configuration (docs/interfaces.md; config/bridge.example.toml shows every key).
# Unknown keys are errors, money values are quoted strings ("25.00"), never floats.

[store]
url = "sqlite:///bridge.db"          # next to this file; or postgresql://USER@HOST/DB

[secrets]
key_env = "BRIDGE_SECRET_KEY"        # the environment variable holding the key that encrypts stored tokens

# Connections are added by `bridge link PROVIDER`; none yet.

# One contract: the terms the bridge enforces on the invoices it covers (docs/policy.md).
[contracts.standard]
applies_to = ["*"]                   # customer ids, names or e-mails, or "*" for everyone
currency = "USD"                     # the amounts below are USD: this contract takes USD invoices only
timezone = "America/New_York"        # whose "today" the schedule counts in

# Polite reminders: 3 days before the due date, then 1, 7, 14 and 30 days after it.
[contracts.standard.reminders]
schedule = [-3, 1, 7, 14, 30]
max_reminders = 8
business_days = true
holidays = "US"
channel = "provider"                 # the provider's own invoice e-mail
template = "polite"

# A late fee of 1.5% a month after 5 days' grace, at most 10% of the invoice and 500.00 in all.
[contracts.standard.late_fee]
percent = "1.5"
grace_days = 5
every_days = 30
max_total = "500.00"
max_percent_of_total = "10"
mode = "line"                        # line: added to the invoice; invoice: a separate fee invoice
item = "Late Fee"

# One due-date change per project, up to 30 days.
[contracts.standard.renegotiation]
max_per_project = 1
max_extension_days = 30
"""


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default="the current folder",
    help="Where config/bridge.toml goes.",
)
@click.pass_obj
def init(c: Context, folder: Path) -> None:
    """Write a starter config/bridge.toml (one commented contract, no connections); never overwrites."""
    from bridge.auth.vault import MAKE_KEY
    from bridge.config import DEFAULT_CONFIG_PATH
    from bridge.files import write_private
    from bridge.providers import installed

    path = folder.expanduser() / DEFAULT_CONFIG_PATH
    if path.exists() or path.is_symlink():
        raise ConfigError(f"{path} already exists: init never overwrites a config (`bridge config check` checks it)")
    write_private(path, STARTER)
    shown = _shown(path)
    config = "" if shown == str(DEFAULT_CONFIG_PATH) else f"--config {shown} "
    names = sorted(installed())
    first = "quickbooks" if "quickbooks" in names else (names[0] if names else "PROVIDER")
    others = [n for n in names if n != first]
    steps = [
        ("Make the key that encrypts stored tokens, and keep it safe:", [MAKE_KEY, "export BRIDGE_SECRET_KEY=..."]),
        (
            "Link your company" + (f" (or link {' / '.join(others)} instead):" if others else ":"),
            [f"bridge {config}link {first}"],
        ),
        ("See what the bridge would do, without doing it:", [f"bridge {config}sync --dry-run"]),
    ]
    if c.json:
        click.echo(json.dumps({"config": str(path), "next": [cmd for _, cmds in steps for cmd in cmds]}))
        return
    c.out.print(f"Wrote {shown} (mode 0600). Next:", markup=False, highlight=False)
    for number, (what, commands) in enumerate(steps, start=1):
        c.out.print(f"  {number}. {what}", markup=False, highlight=False, soft_wrap=True)
        for command in commands:
            c.out.print(f"       {command}", markup=False, highlight=False, soft_wrap=True)


@click.group("config")
def config_group() -> None:
    """The configuration file."""


@config_group.command("check")
@click.pass_obj
def config_check(c: Context) -> None:
    """Load the config as every command would and check templates, store, connections and environment."""
    from bridge.config import load_settings, resolve_config_path

    path = resolve_config_path(c.config, os.environ)  # not found: exit 2, listing where it looked
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        problems, summary = [f"{exc.source or path}: {p}" for p in exc.problems], ""
        warnings = []
    else:
        problems = [f"{settings.source}: {p}" for p in check(settings, os.environ)]
        warnings = [f"{settings.source}: {w}" for w in warn(settings)]
        summary = f"config OK: {len(settings.connections)} connections, {len(settings.terms.contracts)} contracts"
    if c.json:
        click.echo(json.dumps({"ok": not problems, "problems": problems, "warnings": warnings}))
    elif warnings:
        for warning in warnings:
            c.err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    if problems:
        if not c.json:
            for problem in problems:
                c.err.print(problem, markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(ConfigError.exit_code)
    if not c.json:
        c.out.print(summary, markup=False, highlight=False)


def check(settings: Settings, env: dict[str, str] | os._Environ[str]) -> list[str]:
    """What loading does not catch, each as `key: problem`, in file order (store, secrets, connections, contracts)."""
    return [*_store(settings), *_secrets(settings, env), *_connections(settings, env), *_templates(settings)]


def warn(settings: Settings) -> list[str]:
    """What is allowed but probably not meant, each as `key: warning`: a contract whose locale's language has
    no messages in its template set (its clients then get the English words, formatted for the locale)."""
    from babel import Locale

    from bridge.messages import template_language, template_languages

    warnings = []
    for contract in settings.terms.contracts:
        template_set = contract.reminders.template
        locale = Locale.parse(contract.locale)  # the config has checked that Babel knows it
        if template_language(template_set, contract.locale) != locale.language:
            warnings.append(
                f"contracts.{contract.name}.locale: {contract.locale!r}: the {template_set!r} messages are not written "
                f"in {locale.english_name or locale.language}; clients get them in English "
                f"(written in: {', '.join(template_languages(template_set))})"
            )
    return warnings


def _store(settings: Settings) -> list[str]:
    from bridge.store.engine import parse_url, sqlite_path

    try:
        url = parse_url(settings.store.url)
    except ConfigError as exc:
        return [f"store.url: {p}" for p in exc.problems]
    if url.drivername.startswith("postgresql"):
        return [] if url.database else ["store.url: names no database (postgresql://USER@HOST/DATABASE)"]
    database = sqlite_path(url)
    if database is None:
        return []
    if database.is_dir():
        return [f"store.url: {database} is a folder, not a database file"]
    folder = database.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return [f"store.url: cannot create {database}: {folder} is not a writable folder"]
    return []


def _secrets(settings: Settings, env: dict[str, str] | os._Environ[str]) -> list[str]:
    from bridge.auth.vault import fernet_from_env

    try:
        fernet_from_env(env, settings.secrets.key_env)
    except ConfigError as exc:
        return [f"secrets.key_env: {p}" for p in exc.problems]
    return []


def _connections(settings: Settings, env: dict[str, str] | os._Environ[str]) -> list[str]:
    from bridge.providers import load_providers

    found, broken = load_providers()
    problems = []
    for index, conn in enumerate(settings.connections):
        where = f"connections[{index}]"
        if conn.provider not in found:
            problems.append(f"{where}.provider: {broken.get(conn.provider, f'{conn.provider!r} is not installed')}")
        elif not conn.tenant_id:
            label = found[conn.provider].tenant_label
            problems.append(
                f"{where}.tenant_id: missing (the {label}); link it with "
                f"`bridge link {conn.provider} --name {conn.name}`"
            )
        if conn.base_url is None:  # a real service: refreshing the tokens needs the app's credentials
            prefix = f"BRIDGE_{conn.provider.upper()}_CLIENT_"
            unset = [prefix + part for part in ("ID", "SECRET") if not env.get(prefix + part)]
            if unset:
                problems.append(
                    f"{where} ({conn.name}): {' and '.join(unset)} not set in the environment: the access token "
                    "cannot be refreshed without your app's client id and secret, so syncs fail once it expires"
                )
    return problems


def _templates(settings: Settings) -> list[str]:
    """Render every message of each contract's template set, in its locale and currency, with sample values."""
    from bridge.messages import MESSAGE_NAMES, MessageContext, render_message, template_language
    from bridge.policies.late_fees import fee_terms
    from bridge.policies.renegotiation import renegotiation_terms

    problems = []
    day = date(2026, 1, 15)
    for contract in settings.terms.contracts:
        where = f"contracts.{contract.name}"
        template_set = contract.reminders.template
        for message in MESSAGE_NAMES:
            sample = MessageContext(
                message=message,  # type: ignore[arg-type]  # MESSAGE_NAMES holds MessageName values
                customer_name="Sample Client",
                invoice_number="1001",
                currency=contract.currency or "USD",
                amount_due=Decimal("100.00"),
                total=Decimal("100.00"),
                due_date=day,
                today=day,
                days_overdue=0,
                clause=f"{where}.reminders",
                step=1,
                new_due_date=day,
                requested_due_date=day,
                refusal_reason="extension_too_long",
                firm_name=settings.terms.firm_name,
                late_fee=fee_terms(contract.late_fee),
                renegotiation=renegotiation_terms(contract),
            )
            try:
                render_message(sample, template_set=template_set, locale=contract.locale)
            except Exception as exc:  # a template or locale that cannot render: say which, go on
                language = template_language(template_set, contract.locale)
                problems.append(
                    f"{where}.reminders.template: {template_set}/{language}/{message}.txt does not render: {exc}"
                )
                break
    return problems


def _shown(path: Path) -> str:
    """`path` relative to the current folder when it is under it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
