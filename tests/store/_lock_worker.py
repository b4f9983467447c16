"""Runs in a separate process (spawned) for the token_lock tests: takes the lock repeatedly and
records when it held it, doing a read-modify-write of the token inside, as a refresh does."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bridge.store import Store


def hold_lock(url: str, connection: str, rounds: int, hold: float, out: str, start: Any) -> None:
    """Take the token lock `rounds` times, holding it `hold` seconds; write the (start, end) intervals to `out`."""
    store = Store.open(url)
    intervals: list[tuple[float, float]] = []
    try:
        start.wait(30)
        for _ in range(rounds):
            with store.token_lock(connection):
                began = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on the machine
                row = store.load_token(connection)
                assert row is not None
                time.sleep(hold)
                # a lost update would show as a final version lower than 1 + all rounds
                store.save_token(connection, row.ciphertext + b".", None, None)
                ended = time.monotonic()
            intervals.append((began, ended))
            time.sleep(hold / 4)  # give the other process a chance at the lock
    finally:
        store.close()
    Path(out).write_text(json.dumps(intervals))
