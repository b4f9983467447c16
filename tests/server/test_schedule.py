"""The schedule in the store: claimed once (SKIP LOCKED on PostgreSQL), brought forward by webhooks (bursts
coalesce), released with the next run from the cron in the connection's time zone."""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.clock import now_utc
from bridge.config import ConnectionSettings, Settings
from bridge.server.dispatcher import Dispatcher, ThreadExecutor
from bridge.server.scheduler import next_run
from bridge.store import Store

LEASE = timedelta(minutes=30)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Store:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bridge.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = Store.open(url)
    yield opened
    opened.close()


def _now() -> datetime:
    return now_utc()


def test_a_due_connection_is_claimed_once_and_released_with_its_next_run(store: Store) -> None:
    store.schedule_ensure({"a": _now() - timedelta(seconds=1), "b": _now() + timedelta(hours=1)})
    claimed = store.schedule_claim("w1", lease=LEASE, limit=10)
    assert [r.connection for r in claimed] == ["a"] and claimed[0].claimed_by == "w1"
    assert store.schedule_claim("w2", lease=LEASE, limit=10) == []  # held: nobody else runs it
    later = _now() + timedelta(hours=2)
    store.schedule_finish("a", "w2", next_run_at=later, outcome="ok", ok=True)  # not the holder: ignored
    assert store.schedule(["a"])[0].claimed_by == "w1"
    store.schedule_finish("a", "w1", next_run_at=later, outcome="ok", detail="3 action(s)", ok=True)
    row = store.schedule(["a"])[0]
    assert row.claimed_by is None and row.next_run_at == later and row.last_outcome == "ok"
    assert row.last_success_at is not None and row.trigger == "schedule"


def test_a_lease_that_ran_out_lets_another_worker_claim(store: Store) -> None:
    store.schedule_ensure({"a": _now() - timedelta(seconds=1)})
    store.schedule_claim("dead-worker", lease=timedelta(seconds=1), limit=1)
    assert store.schedule_claim("w2", lease=LEASE, limit=1, now=_now() + timedelta(seconds=5))[0].claimed_by == "w2"


def test_a_burst_of_webhooks_brings_the_run_forward_once(store: Store) -> None:
    store.schedule_ensure({"a": _now() + timedelta(hours=5)})
    due = _now() + timedelta(seconds=2)
    assert store.schedule_bring_forward("a", due) is True
    assert store.schedule_bring_forward("a", due + timedelta(milliseconds=300)) is False  # coalesced
    row = store.schedule(["a"])[0]
    assert row.next_run_at == due and row.trigger == "webhook"
    assert store.schedule_bring_forward("nobody", due) is None


def test_a_webhook_during_a_run_makes_the_run_after_it(store: Store) -> None:
    store.schedule_ensure({"a": _now() - timedelta(seconds=1)})
    store.schedule_claim("w1", lease=LEASE, limit=1)
    soon = _now() + timedelta(seconds=2)
    assert store.schedule_bring_forward("a", soon) is True
    store.schedule_finish("a", "w1", next_run_at=_now() + timedelta(days=1), outcome="ok", ok=True)
    row = store.schedule(["a"])[0]
    assert row.next_run_at == soon and row.trigger == "webhook"


def test_connections_no_longer_configured_leave_the_schedule(store: Store) -> None:
    store.schedule_ensure({"a": _now(), "b": _now()})
    store.schedule_ensure({"a": _now() + timedelta(days=3)})
    rows = store.schedule()
    assert [r.connection for r in rows] == ["a"] and rows[0].next_run_at < _now() + timedelta(days=1)  # kept


def test_concurrent_claims_never_share_a_connection(store: Store) -> None:
    names = {f"c{i:02d}": _now() - timedelta(seconds=1) for i in range(30)}
    store.schedule_ensure(names)
    got: dict[str, list[str]] = {}

    def claim(worker: str) -> None:
        mine: list[str] = []
        while batch := store.schedule_claim(worker, lease=LEASE, limit=3):
            mine += [r.connection for r in batch]
        got[worker] = mine

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [n for mine in got.values() for n in mine]
    assert sorted(everything) == sorted(names)  # each exactly once


def test_the_cron_is_read_in_the_connections_own_time_zone() -> None:
    conn = ConnectionSettings(name="x", provider="quickbooks", schedule="0 7 * * 1-5", timezone="Europe/London")
    friday_evening = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    assert next_run(conn, friday_evening) == datetime(2026, 12, 7, 7, 0, tzinfo=UTC)  # Monday, 07:00 GMT
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert next_run(conn, summer) == datetime(2026, 7, 2, 6, 0, tzinfo=UTC)  # 07:00 BST


def test_a_restarted_server_frees_the_claims_of_a_dead_process_on_its_host_and_no_other(store: Store) -> None:
    host = socket.gethostname()
    gone = f"{host}:{2**22 + 12345}:dead"  # above Linux's largest pid: no such process
    alive = f"{host}:{os.getppid()}:alive"  # the process that started the tests: alive
    store.schedule_ensure({"a": _now() - timedelta(seconds=1), "b": _now() - timedelta(seconds=1), "c": _now()})
    store.schedule_claim(gone, lease=LEASE, limit=1)  # a
    store.schedule_claim(alive, lease=LEASE, limit=1)  # b
    store.schedule_claim("elsewhere:1:x", lease=LEASE, limit=1)  # c
    executor = ThreadExecutor(lambda job: None, workers=1)
    dispatcher = Dispatcher(store, Settings(source=Path(__file__)), executor)
    store.schedule_ensure({"a": _now(), "b": _now(), "c": _now(), "d": _now()})
    store.schedule_claim(f"{host}:{os.getpid()}:earlier-life", lease=LEASE, limit=1)  # d: this pid, another id
    assert dispatcher.free_orphans() == ["a", "d"]
    rows = {r.connection: r.claimed_by for r in store.schedule()}
    assert rows == {"a": None, "b": alive, "c": "elsewhere:1:x", "d": None}
    executor.drain()
