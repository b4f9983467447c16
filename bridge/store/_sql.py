"""Small SQL helpers shared by the store's modules: one upsert for both backends, chunked deletes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bridge.plan import natural_key

_CHUNK = 500  # keeps IN lists and bound parameters well under every backend's limit


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
    update_exprs: Mapping[str, Any] | None = None,
) -> None:
    """Insert rows, or update the given columns where the key exists (INSERT ... ON CONFLICT on both backends).

    `update` names columns taken from the new row; `update_exprs` maps further columns to SQL expressions
    over the existing row (e.g. a version counter). Rows must not repeat a key: PostgreSQL refuses to
    touch a row twice in one statement.
    """
    if not rows:
        return
    index = [table.c[k] for k in keys]
    extra = dict(update_exprs or {})
    if conn.dialect.name == "postgresql":
        pg = pg_insert(table)
        pg_set = {c: pg.excluded[c] for c in update} | extra
        conn.execute(pg.on_conflict_do_update(index_elements=index, set_=pg_set), list(rows))
    else:
        lite = sqlite_insert(table)
        lite_set = {c: lite.excluded[c] for c in update} | extra
        conn.execute(lite.on_conflict_do_update(index_elements=index, set_=lite_set), list(rows))


def delete_ids(conn: Connection, table: Table, connection: str, column: str, ids: Iterable[str], **match: str) -> None:
    """Delete the rows of one connection whose `column` is in `ids` (and whose other columns equal `match`)."""
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), _CHUNK):
        stmt = delete(table).where(
            table.c.connection == connection, table.c[column].in_(wanted[start : start + _CHUNK])
        )
        for name, value in match.items():
            stmt = stmt.where(table.c[name] == value)
        conn.execute(stmt)


def id_order(remote_id: str) -> tuple[Any, ...]:
    """Sort key for provider ids: '9' before '10', the same on every backend (not the database's collation)."""
    return (natural_key(remote_id), remote_id)
