"""Benchmark of the server: `bridge serve` embedded against `bridge serve --broker` with 1, 2 and 4 `bridge worker`s.

Each mode gets the same fleet (bench/fleet.py): 200 emulated QuickBooks companies in one sandbox, linked into a
PostgreSQL schema of their own (every mode on PostgreSQL, so the executor is the only difference), served by real
`bridge` processes. One signed webhook names every company; then it measures, until every connection has synced:

- connections synced per minute (from the webhook to the last connection's successful run);
- p50 / p99 seconds from the webhook to each connection's first applied action (the ledger's time);
- API calls per connection (the sandbox's request log);
- peak memory: the largest resident set of any one process, and the sum over the mode's processes (VmHWM).

    .venv/bin/python bench/serve.py                      # 200 companies, every mode
    .venv/bin/python bench/serve.py --companies 50 --modes embedded,2

Needs the machine's PostgreSQL (BRIDGE_BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/test)
and Redis (BRIDGE_BENCH_REDIS_URL, default redis://127.0.0.1:6379/15; that database is emptied).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/serve.py` from the repository root

import psycopg
import redis

from bench.fleet import Fleet, fleet_sandbox
from bridge.store import Store

POSTGRES = os.environ.get("BRIDGE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BRIDGE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
WAIT = 1800.0


@dataclass
class Figures:
    mode: str
    synced: int
    seconds: float
    p50: float
    p99: float
    calls_per_connection: float
    peak_process_mb: float
    peak_total_mb: float

    def row(self) -> str:
        per_minute = self.synced / self.seconds * 60 if self.seconds else 0.0
        return (
            f"| {self.mode:<18} | {self.synced:>6} | {per_minute:>9.0f} | {self.p50:>7.1f} | {self.p99:>7.1f} "
            f"| {self.calls_per_connection:>9.1f} | {self.peak_process_mb:>9.0f} | {self.peak_total_mb:>9.0f} |"
        )


HEADER = (
    "| mode               | synced | per minute | p50 (s) | p99 (s) | calls/conn | peak MB/proc | peak MB all |\n"
    "|--------------------|--------|-----------|---------|---------|-----------|-----------|-----------|"
)


@contextmanager
def schema() -> Iterator[str]:
    """A PostgreSQL schema of its own, dropped afterwards; the store URL that uses it."""
    name = f"bench_serve_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    separator = "&" if "?" in POSTGRES else "?"
    try:
        yield f"{POSTGRES}{separator}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def peak_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def wait_for(label: str, fleet: Fleet, text: str) -> None:
    """Until the process's log has a line containing `text`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(text in str(e.get("message", "")) for e in fleet.log_lines(label)):
            return
        if fleet.processes[label].poll() is not None:
            raise RuntimeError(f"{label} exited {fleet.processes[label].returncode}: see {fleet.folder}/{label}.log")
        time.sleep(0.1)
    raise RuntimeError(f"{label} never logged {text!r}")


def run_mode(mode: str, companies: int, concurrency: int, folder: Path, sandbox: object) -> Figures:
    """One mode: link, start, one webhook for all, wait until every connection synced, measure, stop."""
    from bridge_sandbox import Sandbox

    assert isinstance(sandbox, Sandbox)
    sandbox.reset()
    workers = 0 if mode == "embedded" else int(mode)
    broker = REDIS if workers else ""
    if broker:
        redis.Redis.from_url(broker).flushdb()
    with schema() as store_url:
        fleet = Fleet(sandbox, folder / mode, store_url, companies, broker=broker)
        try:
            if workers:
                fleet.start("serve", "serve")
                for i in range(workers):
                    fleet.start(f"worker-{i + 1}", "worker", "--concurrency", str(concurrency))
                for i in range(workers):
                    wait_for(f"worker-{i + 1}", fleet, "ready")
            else:
                fleet.start("serve", "serve", "--workers", str(concurrency))
            url = fleet.server_url()
            began = datetime.now(UTC)
            started = time.perf_counter()
            answer = fleet.webhook(url, range(companies))
            assert answer.status_code == 200, answer.text
            deadline = started + WAIT
            while True:
                rows = fleet.schedule()
                done = [r for r in rows.values() if r.last_success_at is not None and r.last_success_at >= began]
                if len(done) == companies:
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{mode}: only {len(done)} of {companies} synced in {WAIT:.0f} s")
                time.sleep(0.25)
            finished = max(r.last_success_at for r in done if r.last_success_at is not None)
            peaks = [peak_mb(p.pid) for p in fleet.processes.values()]
        finally:
            fleet.stop_all()
        with Store.open(store_url) as store:
            first: dict[str, datetime] = {}
            for entry in store.ledger(states=["applied"]):
                if entry.connection not in first or entry.updated_at < first[entry.connection]:
                    first[entry.connection] = entry.updated_at
    latencies = sorted((at - began).total_seconds() for at in first.values())
    calls = [
        r
        for r in sandbox.requests()
        if str(r.get("path", "")).startswith("/v3/") and str(r.get("time", "")) >= began.isoformat()
    ]
    return Figures(
        mode="embedded" if not workers else f"celery, {workers} worker{'s' if workers > 1 else ''}",
        synced=companies,
        seconds=(finished - began).total_seconds(),
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        calls_per_connection=len(calls) / companies,
        peak_process_mb=max(peaks),
        peak_total_mb=sum(peaks),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--companies", type=int, default=200)
    parser.add_argument("--modes", default="embedded,1,2,4", help="embedded and/or numbers of workers")
    parser.add_argument("--concurrency", type=int, default=4, help="syncs at once per process (threads)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    print(
        f"bench/serve.py: {args.companies} emulated QuickBooks companies, {args.concurrency} syncs at once per "
        f"process, PostgreSQL store, modes {', '.join(modes)}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder, fleet_sandbox(args.companies) as sandbox:
        for mode in modes:
            figures = run_mode(mode, args.companies, args.concurrency, Path(folder), sandbox)
            print(f"  {mode}: done in {figures.seconds:.1f} s", flush=True)
            results.append(figures)
    print(HEADER)
    for figures in results:
        print(figures.row())


if __name__ == "__main__":
    main()
