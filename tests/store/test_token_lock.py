"""token_lock: one refresh at a time per connection, across processes, on both backends."""

from __future__ import annotations

import json
import multiprocessing
import threading
from itertools import pairwise
from pathlib import Path

import pytest

from bridge.model import Invoice
from bridge.store import Store, StoreBusyError
from tests.store._lock_worker import hold_lock
from tests.store.factories import invoice

PROCESSES = 2
ROUNDS = 5
HOLD = 0.05


def test_token_lock_excludes_another_process(store: Store, store_url: str, tmp_path: Path) -> None:
    store.save_token("acme", b"v", None, None)
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited database connections
    start = ctx.Event()
    outs = [tmp_path / f"intervals-{i}.json" for i in range(PROCESSES)]
    procs = [
        ctx.Process(target=hold_lock, args=(store_url, "acme", ROUNDS, HOLD, str(out), start), daemon=True)
        for out in outs
    ]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES

    intervals = sorted((began, ended, i) for i, out in enumerate(outs) for began, ended in json.loads(out.read_text()))
    assert len(intervals) == PROCESSES * ROUNDS
    for (_, ended, _), (began, _, _) in pairwise(intervals):
        assert began >= ended, f"two processes held the token lock at once: {intervals}"
    token = store.load_token("acme")
    assert token is not None
    assert token.version == 1 + PROCESSES * ROUNDS
    assert token.ciphertext == b"v" + b"." * (PROCESSES * ROUNDS)


def test_load_and_save_work_inside_the_lock(store: Store) -> None:
    store.save_token("acme", b"old", None, None)
    with store.token_lock("acme"):
        row = store.load_token("acme")
        assert row is not None and row.version == 1
        store.save_token("acme", b"new", None, None)
        row = store.load_token("acme")
        assert row is not None and (row.ciphertext, row.version) == (b"new", 2)
        store.upsert_connection("acme", "quickbooks", None, None)  # any other call joins the lock's transaction
        with store.token_lock("acme"), store.token_lock("other"):  # nested: joins the outer block
            store.save_token("other", b"o", None, None)
    row = store.load_token("acme")
    assert row is not None and (row.ciphertext, row.version) == (b"new", 2)
    assert store.load_token("other") is not None
    assert store.get_connection("acme") is not None


def test_a_token_saved_in_the_block_survives_an_exception_after_it(store: Store, store_url: str) -> None:
    with pytest.raises(RuntimeError, match="provider hiccup"), store.token_lock("acme"):
        store.save_token("acme", b"rotated-refresh-token", None, None)
        raise RuntimeError("provider hiccup after the refresh")
    other = Store.open(store_url)
    try:
        row = other.load_token("acme")
        assert row is not None and row.ciphertext == b"rotated-refresh-token"
    finally:
        other.close()


def test_opening_the_store_does_not_wait_for_a_held_token_lock(store: Store, store_url: str) -> None:
    with store.token_lock("acme"):
        Store.open(store_url).close()


def test_a_failing_call_inside_the_block_undoes_only_itself(store: Store) -> None:
    with store.token_lock("acme"):
        store.save_token("acme", b"kept", None, None)
        with pytest.raises(ValueError, match="belongs to connection"):
            store.save_pull("acme", invoices=[(_foreign_invoice(), {})])
        store.save_token("acme", b"kept-2", None, None)
    row = store.load_token("acme")
    assert row is not None and (row.ciphertext, row.version) == (b"kept-2", 2)


def test_waiting_longer_than_the_timeout_raises_store_busy(store: Store, store_url: str) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.token_lock("acme"):
            holding.set()
            release.wait(30)

    other = Store.open(store_url)
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        with pytest.raises(StoreBusyError, match="'acme'"), other.token_lock("acme", timeout=0.3):
            pytest.fail("got a lock another holder has")
    finally:
        release.set()
        holder.join(30)
    try:
        with other.token_lock("acme", timeout=5):
            other.save_token("acme", b"after", None, None)
    finally:
        other.close()


def _foreign_invoice() -> Invoice:
    return invoice("1", connection="other")


def test_a_second_run_on_a_connection_waits_for_the_first_and_gives_up_with_a_clear_error(
    store: Store, store_url: str
) -> None:
    other = Store.open(store_url)
    try:
        with store.run_lock(["acme"]):
            busy = pytest.raises(StoreBusyError, match="another bridge run is applying connection 'acme'")
            with busy, other.run_lock(["acme"], timeout=0.3):
                pass
            with other.run_lock(["other-connection"], timeout=0.3):
                pass  # other connections are not held up
        with other.run_lock(["acme"], timeout=0.3):
            pass  # free again once the first run is done
    finally:
        other.close()
