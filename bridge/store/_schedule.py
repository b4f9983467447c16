"""The server's schedule in the store: one row per connection, claimed with a lease (see `Store.schedule_claim`).

PostgreSQL: due rows are claimed `FOR UPDATE SKIP LOCKED`, so any number of dispatchers share one table
without waiting on each other or claiming a row twice. SQLite: the claim is one `BEGIN IMMEDIATE`
transaction, so claims are serialised by the database's single writer.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection, RowMapping, delete, or_, select, update

from bridge.store import tables as t
from bridge.store.rows import ScheduleRow

_S = t.schedule


def ensure(conn: Connection, first_runs: Mapping[str, datetime], now: datetime) -> None:
    """A row for every named connection not scheduled yet (at its first run); rows of others are removed."""
    known = set(conn.execute(select(_S.c.connection)).scalars())
    for name, at in sorted(first_runs.items()):
        if name not in known:
            conn.execute(_S.insert().values(connection=name, next_run_at=at, trigger="start", updated_at=now))
    gone = sorted(known - set(first_runs))
    if gone:
        conn.execute(delete(_S).where(_S.c.connection.in_(gone)))


def claim(conn: Connection, worker: str, now: datetime, lease: timedelta, limit: int) -> list[ScheduleRow]:
    """Claim up to `limit` due rows nobody holds (or whose holder's lease ran out), soonest first."""
    due = (
        select(_S.c.connection)
        .where(_S.c.next_run_at <= now, or_(_S.c.claimed_until.is_(None), _S.c.claimed_until < now))
        .order_by(_S.c.next_run_at, _S.c.connection)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    names = list(conn.execute(due).scalars())
    if not names:
        return []
    conn.execute(
        update(_S)
        .where(_S.c.connection.in_(names))
        .values(claimed_by=worker, claimed_at=now, claimed_until=now + lease, forward_due=None, updated_at=now)
    )
    return rows(conn, names)


def bring_forward(conn: Connection, name: str, due: datetime, now: datetime) -> bool | None:
    """Make the connection's next run no later than `due`; None when it is not scheduled.

    True when that moved its next run; False when a run was already due by then (a burst coalesces).
    While the connection is running, `due` is kept for the run after it.
    """
    row = conn.execute(select(_S).where(_S.c.connection == name).with_for_update()).mappings().first()
    if row is None:
        return None
    running = row["claimed_until"] is not None and row["claimed_until"] >= now
    if running:
        if row["forward_due"] is not None and row["forward_due"] <= due:
            return False
        conn.execute(update(_S).where(_S.c.connection == name).values(forward_due=due, updated_at=now))
        return True
    if row["next_run_at"] <= due:
        return False
    conn.execute(update(_S).where(_S.c.connection == name).values(next_run_at=due, trigger="webhook", updated_at=now))
    return True


def finish(
    conn: Connection, name: str, worker: str, next_run_at: datetime, outcome: str, detail: str, ok: bool, now: datetime
) -> None:
    """Release the claim and set the next run: `next_run_at`, or sooner if a webhook came meanwhile."""
    row = conn.execute(select(_S).where(_S.c.connection == name).with_for_update()).mappings().first()
    if row is None or row["claimed_by"] != worker:
        return  # the lease ran out and another worker holds it now: its finish decides
    forward = row["forward_due"]
    webhook = forward is not None and forward < next_run_at
    values: dict[str, object] = {
        "next_run_at": forward if webhook else next_run_at,
        "trigger": "webhook" if webhook else "schedule",
        "forward_due": None,
        "claimed_by": None,
        "claimed_at": None,
        "claimed_until": None,
        "last_run_at": now,
        "last_outcome": outcome,
        "last_detail": detail,
        "updated_at": now,
    }
    if ok:
        values["last_success_at"] = now
    conn.execute(update(_S).where(_S.c.connection == name).values(**values))


def release(conn: Connection, names: Collection[str], worker: str, now: datetime) -> None:
    """Give back claims not started (a draining server): due again at once for whoever runs next."""
    if names:
        conn.execute(
            update(_S)
            .where(_S.c.connection.in_(sorted(names)), _S.c.claimed_by == worker)
            .values(claimed_by=None, claimed_at=None, claimed_until=None, updated_at=now)
        )


def rows(conn: Connection, names: Collection[str] | None = None) -> list[ScheduleRow]:
    """The schedule (of the named connections), by connection name."""
    stmt = select(_S).order_by(_S.c.connection)
    if names is not None:
        stmt = stmt.where(_S.c.connection.in_(sorted(names)))
    return [_row(r) for r in conn.execute(stmt).mappings()]


def _row(r: RowMapping) -> ScheduleRow:
    return ScheduleRow(
        connection=r["connection"],
        next_run_at=r["next_run_at"],
        trigger=r["trigger"],
        forward_due=r["forward_due"],
        claimed_by=r["claimed_by"],
        claimed_until=r["claimed_until"],
        last_run_at=r["last_run_at"],
        last_success_at=r["last_success_at"],
        last_outcome=r["last_outcome"],
        last_detail=r["last_detail"],
    )
