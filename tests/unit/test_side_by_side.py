"""Connections are pulled and applied side by side, and reported in their own order whichever finishes first."""

from __future__ import annotations

import threading
from pathlib import Path

from bridge.ledger import ApplyReport
from bridge.store import Store
from bridge.sync import MAX_PARALLEL, _each, merged


def test_the_first_connection_can_wait_for_the_second_and_still_comes_first(tmp_path: Path) -> None:
    second_ran = threading.Event()

    def work(name: str) -> str:
        if name == "first":
            # Run one after another, this would wait for a connection that never starts.
            assert second_ran.wait(60), "the second connection did not run while the first was under way"
        else:
            second_ran.set()
        return name.upper()

    with Store.open(f"sqlite:///{tmp_path / 'bridge.db'}") as store:
        assert store.shared_by_threads
        assert _each(store, ["first", "second"], work) == ["FIRST", "SECOND"]


def test_at_most_max_parallel_at_once(tmp_path: Path) -> None:
    lock, running, most = threading.Lock(), [0], [0]
    gate = threading.Barrier(MAX_PARALLEL, timeout=60)

    def work(n: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if n < MAX_PARALLEL:
            gate.wait()  # the first MAX_PARALLEL are all under way together
        with lock:
            running[0] -= 1
        return n

    with Store.open(f"sqlite:///{tmp_path / 'bridge.db'}") as store:
        assert _each(store, list(range(3 * MAX_PARALLEL)), work) == list(range(3 * MAX_PARALLEL))
    assert most[0] == MAX_PARALLEL


def test_an_in_memory_store_is_one_connection_so_one_at_a_time() -> None:
    seen: list[str] = []
    with Store.open("sqlite://") as store:
        assert not store.shared_by_threads
        assert _each(store, ["a", "b", "c"], lambda n: seen.append(n) or n) == ["a", "b", "c"]
    assert seen == ["a", "b", "c"]


def test_reports_merge_in_connection_order() -> None:
    a = ApplyReport(applied=[{"key": "a1"}], failed=[{"key": "a2"}], broken={"a": "why"})
    b = ApplyReport(applied=[{"key": "b1"}], not_started=[{"key": "b2"}], interrupted=True)
    out = merged([a, b])
    assert [x["key"] for x in out.applied] == ["a1", "b1"]
    assert out.failed == [{"key": "a2"}] and out.not_started == [{"key": "b2"}]
    assert out.broken == {"a": "why"} and out.interrupted
