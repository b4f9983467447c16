"""Running the Alembic migrations programmatically: no alembic.ini is needed at run time.

`upgrade(engine)` brings a database to head in one transaction, serialised against other
processes opening the same store (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory lock per
schema), so two processes starting at once never both create the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, Engine, inspect, text

from bridge.errors import ConfigError
from bridge.store.engine import BEGIN_OPTION, display_url
from bridge.store.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
# The newest migration's revision (tests/store/test_open.py checks it is Alembic's head): a store already there
# is opened without importing Alembic, which is a tenth of a second of every command's start.
HEAD: Final = "0007"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations; `connection` is used by env.py when given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest migration's revision id."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Migrate the database to head, holding a lock so concurrent openers take turns.

    A database already at head is only read, so opening a store never waits for another process's writes.
    A database this bridge cannot migrate (a newer revision, or tables without a revision) is a ConfigError.
    """
    with engine.connect() as conn:
        if _has_version_table(conn) and _at_head(conn):
            conn.rollback()
            return
        from alembic import command

        head = head_revision()
        _check_migratable(conn)
        conn.rollback()
        conn.execution_options(**{BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext('bridge.store.migrate'), hashtext(current_schema()))")
                )
            if current_revision(conn) != head:  # another process may have migrated while we waited
                _check_migratable(conn)
                command.upgrade(alembic_config(conn), "head")


def _check_migratable(conn: Connection) -> None:
    """A clear error, instead of Alembic's or the database's, for a store this bridge must not touch."""
    where = display_url(conn.engine.url)
    if _has_version_table(conn):
        revision = current_revision(conn)
        if revision is None:
            return
        from alembic.script import ScriptDirectory
        from alembic.script.revision import ResolutionError
        from alembic.util import CommandError

        try:
            known = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
        except (CommandError, ResolutionError):
            known = None
        if known is None:
            raise ConfigError(
                f"this store was written by a newer bridge (revision {revision}; this bridge knows up to "
                f"{head_revision()}): upgrade bridge, or point [store] url at another database",
                where,
            )
        return
    found = sorted(inspect(conn).get_table_names())
    if conn.dialect.name != "sqlite":  # a shared PostgreSQL schema may hold other applications' tables
        found = [name for name in found if name in metadata.tables]
    if found:
        raise ConfigError(
            f"the database holds tables ({', '.join(found[:8])}{', ...' if len(found) > 8 else ''}) but no "
            "alembic_version: it is not a bridge store, or was made by a bridge from before migrations. "
            "Point [store] url at a new file (bridge creates it), or move this one aside and link the "
            "connections again; nothing was changed in it",
            where,
        )


def _at_head(conn: Connection) -> bool:
    """The database is at HEAD (read as Alembic reads it: the one row of alembic_version)."""
    versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return versions == [HEAD]


def _has_version_table(conn: Connection) -> bool:
    return inspect(conn).has_table("alembic_version")
