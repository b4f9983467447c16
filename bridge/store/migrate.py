"""Running the Alembic migrations programmatically: no alembic.ini is needed at run time.

`upgrade(engine)` brings a database to head in one transaction, serialised against other
processes opening the same store (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory lock per
schema), so two processes starting at once never both create the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from bridge.store.engine import BEGIN_OPTION

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations; `connection` is used by env.py when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest migration's revision id."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Migrate the database to head, holding a lock so concurrent openers take turns.

    A database already at head is only read, so opening a store never waits for another process's writes.
    """
    head = head_revision()
    with engine.connect() as conn:
        if _has_version_table(conn) and current_revision(conn) == head:
            conn.rollback()
            return
        conn.rollback()
        conn.execution_options(**{BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext('bridge.store.migrate'), hashtext(current_schema()))")
                )
            if current_revision(conn) != head:  # another process may have migrated while we waited
                command.upgrade(alembic_config(conn), "head")


def _has_version_table(conn: Connection) -> bool:
    return inspect(conn).has_table("alembic_version")
