"""End to end, as a user runs it: `bridge --json evaluate`, a no-change `bridge sync --dry-run`, and `bridge demo`.

Run as `.venv/bin/python -m bench.endtoend` (or `make bench`); `--sizes 10000,50000` picks the input sizes
(default 10,000, 50,000 and 200,000 invoices), `--skip evaluate,dry-run,demo` leaves sections out, `--check`
exits 1 when a target is missed. Figures only: nothing here is a test (no timed assertion anywhere).

1. `evaluate`: a generated JSON list of open invoices with no history (one contract, the 5-step schedule
   [-3, 1, 7, 14, 30] repeated every 30 days, a 1.5% fee every 30 days), run as `bridge --as-of 2026-10-20
   --json evaluate --invoices FILE --contracts FILE > plan.json` in a child process. Wall time from start to
   exit (interpreter start, imports, reading, evaluating, writing the plan). Memory: the child's peak RSS,
   less the peak RSS of a child that only reads the same input (imports, config, invoices validated), per
   invoice: what the evaluation and the plan cost beyond the input. Target (issue 19): >= 10,000 invoices/s
   and <= 1 KB per invoice on 50,000 invoices.
2. `sync --dry-run` with nothing changed: the QuickBooks emulator (in this process, rate limits off) serves
   a generated book; a first `bridge sync --dry-run` fills the store (timed as `first`), the second is timed
   (`again`): the CDC pull finds nothing, and the plan the first dry run kept is written out again
   (bridge.evaluations). Then the kept plan is dropped (as a pull that changes any record drops it) and a third
   run is timed (`unkept`): each invoice's kept evaluation is taken back and the plan made from them. The three
   plans must be the same bytes. Target: <= 3 s on 50,000 invoices (`again`).
3. `bridge demo` (default seed, dry run then apply) against the demo with only one provider's book, for
   each provider: the demo should take about as long as its slowest connection alone. Target: within 15%.

The interpreter's speed is printed first (as bench/policy.py does): every figure scales with it, and on a
machine shared with other work the CPU seconds are the steadier figure. The bridge's bytecode is compiled first
(`compile_bridge`), as pip does when it installs a package: an editable install run with PYTHONDONTWRITEBYTECODE
set would otherwise compile every module of the bridge from source at each start (a tenth of a second or more).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from bench.policy import interpreter_speed

AS_OF = date(2026, 10, 20)
ROOT = Path(__file__).resolve().parent.parent
BRIDGE = [sys.executable, "-m", "bridge"]
TARGET_RATE = 10_000  # invoices/s end to end, on 50,000
TARGET_BYTES = 1_024  # per invoice beyond the input
TARGET_DRY_RUN = 3.0  # seconds, 50,000 invoices, nothing changed
TARGET_DEMO = 1.15  # demo wall time / its slowest connection's alone
CONTRACTS = """\
[contracts.standard]
applies_to = ["*"]
currency = "USD"
timezone = "America/New_York"

[contracts.standard.reminders]
schedule = [-3, 1, 7, 14, 30]
repeat_every_days = 30
max_reminders = 8
min_gap_days = 3
business_days = true
holidays = "US"

[contracts.standard.late_fee]
percent = "1.5"
grace_days = 5
every_days = 30
max_occurrences = 12
min_fee = "1.00"
"""
LOAD_ONLY = """\
import sys
from pathlib import Path
from bridge.config import load_terms
from bridge.inputs import load_invoices
from bridge.plan import Plan
from bridge.policies.evaluate import evaluate
load_terms(Path(sys.argv[1]))
invoices, errors = load_invoices(Path(sys.argv[2]))
"""


def compile_bridge() -> str:
    """Compile the bridge package's bytecode (as a pip install does); says what was done, for the bench's header."""
    compileall.compile_dir(ROOT / "bridge", quiet=1)
    return "the bridge's bytecode compiled first (as pip installs it)"


def open_invoices(n: int, seed: int = 19) -> list[dict[str, object]]:
    """`n` open invoices in the evaluate input format: due over the 6 months before AS_OF (a few after it)."""
    rng = random.Random(seed)
    customers = [
        {"id": str(i), "name": f"Customer {i} LLC", "email": f"ap{i}@client{i}.example"} for i in range(1, 2001)
    ]
    out: list[dict[str, object]] = []
    for i in range(n):
        due = AS_OF - timedelta(days=rng.randint(-10, 180))
        cents = rng.randint(5_000, 500_000)
        total = f"{cents // 100}.{cents % 100:02d}"
        out.append(
            {
                "id": str(1000 + i),
                "number": str(100_000 + i),
                "connection": "acme-qbo",
                "provider": "quickbooks",
                "customer": customers[rng.randrange(len(customers))],
                "currency": "USD",
                "issue_date": (due - timedelta(days=30)).isoformat(),
                "due_date": due.isoformat(),
                "total": total,
                "amount_due": total,
                "status": "open",
                "payments": [],
                "lines": [{"description": "Consulting", "amount": total}],
            }
        )
    return out


def run_child(
    args: Sequence[str], stdout: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, float, int, int]:
    """(wall s, CPU s, peak RSS bytes, exit code) of a child process."""
    started = time.perf_counter()
    with open(stdout or os.devnull, "wb") as out:
        child = subprocess.Popen(list(args), stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, child.returncode


def bench_evaluate(sizes: Sequence[int], tmp: Path) -> bool:
    """Section 1; True when the 50,000 target holds (or 50,000 was not run)."""
    contracts = tmp / "contracts.toml"
    contracts.write_text(CONTRACTS, encoding="utf-8")
    print("1. bridge --json evaluate (JSON in, plan out to a file), no history, one contract")
    print(f"   {'invoices':>9} {'wall s':>7} {'CPU s':>7} {'inv/s':>8} {'actions':>8} {'plan MB':>8} "
          f"{'peak MB':>8} {'input MB':>8} {'B/inv':>6}")  # fmt: skip
    ok = True
    for n in sizes:
        invoices = tmp / f"invoices-{n}.json"
        invoices.write_bytes(json.dumps(open_invoices(n)).encode())
        plan = tmp / f"plan-{n}.json"
        cmd = [*BRIDGE, "--as-of", AS_OF.isoformat(), "--json", "evaluate", "--invoices", str(invoices)]
        wall, cpu, peak, code = run_child([*cmd, "--contracts", str(contracts)], stdout=plan)
        _, _, base, _ = run_child([sys.executable, "-c", LOAD_ONLY, str(contracts), str(invoices)])
        if code != 0:
            print(f"   {n:>9,} failed (exit {code})")
            ok = False
            continue
        with plan.open("rb") as f:
            f.seek(-4096, os.SEEK_END)
            actions = int(f.read().split(b'"actions": ')[-1].split(b",")[0])
        rate, per = n / wall, (peak - base) / n
        print(f"   {n:>9,} {wall:>7.2f} {cpu:>7.2f} {rate:>8,.0f} {actions:>8,} {plan.stat().st_size / 2**20:>8.1f} "
              f"{peak / 2**20:>8.1f} {base / 2**20:>8.1f} {per:>6,.0f}")  # fmt: skip
        if n == 50_000:
            ok = rate >= TARGET_RATE and per <= TARGET_BYTES
            print(
                f"   {'PASS' if rate >= TARGET_RATE else 'FAIL'}  >= {TARGET_RATE:,} invoices/s on 50,000: {rate:,.0f}"
            )
            print(f"   {'PASS' if per <= TARGET_BYTES else 'FAIL'}  <= {TARGET_BYTES:,} B/invoice beyond the input "
                  f"(peak RSS less a read-only run's): {per:,.0f}")  # fmt: skip
        plan.unlink()
        invoices.unlink()
    print()
    return ok


def bench_dry_run(sizes: Sequence[int], tmp: Path) -> bool:
    """Section 2; True when the 50,000 target holds (or 50,000 was not run)."""
    from cryptography.fernet import Fernet

    from bridge.auth.link import link_sandbox
    from bridge.auth.vault import TokenVault
    from bridge.store import Store
    from bridge_sandbox import Sandbox, generate_book

    print("2. bridge sync --dry-run with nothing changed (QuickBooks emulator, rate limits off; a first dry run "
          "filled the store)")  # fmt: skip
    print(f"   {'invoices':>9} {'payments':>9} {'first s':>8} {'again s':>8} {'CPU s':>7} {'unkept s':>8} "
          f"{'CPU s':>7} {'actions':>8}  same plan")  # fmt: skip
    ok = True
    key = Fernet.generate_key()
    for n in sizes:
        folder = tmp / f"store-{n}"
        folder.mkdir()
        url = f"sqlite:///{folder / 'bridge.db'}"
        book = generate_book(n, n // 2, seed=7, end=AS_OF)
        with Sandbox(book, rate_limits=False) as sandbox, Store.open(url) as store:
            tenant = link_sandbox("quickbooks", store, TokenVault(store, Fernet(key)), sandbox.base_url, "bench-qbo")
            config = folder / "bridge.toml"
            config.write_text(
                f'[store]\nurl = "{url}"\n\n[[connections]]\nname = "bench-qbo"\nprovider = "quickbooks"\n'
                f'tenant_id = "{tenant}"\nbase_url = "{sandbox.base_url}"\n\n{CONTRACTS}',
                encoding="utf-8",
            )
            env = {**os.environ, "BRIDGE_SECRET_KEY": key.decode(), "BRIDGE_QUICKBOOKS_CLIENT_ID": "sandbox-client",
                   "BRIDGE_QUICKBOOKS_CLIENT_SECRET": "sandbox-secret"}  # fmt: skip
            cmd = [*BRIDGE, "--config", str(config), "--as-of", AS_OF.isoformat(), "--json", "sync", "--dry-run"]
            plans = [folder / f"plan-{run}.json" for run in ("first", "again", "unkept")]
            first, _, _, code1 = run_child(cmd, stdout=plans[0], env=env)
            again, cpu, _, code2 = run_child(cmd, stdout=plans[1], env=env)
            with sqlite3.connect(folder / "bridge.db") as db:  # as a pull that changes a record makes it stale
                db.execute("DELETE FROM kept_plans")
            unkept, cpu3, _, code3 = run_child(cmd, stdout=plans[2], env=env)
        if any(code not in (0, 3) for code in (code1, code2, code3)):
            print(f"   {n:>9,} failed (exit {code1}, {code2}, {code3})")
            ok = False
            continue
        actions = json.loads(plans[1].read_bytes())["summary"]["actions"]
        same = plans[0].read_bytes() == plans[1].read_bytes() == plans[2].read_bytes()
        ok = ok and same
        print(f"   {n:>9,} {n // 2:>9,} {first:>8.2f} {again:>8.2f} {cpu:>7.2f} {unkept:>8.2f} {cpu3:>7.2f} "
              f"{actions:>8,}  {'yes' if same else 'NO'}")  # fmt: skip
        for path in plans:
            path.unlink()
        if n == 50_000:
            ok = again <= TARGET_DRY_RUN
            print(f"   {'PASS' if ok else 'FAIL'}  <= {TARGET_DRY_RUN:g} s on 50,000 invoices: {again:.2f} s")
    print()
    return ok


def bench_demo(tmp: Path) -> bool:
    """Section 3; True when the demo takes at most TARGET_DEMO times its slowest connection alone."""
    from bridge.store import jsontext
    from bridge_sandbox import default_seed

    print("3. bridge demo (dry run, then apply) vs the demo with one provider's book alone")
    seed = default_seed()
    alone: dict[str, float] = {}
    for provider in sorted(seed):
        if not isinstance(seed[provider], dict):
            continue
        path = tmp / f"seed-{provider}.json"
        path.write_text(jsontext.dumps({provider: seed[provider]}), encoding="utf-8")  # Decimal amounts as numbers
        wall, _, _, code = run_child([*BRIDGE, "demo", "--seed", str(path)])
        alone[provider] = wall
        print(f"   {provider + ' alone':<22} {wall:>7.2f} s (exit {code})")
    wall, _, _, code = run_child([*BRIDGE, "demo"])
    slowest = max(alone, key=alone.__getitem__)
    ratio = wall / alone[slowest]
    print(f"   {'all three':<22} {wall:>7.2f} s (exit {code}); sum of the three alone {sum(alone.values()):.2f} s")
    ok = ratio <= TARGET_DEMO
    print(f"   {'PASS' if ok else 'FAIL'}  demo within {TARGET_DEMO - 1:.0%} of its slowest connection ({slowest}) "
          f"alone: {ratio:.2f}x")  # fmt: skip
    print()
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,50000,200000", help="invoice counts, comma-separated")
    parser.add_argument("--skip", default="", help="sections to leave out: evaluate, dry-run, demo")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    print(f"End-to-end benchmark, as of {AS_OF}; Python {sys.version.split()[0]} at {sys.executable}; "
          f"sum(range(100)) takes {interpreter_speed():.2f} µs; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs; {compile_bridge()}")  # fmt: skip
    print()
    ok = True
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with tempfile.TemporaryDirectory(prefix="bridge-bench-e2e-") as name:
        tmp = Path(name)
        if "evaluate" not in skip:
            ok = bench_evaluate(sizes, tmp) and ok
        if "dry-run" not in skip:
            ok = bench_dry_run(sizes, tmp) and ok
        if "demo" not in skip:
            ok = bench_demo(tmp) and ok
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
