"""Forgiven: the ledger state of a late fee the bridge charged and then took back (`bridge forgive`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Mirrors the `state` check of the `ledger` table of bridge/store/tables.py (SQLite rebuilds the table in batch
mode to change a check; PostgreSQL alters it in place). Every row is kept. A fee whose forgiving was applied
before this revision (its `forgive:…` entry applied, the fee still `applied`) becomes `forgiven` as the bridge
now records it, with the forgiving's reason (who and why) as its `error` and an event saying so.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bridge.clock import now_utc
from bridge.store.tables import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = "'pending', 'applied', 'failed', 'dropped', 'in_doubt'"
_LEDGER = sa.table(
    "ledger",
    sa.column("key", sa.String),
    sa.column("connection", sa.String),
    sa.column("kind", sa.String),
    sa.column("state", sa.String),
    sa.column("reason", sa.Text),
    sa.column("error", sa.Text),
    sa.column("updated_at", UTCDateTime),
)
_EVENTS = sa.table(
    "ledger_events",
    sa.column("key", sa.String),
    sa.column("connection", sa.String),
    sa.column("state", sa.String),
    sa.column("at", UTCDateTime),
    sa.column("detail", sa.Text),
)


def _check(states: str) -> None:
    """The ledger's state check, allowing `states`. SQLite copies the table to a new one and drops the old: the
    events that refer to its rows are set aside meanwhile (inside this transaction, where the foreign keys stay
    enforced: dropping a table still referred to would fail) and put back, ids and all."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("CREATE TEMPORARY TABLE _ledger_events_kept AS SELECT * FROM ledger_events")
        op.execute("DELETE FROM ledger_events")
    with op.batch_alter_table("ledger") as batch:
        batch.drop_constraint(op.f("ck_ledger_state"), type_="check")
        batch.create_check_constraint(op.f("ck_ledger_state"), sa.text(f"state IN ({states})"))
    if sqlite:
        op.execute("INSERT INTO ledger_events SELECT * FROM _ledger_events_kept")
        op.execute("DROP TABLE _ledger_events_kept")


def upgrade() -> None:
    """Allow `forgiven`; move the fees already taken back to it."""
    _check(_STATES + ", 'forgiven'")
    conn = op.get_bind()
    now = now_utc()
    forgivings = conn.execute(
        sa.select(_LEDGER.c.key, _LEDGER.c.reason).where(
            _LEDGER.c.kind == "forgive_fee", _LEDGER.c.state == "applied", _LEDGER.c.key.startswith("forgive:")
        )
    ).all()
    for key, reason in forgivings:
        fee = "late_fee:" + key.removeprefix("forgive:")
        row = conn.execute(
            sa.select(_LEDGER.c.connection).where(_LEDGER.c.key == fee, _LEDGER.c.state == "applied")
        ).first()
        if row is None:
            continue
        conn.execute(
            sa.update(_LEDGER).where(_LEDGER.c.key == fee).values(state="forgiven", error=reason, updated_at=now)
        )
        detail = f"{reason} ({key}; recorded as forgiven by the store's upgrade)"
        conn.execute(
            sa.insert(_EVENTS).values(key=fee, connection=row.connection, state="forgiven", at=now, detail=detail)
        )


def downgrade() -> None:
    """Forgiven fees go back to `applied` (their forgivings still say who and why), then the check as before."""
    op.execute(sa.update(_LEDGER).where(_LEDGER.c.state == "forgiven").values(state="applied"))
    _check(_STATES)
