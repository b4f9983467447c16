"""The distributed server end to end: `bridge serve --broker` and two `bridge worker` processes, on the machine's
Redis and PostgreSQL, syncing 20 emulated QuickBooks companies; one worker is SIGKILLed in the middle of a sync and
started again, as its supervisor would.

What must hold: every connection synced, no late fee charged twice, no e-mail sent twice, and no 429 from the
provider (the workers share each company's rate budget in Redis). The broker is a Redis database of its own
(`BROKER_DB`, emptied before and after) and the store a PostgreSQL schema of its own (the `postgres_url` fixture),
so other test runs on the machine do not meet this one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from bench.fleet import Fleet, fleet_sandbox
from bridge import clock
from bridge.store import Store
from tests.distributed.conftest import redis_database

COMPANIES = 20  # enough for a worker to die mid-sync with runs still queued behind it (bench/serve.py runs 200)
BROKER_DB = 14
REDELIVER_AFTER = 10  # seconds: the visibility timeout the processes get (BRIDGE_REDELIVER_AFTER_SECONDS)
WAIT = 300.0  # seconds for the whole fleet to be synced (it takes well under a minute on a quiet machine)


@pytest.fixture
def broker(redis_url: str) -> Iterator[str]:
    with redis_database(redis_url, BROKER_DB) as url:
        yield url


def _runs(fleet: Fleet, label: str) -> tuple[set[str], set[str]]:
    """The connections a process's log shows started and finished."""
    started, finished = set(), set()
    for entry in fleet.log_lines(label):
        message = str(entry.get("message", ""))
        name, _, rest = message.partition(": ")
        if rest.startswith("run ("):
            started.add(name)
        elif rest.startswith(("ok in ", "partial in ", "failed in ", "interrupted in ")):
            finished.add(name)
    return started, finished


def _until(fleet: Fleet, condition: Callable[[], bool], what: str, *, alive: tuple[str, ...]) -> None:
    """Wait for `condition`; fail at once when one of the `alive` processes has exited."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        ended = {label: fleet.processes[label].poll() for label in alive if fleet.processes[label].poll() is not None}
        assert not ended, f"exited while waiting for {what}: {ended} (see the logs in {fleet.folder})"
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (see the logs in {fleet.folder})")


def test_two_workers_one_killed_mid_sync_every_connection_synced_exactly_once(
    postgres_url: str, broker: str, tmp_path: Path
) -> None:
    with fleet_sandbox(COMPANIES, latency_ms=20) as sandbox:
        fleet = Fleet(sandbox, tmp_path, postgres_url, COMPANIES, broker=broker)
        env = fleet.env(BRIDGE_REDELIVER_AFTER_SECONDS=str(REDELIVER_AFTER))
        started_at = clock.now_utc()
        try:
            fleet.start("serve", "serve", env=env)
            url = fleet.server_url()
            fleet.start("worker-a", "worker", "--concurrency", "4", env=env)
            fleet.start("worker-b", "worker", "--concurrency", "4", env=env)
            assert fleet.webhook(url, range(COMPANIES)).status_code == 200

            def a_is_mid_sync() -> bool:
                started, finished = _runs(fleet, "worker-a")
                return len(finished) >= 2 and bool(started - finished)

            _until(
                fleet, a_is_mid_sync, "worker-a to be in the middle of a sync", alive=("serve", "worker-a", "worker-b")
            )
            started, finished = _runs(fleet, "worker-a")
            killed_during = started - finished
            fleet.kill("worker-a")
            fleet.processes["worker-a"].wait(30)
            # Restarted once its tasks are due back, as a supervisor would (docs/server.md's unit restarts on
            # failure). Kombu gives a lost worker's tasks back in a sweep each worker makes as it starts and then
            # only every 100 s, and only tasks out longer than the visibility timeout (10 s here): without the
            # restart, worker-b's next sweep would add up to 100 s to this test (docs/server.md).
            time.sleep(REDELIVER_AFTER + 1)
            fleet.start("worker-c", "worker", "--concurrency", "4", env=env)

            def all_synced() -> bool:
                rows = fleet.schedule()
                return len(rows) == COMPANIES and all(
                    r.last_success_at is not None and r.last_success_at >= started_at for r in rows.values()
                )

            _until(fleet, all_synced, "every connection to be synced", alive=("serve", "worker-b", "worker-c"))
            metrics = requests.get(f"{url}/metrics", timeout=30).text  # the workers' counts, on the server's page
        finally:
            codes = fleet.stop_all()
        rows = fleet.schedule()
        assert killed_during, "worker-a was killed between syncs, not in one"
        assert {r.last_outcome for r in rows.values()} <= {"ok", "partial"}, {
            n: (r.last_outcome, r.last_detail) for n, r in rows.items() if r.last_outcome not in ("ok", "partial")
        }
        copies = fleet.fee_copies()
        assert len({realm for realm, _ in copies}) == COMPANIES  # every company was charged its fees
        assert max(copies.values()) == 1, [k for k, n in copies.items() if n > 1]
        assert fleet.duplicate_emails() == 0
        assert fleet.throttled() == 0
        assert codes["serve"] == 0 and codes["worker-b"] == 0 and codes["worker-c"] == 0, codes
        with Store.open(postgres_url) as store:  # what the killed worker left pending was reconciled
            assert store.ledger(states=["pending"]) == []
        synced = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("bridge_syncs_total{") and 'outcome="ok"' in line
        )
        assert synced >= COMPANIES, metrics
        # The connections worker-a held when it died were finished by another worker.
        finished_after = _runs(fleet, "worker-b")[1] | _runs(fleet, "worker-c")[1]
        assert killed_during <= finished_after
