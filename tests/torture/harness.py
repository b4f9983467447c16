"""What the torture tests share: a linked folder per trial, `bridge` run as a real process, and the books' end state.

Every trial links its connections through the sandbox's real OAuth endpoints (`link_sandbox`) and writes
a config beside its own SQLite store. `bridge` then runs as its own process, which a SIGKILL can end
anywhere: `Trial.run` forks it from a `multiprocessing` fork server that has already imported the
package, so a run costs what the sync costs and not a second of interpreter start-up and imports
(hundreds of runs fit in CI). The child runs the console script's own `bridge.cli.main` with its own
argv, environment, stdout and stderr; nothing is shared with the test process but the sandbox's port.
`Trial.run_subprocess` is the plain `python -m bridge`, for the tests that want exactly that.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.store import LedgerEntry, Store
from bridge_sandbox import Sandbox, default_seed

ROOT = Path(__file__).resolve().parents[2]
PROVIDERS = ("quickbooks", "xero", "freshbooks")
AS_OF = "2026-10-20"


PRELOAD = [
    "bridge.cli",
    "bridge.sync",
    "bridge.store",
    "bridge.connectors.quickbooks",
    "bridge.connectors.xero",
    "bridge.connectors.freshbooks",
    "tests.torture.harness",  # where the child's entry point is
]
_FORK = multiprocessing.get_context("forkserver")
_FORK.set_forkserver_preload(PRELOAD)


@dataclass
class Run:
    """How a run ended: its exit code (-9 when killed), stdout and stderr."""

    returncode: int
    stdout: str
    stderr: str


def _child(args: list[str], env: dict[str, str], out: str, err: str) -> None:
    """The forked `bridge` process: the console script's `main()` with this argv, environment and output files."""
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 (closed by os._exit)
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.argv = ["bridge", *args]
    from bridge.cli import main

    code = 1
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Trial:
    """One folder: config, store and secret key, with connections linked to the sandbox's current books."""

    def __init__(
        self,
        sandbox: Sandbox,
        folder: Path,
        providers: tuple[str, ...] = PROVIDERS,
        *,
        timeout_seconds: int = 30,
        seed: dict[str, Any] | None = None,
    ) -> None:
        sandbox.reset(seed if seed is not None else default_seed())
        folder.mkdir(parents=True, exist_ok=True)
        self.sandbox = sandbox
        self.providers = providers
        self.key = Fernet.generate_key().decode()
        self.url = f"sqlite:///{folder / 'bridge.db'}"
        parts = [f'[store]\nurl = "{self.url}"\n']
        with Store.open(self.url) as store:
            vault = TokenVault(store, Fernet(self.key.encode()))
            for provider in providers:
                tenant = link_sandbox(provider, store, vault, sandbox.base_url, provider)
                parts.append(
                    f'[[connections]]\nname = "{provider}"\nprovider = "{provider}"\ntenant_id = "{tenant}"\n'
                    f'base_url = "{sandbox.base_url}"\ncalls_per_minute = 100000\ntimeout_seconds = {timeout_seconds}\n'
                )
        self.config = folder / "bridge.toml"
        self.config.write_text("\n".join(parts) + "\n" + (ROOT / "config" / "demo.toml").read_text())

    def args(self, *args: str) -> list[str]:
        """`bridge`'s arguments for this trial's config."""
        return ["--config", str(self.config), "--as-of", AS_OF, "--json", *args]

    def command(self, *args: str) -> list[str]:
        """The `python -m bridge` command line for this trial's config."""
        return [sys.executable, "-m", "bridge", *self.args(*args)]

    def env(self, kill_at: str | None = None) -> dict[str, str]:
        """The environment of a run: the trial's key, the sandbox app's credentials, and a kill point if any."""
        env = {**os.environ, "BRIDGE_SECRET_KEY": self.key}
        for provider in PROVIDERS:
            env[f"BRIDGE_{provider.upper()}_CLIENT_ID"] = "sandbox-client"
            env[f"BRIDGE_{provider.upper()}_CLIENT_SECRET"] = "sandbox-secret"
        env.pop("BRIDGE_KILL_AT", None)
        if kill_at:
            env["BRIDGE_KILL_AT"] = kill_at
        return env

    def run(self, *args: str, kill_at: str | None = None, kill_after: float | None = None) -> Run:
        """Run `bridge ARGS` in its own process to the end, or SIGKILL it after `kill_after` seconds."""
        with tempfile.TemporaryDirectory() as folder:
            out, err = os.path.join(folder, "out"), os.path.join(folder, "err")
            process = _FORK.Process(target=_child, args=(self.args(*args), self.env(kill_at), out, err))
            process.start()
            process.join(kill_after if kill_after is not None else 600)
            killed = process.is_alive()
            if killed and process.pid is not None:
                os.kill(process.pid, signal.SIGKILL)
            process.join()
            code = process.exitcode if process.exitcode is not None else 1
            if not os.path.exists(err):
                if killed:  # killed before it got as far as opening its output: a kill like any other
                    return Run(code, "", "")
                raise RuntimeError(f"the forked bridge process never started (exit {code}): see the stderr above")
            return Run(code, Path(out).read_text(encoding="utf-8"), Path(err).read_text(encoding="utf-8"))

    def run_subprocess(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `python -m bridge ARGS` to the end."""
        return subprocess.run(
            self.command(*args), env=self.env(), capture_output=True, text=True, timeout=600, check=False
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start `bridge ARGS` without waiting."""
        return subprocess.Popen(
            self.command(*args), env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def converge(self, runs: int = 4) -> None:
        """`bridge sync` until a run plans nothing (at most `runs` runs)."""
        for _ in range(runs):
            again = self.run("sync")
            assert again.returncode in (0, 3), again.stderr
            if not json.loads(again.stdout)["actions"]:
                return
        raise AssertionError(f"the sync did not converge in {runs} runs")

    def ledger(self) -> dict[str, LedgerEntry]:
        """The ledger by action key."""
        with Store.open(self.url) as store:
            return {e.key: e for e in store.ledger()}


def occurrences(node: Any, text: str) -> int:
    """How many objects in the provider's books carry `text` as a field value (a fee line's description)."""
    if isinstance(node, dict):
        own = 1 if any(v == text for v in node.values()) else 0
        return own + sum(occurrences(v, text) for v in node.values() if isinstance(v, dict | list))
    if isinstance(node, list):
        return sum(occurrences(v, text) for v in node)
    return 0


def duplicate_emails(sandbox: Sandbox) -> int:
    """E-mails beyond the first for one invoice (each trial's plan holds at most one reminder per invoice); by SMTP,
    messages beyond the first with one Message-ID (the id is the action key's)."""
    sent = Counter(
        ("smtp", m["message_id"]) if m.get("channel") == "smtp" else (m["provider"], m["invoice_id"])
        for m in sandbox.outbox()
    )
    return sum(n - 1 for n in sent.values() if n > 1)


SMTP_SENDER = "Maple & Finch Accounts <accounts@mapleandfinch.example>"


def by_smtp(trial: Trial) -> Trial:
    """The trial's contracts send their reminders by SMTP through the sandbox's SMTP server (loopback, no TLS)."""
    address = trial.sandbox.smtp_address
    assert address is not None, "the sandbox runs no SMTP server (Sandbox(smtp_port=0))"
    head = (
        '[firm]\nname = "Maple & Finch Design"\nreply_to = "accounts@mapleandfinch.example"\n\n'
        f'[smtp]\nhost = "{address[0]}"\nport = {address[1]}\nsecurity = "none"\nfrom = "{SMTP_SENDER}"\n'
        "timeout_seconds = 5\n\n"
    )
    text = trial.config.read_text()
    trial.config.write_text(head + text.replace('channel = "provider"', 'channel = "smtp"'))
    return trial


def exactly_once(sandbox: Sandbox, planned: list[dict[str, Any]], ledger: dict[str, LedgerEntry]) -> Counter[str]:
    """Every planned fee in the books exactly once and applied; every reminder applied or in doubt; counted."""
    state = sandbox.state()
    tally: Counter[str] = Counter()
    for action in planned:
        entry = ledger.get(action["key"])
        if action["kind"] == "late_fee":
            found = occurrences(state[action["provider"]], action["description"])
            tally["fees"] += 1
            tally["duplicate_fees"] += max(0, found - 1)
            tally["lost_fees"] += 1 if found == 0 else 0
            assert entry is not None and entry.state == "applied", (action["key"], entry)
        elif action["kind"] == "reminder":
            tally["reminders"] += 1
            assert entry is not None and entry.state in ("applied", "in_doubt"), (action["key"], entry)
            tally["in_doubt"] += entry.state == "in_doubt"
    tally["duplicate_emails"] += duplicate_emails(sandbox)
    return tally


def record_tally(row: dict[str, Any]) -> None:
    """Append one trial's figures to $TORTURE_TALLY (read by tests/torture/report.py), when set."""
    path = os.environ.get("TORTURE_TALLY")
    if path:
        with Path(path).open("a") as handle:
            handle.write(json.dumps(row) + "\n")
