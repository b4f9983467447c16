"""`bridge demo`: the emulators in-process, connections linked through their OAuth, a dry run, then the sync.

The emulators (`bridge_sandbox`, a distribution of its own in sandbox/) are imported only inside
`run_demo`, so bridge works without them; absent, the demo exits 2 saying how to install them.
Everything lives in a temporary folder (kept with --keep) with a throwaway
secret key unless BRIDGE_SECRET_KEY is set. The same `sync` as production runs;
only the providers are emulated.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import requests
from cryptography.fernet import Fernet
from rich.console import Console
from rich.text import Text

from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.config import ConnectionSettings, FirmSettings, Settings, SmtpSettings, StoreSettings, load_terms
from bridge.errors import ConfigError
from bridge.files import write_private
from bridge.render import echo_json, safe
from bridge.store import Store
from bridge.sync import Runtime, days_by_zone, sync

DEMO_CONTRACTS = Path("config/demo.toml")
# The demo's firm, whose mailbox is the sandbox's SMTP server: the contract's own words arrive there.
DEMO_FIRM = FirmSettings(name="Maple & Finch Design", reply_to="accounts@mapleandfinch.example")
DEMO_SENDER = "Maple & Finch Accounts <accounts@mapleandfinch.example>"
NAMES = {"quickbooks": "demo-qbo", "xero": "demo-xero", "freshbooks": "demo-freshbooks"}
EMULATORS_MISSING = (
    "the emulators are not installed: pip install --no-deps -e ./sandbox in the project folder"
    " (or make demo / make test, which install them)"
)


def _contracts_path(given: Path | None) -> Path:
    path = given or DEMO_CONTRACTS
    if not path.is_file():
        raise ConfigError(
            f"contracts file not found: {path} (run from the project folder, or pass --contracts FILE.toml)"
        )
    return path


def _quickbooks_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    old = {i["Id"]: i for i in before.get("Invoice", [])}
    for inv in after.get("Invoice", []):
        prev = old.get(inv["Id"])
        if prev is None:
            lines.append(f"QuickBooks: new invoice {inv.get('DocNumber')} ({inv.get('PrivateNote', '')})")
            continue
        known = {p.get("Id") for p in prev.get("Line", [])}
        for ln in inv.get("Line", []):
            if ln.get("Id") not in known and ln.get("DetailType") == "SalesItemLineDetail":
                what = f"a line '{ln.get('Description')}' {ln.get('Amount')}"
                lines.append(f"QuickBooks: invoice {inv.get('DocNumber')} got {what}")
        if prev.get("DueDate") != inv.get("DueDate"):
            lines.append(
                f"QuickBooks: invoice {inv.get('DocNumber')} due date {prev.get('DueDate')} -> {inv.get('DueDate')}"
            )
    return lines


def _xero_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    from bridge.mapping.xero import day

    lines: list[str] = []
    old = {i["InvoiceID"]: i for i in before.get("Invoices", [])}
    for inv in after.get("Invoices", []):
        number, prev = inv.get("InvoiceNumber"), old.get(inv["InvoiceID"])
        if prev is None:
            lines.append(f"Xero: new invoice {number} ({inv.get('Reference', '')}) for {inv.get('Total')}")
            continue
        known = {p.get("LineItemID") for p in prev.get("LineItems", [])}
        for ln in inv.get("LineItems", []):
            if ln.get("LineItemID") not in known:
                lines.append(f"Xero: invoice {number} got a line '{ln.get('Description')}' {ln.get('LineAmount')}")
        if prev.get("DueDate") != inv.get("DueDate"):
            was, now = day(prev.get("DueDate"), "DueDate", required=False), day(inv.get("DueDate"), "DueDate")
            lines.append(f"Xero: invoice {number} due date {was} -> {now}")
    return lines


def _freshbooks_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    old = {i["id"]: i for i in before.get("invoices", [])}
    for inv in after.get("invoices", []):
        number, prev = inv.get("invoice_number"), old.get(inv["id"])
        if prev is None:
            total = (inv.get("amount") or {}).get("amount")
            lines.append(f"FreshBooks: new invoice {number} ({inv.get('notes', '')}) for {total}")
            continue
        known = {p.get("lineid") for p in prev.get("lines", [])}
        for ln in inv.get("lines", []):
            if ln.get("lineid") not in known:
                amount = (ln.get("amount") or {}).get("amount")
                lines.append(f"FreshBooks: invoice {number} got a line '{ln.get('description')}' {amount}")
        if prev.get("due_date") != inv.get("due_date"):
            lines.append(f"FreshBooks: invoice {number} due date {prev.get('due_date')} -> {inv.get('due_date')}")
    return lines


def _sandbox_changes(before: Mapping[str, Any], after: Mapping[str, Any], outbox: list[Mapping[str, Any]]) -> list[str]:
    """What the sync changed at the emulated providers, in plain words."""
    lines = _quickbooks_changes(before.get("quickbooks", {}), after.get("quickbooks", {}))
    lines += _xero_changes(before.get("xero", {}), after.get("xero", {}))
    lines += _freshbooks_changes(before.get("freshbooks", {}), after.get("freshbooks", {}))
    for mail in outbox:
        if mail.get("channel") == "smtp":
            attached = ", ".join(mail.get("attachments") or []) or "no attachment"
            lines.append(f"SMTP (the firm's mailbox): e-mail to {mail.get('to')}: {mail.get('subject')} ({attached})")
        else:
            lines.append(f"{mail.get('provider')}: e-mail to {mail.get('to')}: {mail.get('subject')}")
    return lines


def run_demo(
    c: Any, *, seed_path: Path | None, contracts_path: Path | None, dry_run: bool, keep: bool, review: bool = False
) -> int:
    """Run the demo; returns the exit code. `review`: the plan waits for approval on the review pages."""
    try:  # the emulators are a distribution of their own (sandbox/), never in bridge's wheel
        from bridge_sandbox import Sandbox, SandboxError, default_seed, read_seed
    except ModuleNotFoundError as exc:
        if exc.name != "bridge_sandbox":
            raise
        raise ConfigError(EMULATORS_MISSING) from None

    out: Console = c.out
    terms = load_terms(_contracts_path(contracts_path))
    try:
        seed = read_seed(seed_path) if seed_path else default_seed()
    except SandboxError as exc:
        raise ConfigError(f"--seed: {exc}") from None
    folder = Path(tempfile.mkdtemp(prefix="bridge-demo-"))
    key = os.environ.get("BRIDGE_SECRET_KEY") or Fernet.generate_key().decode()
    env = {**os.environ, "BRIDGE_SECRET_KEY": key}
    store = Store.open(f"sqlite:///{folder / 'bridge.db'}")
    try:
        with Sandbox(seed, smtp_port=0) as sandbox:
            base = sandbox.base_url
            smtp_address = sandbox.smtp_address
            assert smtp_address is not None
            smtp = SmtpSettings.model_validate(
                {"host": smtp_address[0], "port": smtp_address[1], "security": "none", "from": DEMO_SENDER}
            )
            if contracts_path is None:  # the demo's own contracts: reminders by SMTP, so the contract's words arrive
                terms = _by_smtp(terms)
            vault = TokenVault(store, Fernet(key.encode()))
            connections = []
            for provider, name in NAMES.items():
                if provider in seed:
                    tenant = link_sandbox(provider, store, vault, base, name)
                    connections.append(
                        ConnectionSettings(name=name, provider=provider, tenant_id=tenant, base_url=base)
                    )
                    env[f"BRIDGE_{provider.upper()}_CLIENT_ID"] = "sandbox-client"
                    env[f"BRIDGE_{provider.upper()}_CLIENT_SECRET"] = "sandbox-secret"
            settings = Settings(
                source=folder / "bridge.toml",
                store=StoreSettings(url=f"sqlite:///{folder / 'bridge.db'}"),
                connections=tuple(connections),
                terms=terms,
                firm=DEMO_FIRM,
                smtp=smtp,
            )
            rt = Runtime(settings, store, vault, env)
            if not c.quiet:
                linked = ", ".join(x.name for x in connections)
                where = f"store in {folder}" if keep else "store in a temporary folder, gone on exit (--keep keeps it)"
                c.err.print(safe(f"Sandbox at {base}; linked {linked}; {where}"))
            before = requests.get(f"{base}/_sandbox/state", timeout=30).json(parse_float=Decimal)
            preview = sync(rt, dry_run=True, as_of=c.as_of)
            if not c.json:
                from bridge.render import render_plan

                out.print(Text.assemble(("Dry run", "bold"), " (nothing written yet):"))
                render_plan(preview.plan, out, verbose=c.verbose, days=days_by_zone(terms, c.as_of))
            if dry_run:
                if c.json:  # the plan alone on stdout, exactly as `sync --dry-run --json` prints it
                    echo_json(preview.plan)
                return preview.exit_code
            if review:
                return _reviewed(c, rt, preview.plan, base, key, before)
            outcome = sync(rt, dry_run=False, as_of=c.as_of)
            after = requests.get(f"{base}/_sandbox/state", timeout=30).json(parse_float=Decimal)
            outbox = requests.get(f"{base}/_sandbox/outbox", timeout=30).json()
            if c.json:
                echo_json(outcome.plan)
            else:
                from bridge.render import render_outcome

                out.print(Text.assemble("\n", ("Sync", "bold"), " (applied):"))
                render_outcome(outcome, out)
                out.print(Text.assemble("\n", ("What changed in the sandbox:", "bold")))
                for line in _sandbox_changes(before, after, outbox) or ["nothing"]:
                    out.print(safe(f"  {line}"))
            if keep:
                _write_config(folder, settings, contracts_path or DEMO_CONTRACTS, key)
                c.err.print(safe(f"Kept {folder} (config, store; the sandbox itself is gone)."))
            return outcome.exit_code
    finally:
        store.close()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _reviewed(c: Any, rt: Runtime, plan: Any, base: str, key: str, before: Mapping[str, Any]) -> int:
    """`--review`: each connection's plan waits on the review pages; the links are printed; then the results."""
    from bridge.review.demo_loop import review_and_wait

    if not plan.actions:
        c.out.print("Nothing to review.")
        return 0
    try:
        decided = review_and_wait(rt, plan, base, key, c.as_of, lambda line: click.echo(line, err=c.json))
    except KeyboardInterrupt:
        c.err.print("Stopped waiting: the plans not yet approved were not applied.")
        return 1
    failed = False
    for stored in decided:
        result = stored.result or {}
        counts = ", ".join(f"{len(result.get(k, []))} {k.replace('_', ' ')}" for k in ("applied", "dropped", "failed"))
        c.out.print(safe(f"{stored.connection}: {stored.state} by {stored.decided_by}: {counts}"))
        failed = failed or bool(result.get("failed"))
    after = requests.get(f"{base}/_sandbox/state", timeout=30).json(parse_float=Decimal)
    outbox = requests.get(f"{base}/_sandbox/outbox", timeout=30).json()
    c.out.print(Text.assemble("\n", ("What changed in the sandbox:", "bold")))
    for line in _sandbox_changes(before, after, outbox) or ["nothing"]:
        c.out.print(safe(f"  {line}"))
    return 3 if failed else 0


def _by_smtp(terms: Any) -> Any:
    """The demo's contracts with every reminder (and renegotiation answer) sent by SMTP from the firm's mailbox:
    QuickBooks and Xero would otherwise send only their own invoice e-mail, not the contract's words."""
    contracts = tuple(
        c.model_copy(update={"reminders": c.reminders.model_copy(update={"channel": "smtp"})}) for c in terms.contracts
    )
    return terms.model_copy(update={"contracts": contracts})


def _write_config(folder: Path, settings: Settings, contracts: Path, key: str) -> None:
    """With --keep: a config next to the store so the CLI can look at the ledger afterwards."""
    text = contracts.read_text()
    if {"store", "connections", "secrets"} & set(tomllib.loads(text)):
        return
    header = [f'[store]\nurl = "{settings.store.url}"\n']
    for conn in settings.connections:
        header.append(
            f'[[connections]]\nname = "{conn.name}"\nprovider = "{conn.provider}"\n'
            f'tenant_id = "{conn.tenant_id}"\nbase_url = "{conn.base_url}"\n'
        )
    write_private(folder / "bridge.toml", "\n".join(header) + "\n" + text)
    write_private(folder / "secret.key", key)
