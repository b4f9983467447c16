"""Benchmark of applying at each provider's ceiling: writes a minute achieved against the emulator at its published
limits, and the 429s it answered.

Run as `.venv/bin/python -m bench.apply` (part of `make bench`); `--providers quickbooks,xero`, `--invoices N` (per
provider; default 500 for QuickBooks, about 2,700 actions, and 60 for Xero, about 300: each run lasts more than a
minute, so the per-minute limits bind and the figure is a sustained rate, not a burst inside one minute's
allowance; 10 for FreshBooks), `--check` exits 1 when a target is missed.

For each provider: a generated book (the benchmarks' generators, no payments, so most invoices are overdue) served
by the in-process sandbox with its published rate limits on, linked into a fresh store; then the real CLI in a
child process, as a user runs it: `bridge sync --dry-run` (the first pull, cached), then `bridge --json sync`,
timed. Writes a minute = actions applied / that sync's wall time (which also holds its start-up and incremental
pull: the figure is a little under the apply loop's own rate). The 429s are counted from the emulator's log.

Targets (issue 19): QuickBooks at least 1,000 fee writes a minute through batches; Xero at least 54 writes a
minute (90% of its 60 calls); no 429 in either. FreshBooks publishes no limit and has no target here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from bench.endtoend import BRIDGE, ROOT, run_child
from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.store import Store
from bridge_sandbox import Sandbox, generate_book
from bridge_sandbox.freshbooks_books import generate_freshbooks_account
from bridge_sandbox.xero_books import generate_xero_org

AS_OF = date(2026, 10, 20)  # the generators' last day
TARGETS = {"quickbooks": 1_000.0, "xero": 54.0}  # writes a minute
DEFAULT_INVOICES = {"quickbooks": 500, "xero": 60, "freshbooks": 10}
API = {"quickbooks": "/v3/", "xero": "/api.xro/", "freshbooks": "/accounting/"}
GENERATORS: dict[str, Callable[[int], dict[str, Any]]] = {
    "quickbooks": lambda n: generate_book(n, 0)["quickbooks"],
    "xero": lambda n: generate_xero_org(n, 0),
    "freshbooks": lambda n: generate_freshbooks_account(n, 0),
}


def interpreter_speed() -> float:
    """µs for `sum(range(100))`, best of 5 (the machine's speed at the time, as the policy bench prints it)."""
    import timeit

    return min(timeit.repeat("sum(range(100))", number=100_000, repeat=5)) * 10


def measure(provider: str, invoices: int, tmp: Path) -> dict[str, Any]:
    """One provider: link, warm the cache with a dry run, then apply and time it."""
    folder = tmp / provider
    folder.mkdir()
    key = Fernet.generate_key().decode()
    env = {**os.environ, "BRIDGE_SECRET_KEY": key}
    with Sandbox({provider: GENERATORS[provider](invoices)}, rate_limits="published") as sandbox:
        store = Store.open(f"sqlite:///{folder / 'bridge.db'}")
        name = f"bench-{provider}"
        tenant = link_sandbox(provider, store, TokenVault(store, Fernet(key.encode())), sandbox.base_url, name)
        store.close()
        config = folder / "bridge.toml"
        config.write_text(
            '[store]\nurl = "sqlite:///bridge.db"\n\n'
            f'[[connections]]\nname = "{name}"\nprovider = "{provider}"\ntenant_id = "{tenant}"\n'
            f'base_url = "{sandbox.base_url}"\n\n' + (ROOT / "config" / "demo.toml").read_text(encoding="utf-8"),
            encoding="utf-8",
        )
        common = [*BRIDGE, "--config", str(config), "--as-of", AS_OF.isoformat()]
        run_child([*common, "sync", "--dry-run"], env=env)
        mark = len(sandbox.requests())
        out = folder / "applied.json"
        wall, cpu, _, code = run_child([*common, "--json", "sync"], stdout=out, env=env)
        log = [e for e in sandbox.requests()[mark:] if e.get("provider") == provider]
    plan = json.loads(out.read_bytes()) if out.stat().st_size else {}
    applied = plan.get("applied") or []
    kinds = Counter(str(k).split(":", 1)[0] for k in (a.get("key") for a in applied) if k)
    calls = [e for e in log if str(e.get("path", "")).lower().startswith(API[provider])]
    return {
        "provider": provider,
        "invoices": invoices,
        "code": code,
        "wall": wall,
        "cpu": cpu,
        "applied": len(applied),
        "kinds": dict(kinds),
        "calls": len(calls),
        "throttled": sum(1 for e in log if e.get("status") == 429),
        "per_minute": len(applied) / wall * 60 if wall else 0.0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--providers", default="quickbooks,xero,freshbooks")
    parser.add_argument("--invoices", type=int, help="invoices per provider (default: 100 QuickBooks, 10 others)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    print(f"interpreter: sum(range(100)) {interpreter_speed():.2f} µs (best of 5)")
    print("apply at the ceiling: the real CLI against the emulator at its published limits")
    print(f"   {'provider':<11} {'invoices':>8} {'applied':>7} {'calls':>6} {'429s':>5} {'wall s':>7} "
          f"{'writes/min':>10}  kinds")  # fmt: skip
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for provider in args.providers.split(","):
            started = time.perf_counter()
            m = measure(provider, args.invoices or DEFAULT_INVOICES[provider], Path(tmp))
            print(
                f"   {provider:<11} {m['invoices']:>8,} {m['applied']:>7,} {m['calls']:>6,} {m['throttled']:>5} "
                f"{m['wall']:>7.1f} {m['per_minute']:>10.1f}  {m['kinds']} (exit {m['code']}, "
                f"{time.perf_counter() - started:.0f} s with the set-up)"
            )
            target = TARGETS.get(provider)
            if target is not None:
                met = m["per_minute"] >= target and m["throttled"] == 0 and m["code"] in (0, 3)
                ok = ok and met
                print(f"   {'PASS' if met else 'FAIL'}  {provider}: >= {target:,.0f} writes a minute with no 429: "
                      f"{m['per_minute']:,.1f}, {m['throttled']} 429s")  # fmt: skip
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
