"""Ctrl-C and SIGTERM while actions are applied: finish the action in flight, then stop taking new ones.

    stop = StopOnSignal()
    with stop:                                  # handlers installed only here, the previous ones restored after
        report = apply_actions(..., stop=stop)  # the apply loop asks `stop()` before each action

A signal only sets a flag, so nothing is ever cut between the ledger's `pending` write and the provider's
answer: the action in flight ends as usual, the loop sees the flag before the next one, and the run reports
what was applied and what was not started. A second signal aborts at once (KeyboardInterrupt); whatever it
leaves `pending` is reconciled by the next run, as after a crash.

Outside the main thread (a server running syncs in workers) signals cannot be caught: arming is then a no-op.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import AbstractContextManager, nullcontext
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """A stop flag raised by SIGINT or SIGTERM while armed (as a context manager); callable: was it raised?"""

    def __init__(self, signals: tuple[signal.Signals, ...] = SIGNALS) -> None:
        self._signals = signals
        self._previous: dict[signal.Signals, Any] = {}
        self.received: signal.Signals | None = None

    def __call__(self) -> bool:
        """True once a signal arrived while armed: take no new action."""
        return self.received is not None

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in self._signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def request(self, signum: signal.Signals = signal.SIGTERM) -> None:
        """Raise the flag from elsewhere (a server's own signal handler, for runs on worker threads)."""
        self.received = signum

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # the second one: abort now
        self.received = signal.Signals(signum)
        sys.stderr.write(f"\n{self.received.name}: stopping after the action in flight (again to abort at once).\n")
        sys.stderr.flush()


def armed(stop: StopOnSignal | None) -> AbstractContextManager[object]:
    """`stop` armed around a block, or nothing when there is no stop to arm."""
    return stop if stop is not None else nullcontext()


INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report a run stopped by Ctrl-C
