"""`bridge.incremental`: a keyset cursor takes every row once, never skips one and never moves backwards."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bridge.incremental import Position, advance, reconcile_due

Row = tuple[int, str]  # (stamp, id)


def key(row: Row) -> tuple[int, str]:
    return row


# Rows with distinct ids and few distinct stamps (so many rows share one stamp, the hard case).
rows_strategy = st.lists(st.integers(0, 6), max_size=40).map(
    lambda stamps: [(s, f"r{i}") for i, s in enumerate(stamps)]
)
positions = st.none() | st.builds(
    Position,
    st.integers(0, 6),
    st.frozensets(st.sampled_from([f"r{i}" for i in range(40)]), max_size=5),
)


@given(rows_strategy, st.lists(st.integers(0, 40), max_size=8), st.randoms(use_true_random=False))
def test_replaying_pages_in_any_split_takes_every_row_once(
    rows: list[Row], cuts: list[int], rnd: random.Random
) -> None:
    """Pages of the rows in stamp order, split anywhere; every page also repeats what a "modified since the
    watermark" read brings again (the rows at or after the watermark already read), in any order."""
    ordered = sorted(rows)
    bounds = sorted({0, len(ordered), *(min(c, len(ordered)) for c in cuts)})
    position: Position[int] | None = None
    taken: list[str] = []
    read = 0
    for start, end in itertools.pairwise(bounds):
        again = [r for r in ordered[:start] if position is not None and r[0] >= position.watermark]
        page = again + ordered[start:end]
        rnd.shuffle(page)
        fresh, after = advance(position, page, key)
        if position is not None:
            assert after is not None and after.watermark >= position.watermark  # never backwards
        taken += [row_id for _, row_id in fresh]
        position = after
        read = end
    assert read == len(ordered)
    assert sorted(taken) == sorted(row_id for _, row_id in rows)  # none skipped
    assert len(taken) == len(set(taken))  # none twice


@given(positions, rows_strategy)
def test_the_position_never_moves_backwards_and_a_replay_takes_nothing(
    position: Position[int] | None, rows: list[Row]
) -> None:
    fresh, after = advance(position, rows, key)
    if position is not None:
        assert after is not None and after.watermark >= position.watermark
        if after.watermark == position.watermark:
            assert position.ids <= after.ids
    if not fresh:
        assert after == position
    again, same = advance(after, rows, key)
    assert again == [] and same == after


@given(positions, rows_strategy, st.integers(0, 40))
def test_one_read_or_two_halves_take_the_same_rows_to_the_same_position(
    position: Position[int] | None, rows: list[Row], cut: int
) -> None:
    ordered = sorted(rows)
    whole, at_end = advance(position, ordered, key)
    first, middle = advance(position, ordered[:cut], key)
    second, after = advance(middle, ordered[cut:], key)
    assert first + second == whole and after == at_end


@given(st.none() | st.integers(0, 100), st.integers(0, 100), st.integers(1, 30))
def test_a_full_read_is_due_when_never_done_or_older_than_the_period(last: int | None, now: int, every: int) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    last_full = None if last is None else base + timedelta(days=last)
    due = reconcile_due(last_full, base + timedelta(days=now), timedelta(days=every))
    assert due == (last is None or now - last > every)
