"""A fleet of emulated QuickBooks companies served by `bridge serve` (embedded, or with `bridge worker` processes),
for the distributed test (tests/distributed/test_distributed_serve.py) and the server benchmark (bench/serve.py).

One sandbox process hosts every company (its `quickbooks` seed section is a list, one book per realm); each is
linked through the sandbox's real OAuth endpoints into one store, and gets a connection in one config with a
webhook key. Then `bridge serve` (and `bridge worker`s) run as real processes, each in its own process group, and
a signed QuickBooks webhook naming every realm brings all their syncs forward at once.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

from bridge.auth.link import SANDBOX_CLIENT, App, follow_redirect, link, pick, redirect_uri
from bridge.auth.vault import TokenVault
from bridge.server.webhooks import sign
from bridge.store import Store
from bridge_sandbox import Sandbox, default_seed

ROOT = Path(__file__).resolve().parents[1]
FIRST_REALM = 9130000000000000
WEBHOOK_ENV = "BRIDGE_FLEET_QBO_WEBHOOK_KEY"
INVOICES = 3  # per company (one of them open and overdue): a sync of a second or two, its calls paced at 8 a second
FEE_TEXT = "Late fee ("  # config/demo.toml's fee line description, "Late fee ({period}) on invoice {number}"


def fleet_seed(companies: int, invoices: int = INVOICES) -> dict[str, Any]:
    """The default seed's QuickBooks book cut to its first `invoices` invoices (and their payments), once per realm."""
    book = copy.deepcopy(default_seed()["quickbooks"])
    book["Invoice"] = book["Invoice"][:invoices]
    kept = {invoice["Id"] for invoice in book["Invoice"]}
    book["Payment"] = [
        p for p in book["Payment"] if all(t["TxnId"] in kept for line in p["Line"] for t in line["LinkedTxn"])
    ]
    book.pop("Deleted", None)
    sections = []
    for i in range(companies):
        section = copy.deepcopy(book)
        section["realm_id"] = realm_of(i)
        sections.append(section)
    return {"quickbooks": sections}


def realm_of(i: int) -> str:
    return str(FIRST_REALM + i)


@dataclass
class Fleet:
    """`companies` linked connections to one sandbox, a store and a config; the processes started on them."""

    sandbox: Sandbox
    folder: Path
    store_url: str
    companies: int
    broker: str = ""
    key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    webhook_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config = self.folder / "bridge.toml"
        self.names = [f"co{i:03d}" for i in range(self.companies)]
        app = App(*SANDBOX_CLIENT, redirect_uri("quickbooks"))
        with Store.open(self.store_url) as store:
            vault = TokenVault(store, Fernet(self.key.encode()))
            for i, name in enumerate(self.names):
                realm = realm_of(i)

                def consent(url: str, realm: str = realm) -> dict[str, str]:
                    return follow_redirect(f"{url}&realm_id={realm}")  # the sandbox's own way to pick a company

                link(store, vault, "quickbooks", name=name, app=app, base_url=self.sandbox.base_url,
                     receive=consent, choose=pick(None))  # fmt: skip
        self.write_config()

    def write_config(self, *, port: int = 0) -> None:
        parts = [f'[store]\nurl = "{self.store_url}"\n', f'[server]\nhost = "127.0.0.1"\nport = {port}\n']
        if self.broker:
            parts[-1] += f'broker = "{self.broker}"\n'
        for i, name in enumerate(self.names):
            parts.append(
                f'[[connections]]\nname = "{name}"\nprovider = "quickbooks"\ntenant_id = "{realm_of(i)}"\n'
                f'base_url = "{self.sandbox.base_url}"\nwebhook_secret_env = "{WEBHOOK_ENV}"\n'
                'schedule = "0 7 * * *"\n'
            )
        self.config.write_text("\n".join(parts) + "\n" + (ROOT / "config" / "demo.toml").read_text())

    def env(self, **more: str) -> dict[str, str]:
        env = {**os.environ, "BRIDGE_SECRET_KEY": self.key, WEBHOOK_ENV: self.webhook_key, **more}
        env["BRIDGE_QUICKBOOKS_CLIENT_ID"], env["BRIDGE_QUICKBOOKS_CLIENT_SECRET"] = SANDBOX_CLIENT
        return env

    def start(self, label: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """`bridge --config … ARGS` in a process group of its own, its stderr (JSON log lines) in a file."""
        log = (self.folder / f"{label}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "--config", str(self.config), *args],
            env=env or self.env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.processes[label] = process
        return process

    def log_lines(self, label: str) -> list[dict[str, Any]]:
        """The JSON log lines a process wrote so far."""
        lines = []
        for line in (self.folder / f"{label}.log").read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    def server_url(self, timeout: float = 60.0) -> str:
        """Where `bridge serve` listens (from its "listening on" log line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.log_lines("serve"):
                message = str(entry.get("message", entry.get("msg", "")))
                if message.startswith("listening on "):
                    return message.removeprefix("listening on ").strip()
            if self.processes["serve"].poll() is not None:
                raise RuntimeError(f"bridge serve exited {self.processes['serve'].returncode}: see serve.log")
            time.sleep(0.1)
        raise RuntimeError("bridge serve did not say where it listens")

    def webhook(self, url: str, indexes: Sequence[int]) -> requests.Response:
        """One signed QuickBooks webhook (the legacy form) naming the given companies' realms."""
        body = json.dumps(
            {
                "eventNotifications": [
                    {"realmId": realm_of(i), "dataChangeEvent": {"entities": [{"name": "Payment", "id": "1"}]}}
                    for i in indexes
                ]
            }
        ).encode()
        return requests.post(
            f"{url}/webhooks/quickbooks",
            data=body,
            headers={"intuit-signature": sign(self.webhook_key, body), "Content-Type": "application/json"},
            timeout=30,
        )

    def kill(self, label: str, signum: int = signal.SIGKILL) -> None:
        """Signal a process's whole group (a worker and anything it started)."""
        process = self.processes[label]
        if process.poll() is None:
            os.killpg(process.pid, signum)

    def stop_all(self, timeout: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every process still running, wait, SIGKILL what is left; their exit codes."""
        for label, process in self.processes.items():
            if process.poll() is None:
                self.kill(label, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for label, process in self.processes.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(label)
                process.wait()
        return {label: p.returncode for label, p in self.processes.items()}

    # -- what came of it ------------------------------------------------------------------------

    def schedule(self) -> dict[str, Any]:
        """The store's schedule rows by connection."""
        with Store.open(self.store_url) as store:
            return {row.connection: row for row in store.schedule()}

    def fee_copies(self) -> Counter[tuple[str, str]]:
        """How many times each late-fee line's text appears in each company's books (a duplicate fee shows as 2)."""
        copies: Counter[tuple[str, str]] = Counter()

        def walk(realm: str, node: Any) -> None:
            if isinstance(node, dict):
                for value in node.values():
                    if isinstance(value, str) and value.startswith(FEE_TEXT):
                        copies[(realm, value)] += 1
                    else:
                        walk(realm, value)
            elif isinstance(node, list):
                for value in node:
                    walk(realm, value)

        for company in self.sandbox.state()["quickbooks"]:
            walk(str(company["realm_id"]), company)
        return copies

    def duplicate_emails(self) -> int:
        """E-mails beyond the first for one invoice of one company."""
        sent = Counter((m["tenant"], m["invoice_id"]) for m in self.sandbox.outbox())
        return sum(n - 1 for n in sent.values() if n > 1)

    def throttled(self) -> int:
        """429 answers the sandbox gave."""
        return sum(1 for r in self.sandbox.requests() if r.get("status") == 429)


@contextmanager
def fleet_sandbox(companies: int, latency_ms: int = 0, invoices: int = INVOICES) -> Iterator[Sandbox]:
    """One sandbox hosting `companies` QuickBooks books, with the providers' published rate limits."""
    with Sandbox(fleet_seed(companies, invoices), latency_ms=latency_ms) as sandbox:
        yield sandbox
