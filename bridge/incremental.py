"""Incremental pulls, as pure functions: where a keyset cursor moves, which rows are new, when a full read is due.

A stream's position is a watermark (the newest `updated` stamp taken so far) and the ids already taken at
exactly that stamp: a provider's "modified since" read starts at the watermark (inclusive, often coarser than
the stamp), so the rows at it come again and only those ids tell a repeat from a new row. `advance` takes a
page (or a whole read) of rows and returns the new ones, in their order, and the position after them; the
position never moves backwards, and replaying the same rows in any split yields each row once.

No I/O, no clock: the caller passes `now`. The connectors turn a `Position` into the store's `Cursor`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


S = TypeVar("S", bound=_Ordered)  # a stamp: seconds, milliseconds, a timestamp
R = TypeVar("R")  # a row, whatever the provider's shape


@dataclass(frozen=True)
class Position(Generic[S]):
    """The newest stamp taken, and the ids taken at exactly that stamp."""

    watermark: S
    ids: frozenset[str] = frozenset()


def is_fresh(position: Position[S] | None, stamp: S, row_id: str) -> bool:
    """A row not taken yet: newer than the watermark, or at it with an id not taken at it."""
    if position is None:
        return True
    if stamp < position.watermark:
        return False
    return position.watermark < stamp or row_id not in position.ids


def advance(
    position: Position[S] | None, rows: Iterable[R], key: Callable[[R], tuple[S, str]]
) -> tuple[list[R], Position[S] | None]:
    """The rows not taken yet (in their order), and the position after taking them.

    `key` gives a row's (stamp, id). A row older than the watermark, or at it with an id taken at it, is
    left out. The new watermark is the newest stamp among the new rows (never older than the old one); its
    ids are those of the new rows at it, with the old ones when the watermark did not move. No new rows:
    the position is unchanged.
    """
    fresh: list[R] = []
    top: S | None = None
    at_top: set[str] = set()
    for row in rows:
        stamp, row_id = key(row)
        if not is_fresh(position, stamp, row_id):
            continue
        fresh.append(row)
        if top is None or top < stamp:
            top, at_top = stamp, {row_id}
        elif not stamp < top:
            at_top.add(row_id)
    if top is None:
        return fresh, position
    if position is not None and not position.watermark < top:
        at_top |= position.ids
    return fresh, Position(top, frozenset(at_top))


def reconcile_due(last_full: datetime | None, now: datetime, every: timedelta) -> bool:
    """A full read is due: never done, or the last one is more than `every` ago."""
    return last_full is None or now - last_full > every
