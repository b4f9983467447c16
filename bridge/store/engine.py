"""Turning a store URL into a configured SQLAlchemy engine: SQLite by default, PostgreSQL by URL.

SQLite: the database file is created 0600 before SQLAlchemy opens it; every connection runs in WAL
mode with foreign keys on and a busy timeout, and SQLAlchemy (not the sqlite3 module) emits BEGIN,
so transactions, savepoints and `BEGIN IMMEDIATE` behave as written.
PostgreSQL: `postgresql://` means the psycopg 3 driver.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from bridge.errors import ConfigError

# How long a statement waits for another process's write lock before giving up (SQLite).
BUSY_TIMEOUT_MS: Final = 30_000
# Execution option naming the statement that opens a transaction on SQLite ("BEGIN" or "BEGIN IMMEDIATE").
BEGIN_OPTION: Final = "bridge_sqlite_begin"
# Execution option: busy timeout (ms) to use while waiting for that BEGIN.
BEGIN_WAIT_OPTION: Final = "bridge_sqlite_begin_wait_ms"

_POSTGRES_DRIVERS: Final = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
_SQLITE_DRIVERS: Final = frozenset({"sqlite", "sqlite+pysqlite"})


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL for a store URL; `postgresql://` is rewritten to the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"store url {url!r} is not a database URL: use sqlite:///PATH or postgresql://...") from exc
    if parsed.drivername in _POSTGRES_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in _SQLITE_DRIVERS:
        return parsed
    shown = parsed.render_as_string(hide_password=True)
    raise ConfigError(
        f"store url {shown!r}: database {parsed.drivername!r} is not supported; "
        "use sqlite:///PATH (the default) or postgresql://USER@HOST/DB"
    )


def display_url(url: URL) -> str:
    """The URL with any password masked, for messages and `Store.url`."""
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory or `file:` URI database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_private_file(path: Path) -> None:
    """Create the SQLite file with mode 0600 (if it does not exist) before SQLite can create it world-readable;
    an existing one (and its -wal and -shm files) readable by others is tightened to 0600.

    SQLite gives its -wal and -shm files the database file's permissions, so they are private too.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            _tighten(existing)
        return
    try:
        os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask
    finally:
        os.close(fd)


def _tighten(path: Path) -> None:
    """Mode 0600 for a store file others may read or write (only a regular file, not through a symlink)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o077:
        return
    try:
        os.chmod(path, 0o600)
    except PermissionError:
        raise ConfigError(
            f"store file {path} is open to other users (mode {stat.S_IMODE(info.st_mode):o}) and cannot be made "
            f"private: run chmod 600 {path} as its owner"
        ) from None


def build_engine(url: URL) -> Engine:
    """A configured engine for a parsed store URL (see the module docstring)."""
    if url.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    path = sqlite_path(url)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000}}
    if path is not None:
        create_private_file(path)
    elif not (url.database or "").startswith("file:"):
        # An in-memory database lives in one connection: single-threaded use only (tests, experiments).
        kwargs = {"connect_args": {"check_same_thread": False}, "poolclass": StaticPool}
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take BEGIN away from the sqlite3 module (its legacy mode skips BEGIN before SELECT, DDL and SAVEPOINT).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _use_wal(cursor)
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL once (the mode is stored in the file).

    Changing the journal mode does not wait on SQLite's busy handler, so several processes
    opening a new store at once can see "database is locked": read the mode first (no lock
    needed), and retry the switch for up to the busy timeout.
    """
    mode = str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if mode in ("wal", "memory"):  # an in-memory database just answers "memory"
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_on_begin(conn: Connection) -> None:
    options = conn.get_execution_options()
    begin = options.get(BEGIN_OPTION, "BEGIN")
    wait_ms = options.get(BEGIN_WAIT_OPTION)
    if wait_ms is None:
        conn.exec_driver_sql(begin)
        return
    conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait_ms)}")
    try:
        conn.exec_driver_sql(begin)
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
