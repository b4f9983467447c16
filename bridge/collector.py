"""Python's cyclic garbage collector, paused while a large plan is made."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """The cyclic garbage collector paused while a large input is read, evaluated and written.

    What this makes (parsed JSON, validated invoices, the plan's named tuples, their JSON) is acyclic: reference
    counting frees whatever is dropped. But every invoice and plan item stays alive to the end, and the
    collector's full passes walked them all again and again: a third of the CPU time of a 50,000-invoice
    `evaluate` (the actions and skips hold enum members, so the collector never stops tracking them).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # All that was made meanwhile is still the youngest generation, and the collector's next pass would walk
        # it all (a third of a second for 50,000 invoices): file it with the oldest, as the skipped passes would.
        gc.freeze()
        gc.unfreeze()
        if was_enabled:
            gc.enable()
