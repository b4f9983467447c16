"""Kill -9 torture: `bridge sync` killed at deterministic points of its apply loop, then run until it converges.

Each trial links one connection per provider (QuickBooks, Xero, FreshBooks) to a fresh sandbox book,
takes the dry-run plan, runs `bridge sync` as a real subprocess with `BRIDGE_KILL_AT=POINT:N` (SIGKILL
the N-th time it gets to POINT), and then plain `bridge sync` until a run plans nothing. Then, against
what the providers hold: every planned late fee is there exactly once (no duplicate, no loss), no
client got a second e-mail for one reminder, and every reminder whose outcome could not be known is
`in_doubt` in the ledger.

Kill points: `ledger-pending` (the ledger says pending, nothing was sent) and `provider-answered`
(the provider did it, the ledger was not told). CI runs TORTURE_TRIALS (default 4) trials;
`make torture` runs 200.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.sandbox import Sandbox, default_seed
from bridge.store import Store

ROOT = Path(__file__).resolve().parents[2]
TRIALS = int(os.environ.get("TORTURE_TRIALS", "4"))
POINTS = ("ledger-pending", "provider-answered")
PROVIDERS = ("quickbooks", "xero", "freshbooks")
AS_OF = "2026-10-20"
TALLY = Path(os.environ.get("TORTURE_TALLY", "")) if os.environ.get("TORTURE_TALLY") else None


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as sb:
        yield sb


def _setup(sandbox: Sandbox, folder: Path) -> tuple[Path, str, str]:
    sandbox.reset(default_seed())
    key = Fernet.generate_key().decode()
    url = f"sqlite:///{folder / 'bridge.db'}"
    parts = [f'[store]\nurl = "{url}"\n']
    with Store.open(url) as store:
        vault = TokenVault(store, Fernet(key.encode()))
        for provider in PROVIDERS:
            tenant = link_sandbox(provider, store, vault, sandbox.base_url, provider)
            parts.append(
                f'[[connections]]\nname = "{provider}"\nprovider = "{provider}"\ntenant_id = "{tenant}"\n'
                f'base_url = "{sandbox.base_url}"\ncalls_per_minute = 100000\n'
            )
    config = folder / "bridge.toml"
    config.write_text("\n".join(parts) + "\n" + (ROOT / "config" / "demo.toml").read_text())
    return config, key, url


def _bridge(config: Path, key: str, *args: str, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BRIDGE_SECRET_KEY": key}
    for provider in PROVIDERS:
        env[f"BRIDGE_{provider.upper()}_CLIENT_ID"] = "sandbox-client"
        env[f"BRIDGE_{provider.upper()}_CLIENT_SECRET"] = "sandbox-secret"
    env.pop("BRIDGE_KILL_AT", None)
    if kill_at:
        env["BRIDGE_KILL_AT"] = kill_at
    command = [sys.executable, "-m", "bridge", "--config", str(config), "--as-of", AS_OF, "--json", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _occurrences(node: Any, text: str) -> int:
    """How many objects in the provider's books carry `text` as a field value (a fee line's description)."""
    if isinstance(node, dict):
        own = 1 if any(v == text for v in node.values()) else 0
        return own + sum(_occurrences(v, text) for v in node.values() if isinstance(v, dict | list))
    if isinstance(node, list):
        return sum(_occurrences(v, text) for v in node)
    return 0


def _trial(sandbox: Sandbox, folder: Path, point: str, nth: int) -> dict[str, int]:
    config, key, url = _setup(sandbox, folder)
    dry = _bridge(config, key, "sync", "--dry-run")
    assert dry.returncode in (0, 3), dry.stderr
    planned = json.loads(dry.stdout)["actions"]
    crashed = _bridge(config, key, "sync", kill_at=f"{point}:{nth}")
    killed = crashed.returncode == -9
    for _ in range(4):
        again = _bridge(config, key, "sync")
        assert again.returncode in (0, 3), again.stderr
        if not json.loads(again.stdout)["actions"]:
            break
    else:
        raise AssertionError("the sync did not converge in four runs after the crash")
    state = sandbox.state()
    with Store.open(url) as store:
        ledger = {e.key: e for e in store.ledger()}
    tally = Counter(trials=1, kills=int(killed))
    for action in planned:
        entry = ledger.get(action["key"])
        if action["kind"] == "late_fee":
            found = _occurrences(state[action["provider"]], action["description"])
            tally["fees"] += 1
            tally["duplicate_fees"] += max(0, found - 1)
            tally["lost_fees"] += 1 if found == 0 else 0
            assert entry is not None and entry.state == "applied", (action["key"], entry)
        elif action["kind"] == "reminder":
            tally["reminders"] += 1
            assert entry is not None and entry.state in ("applied", "in_doubt"), (action["key"], entry)
            tally["in_doubt"] += entry.state == "in_doubt"
    sent = Counter((m["provider"], m["invoice_id"]) for m in sandbox.outbox())
    tally["duplicate_emails"] += sum(n - 1 for n in sent.values() if n > 1)
    return dict(tally)


def _cases() -> list[tuple[str, int]]:
    rng = random.Random(20261020)
    # The seed book's plan has about 95 actions; a later N means the run finished before the kill point.
    return [(POINTS[i % len(POINTS)], rng.randint(1, 95)) for i in range(TRIALS)]


@pytest.mark.parametrize(("point", "nth"), _cases())
def test_a_sync_killed_with_sigkill_converges_to_exactly_once(
    sandbox: Sandbox, tmp_path: Path, point: str, nth: int
) -> None:
    tally = _trial(sandbox, tmp_path, point, nth)
    if TALLY is not None:
        with TALLY.open("a") as handle:
            handle.write(json.dumps({"point": point, "nth": nth, **tally}) + "\n")
    assert tally["duplicate_fees"] == 0 and tally["lost_fees"] == 0 and tally["duplicate_emails"] == 0, tally
