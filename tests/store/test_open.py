"""Opening a store: private file, migrations to head (idempotent, concurrent), schema = tables.py, URLs."""

from __future__ import annotations

import stat
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, StatementError

from bridge.errors import ConfigError
from bridge.plan import ActionKind
from bridge.store import Store, _ledger, tables
from bridge.store.engine import build_engine, parse_url
from bridge.store.migrate import HEAD, alembic_config, current_revision, head_revision
from bridge.store.tables import metadata
from tests.store.factories import late_fee, reminder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_store_is_created_0600_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "bridge.db"
    store = Store.open(f"sqlite:///{path}")
    try:
        store.save_token("acme", b"secret-ciphertext", None, None)
        assert _mode(path) == 0o600
        wal = path.with_name("bridge.db-wal")
        assert wal.exists(), "WAL mode keeps a -wal file while the store is open"
        assert _mode(wal) == 0o600
    finally:
        store.close()
    assert _mode(path) == 0o600


def test_an_existing_sqlite_file_open_to_others_is_tightened_to_0600(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    Store.open(f"sqlite:///{path}").close()
    path.chmod(0o640)
    Store.open(f"sqlite:///{path}").close()
    assert _mode(path) == 0o600  # issue 15: a store made by an older bridge or by hand does not stay readable


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'bridge.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 1000
    finally:
        store.close()


def test_opening_twice_migrates_once_and_keeps_the_data(store_url: str) -> None:
    first = Store.open(store_url)
    first.upsert_connection("acme", "quickbooks", "9341", None)
    first.close()
    second = Store.open(store_url)
    try:
        assert [c.name for c in second.connections()] == ["acme"]
        with second.engine.connect() as conn:
            assert current_revision(conn) == head_revision()
    finally:
        second.close()


def test_concurrent_opens_of_a_new_store_all_succeed(store_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_and_close() -> None:
        try:
            barrier.wait()
            Store.open(store_url).close()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_the_migrated_schema_matches_tables_py(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_dialect_and_url(store: Store, store_url: str) -> None:
    assert store.dialect == ("sqlite" if store_url.startswith("sqlite") else "postgresql")
    assert store.url.split(":", 1)[0] in {"sqlite", "postgresql+psycopg"}


def test_postgresql_urls_use_psycopg_3() -> None:
    assert parse_url("postgresql://bridge@db.example/bridge").drivername == "postgresql+psycopg"
    assert parse_url("postgres://bridge@db.example/bridge").drivername == "postgresql+psycopg"
    assert parse_url("postgresql+psycopg://bridge@db.example/bridge").drivername == "postgresql+psycopg"


@pytest.mark.parametrize("url", ["mysql://user@host/db", "postgresql+psycopg2://u@h/db", "not a url"])
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="sqlite:///"):
        parse_url(url)


def test_a_password_never_shows_in_the_store_url() -> None:
    from bridge.store.engine import display_url

    assert "hunter2" not in display_url(parse_url("postgresql://bridge:hunter2@db.example/bridge"))


def test_instants_come_back_aware_in_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    expires = datetime(2026, 10, 20, 12, 30, 15, 123456, tzinfo=paris)
    store.save_token("acme", b"x", expires, None)
    row = store.load_token("acme")
    assert row is not None
    assert row.access_expires_at == expires
    assert row.access_expires_at is not None and row.access_expires_at.utcoffset() == timedelta(0)
    assert row.access_expires_at.tzinfo is UTC
    assert row.updated_at.tzinfo is UTC


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        store.save_token("acme", b"x", datetime(2026, 10, 20, 12, 0), None)  # noqa: DTZ001 - the point of the test
    assert store.load_token("acme") is None


def test_the_head_a_store_is_opened_at_without_alembic_is_alembics_head() -> None:
    assert head_revision() == HEAD


def test_an_upgrade_from_0004_keeps_every_row_and_records_the_fees_forgiven_before_it(store_url: str) -> None:
    """0006 adds the ledger state `forgiven` (SQLite rebuilds the table for the check) on a store with rows: every
    row is kept, and a fee whose forgiving was applied under 0004 (the fee left `applied`) becomes `forgiven`."""
    now = datetime(2026, 10, 21, 9, 0, tzinfo=UTC)
    fee, other = late_fee("late_fee:acme:130:1"), late_fee("late_fee:acme:131:1", invoice_id="131", number="1038")
    forgiving = fee._replace(key="forgive:acme:130:1", kind=ActionKind.FORGIVE_FEE, reason="forgiven by ann: kind")
    pending = other._replace(key="forgive:acme:131:1", kind=ActionKind.FORGIVE_FEE, reason="forgiven by bo")
    engine = build_engine(parse_url(store_url))
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0004")
        with engine.begin() as conn:
            for action in (fee, other, reminder(), forgiving, pending):
                _ledger.begin(conn, action, now)
            for key in (fee.key, other.key, reminder().key):
                _ledger.finish(conn, key, "applied", now, response_id="r", form=None, error=None, applied_on=None)
            # Recorded applied as the bridge did before 0006: the fee left applied.
            conn.execute(update(tables.ledger).where(tables.ledger.c.key == forgiving.key).values(state="applied"))
        with pytest.raises(IntegrityError), engine.begin() as conn:  # 0004 has no such state
            conn.execute(update(tables.ledger).where(tables.ledger.c.key == fee.key).values(state="forgiven"))
        with engine.connect() as conn:
            before = {row["key"]: dict(row) for row in conn.execute(select(tables.ledger)).mappings()}
            events_before = conn.execute(select(tables.ledger_events).order_by(tables.ledger_events.c.id)).all()
    finally:
        engine.dispose()

    with Store.open(store_url) as store:
        with store.engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            after = {row["key"]: dict(row) for row in conn.execute(select(tables.ledger)).mappings()}
            events_after = conn.execute(select(tables.ledger_events).order_by(tables.ledger_events.c.id)).all()
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []  # indexes and keys as tables.py has them
        assert set(after) == set(before)
        assert events_after[:-1] == events_before and events_after[-1].key == fee.key  # ids and all, plus one
        changed = {k: {c: v for c, v in after[k].items() if before[k][c] != v} for k in after}
        assert {k: sorted(c) for k, c in changed.items() if c} == {fee.key: ["error", "state", "updated_at"]}
        assert (changed[fee.key]["state"], changed[fee.key]["error"]) == ("forgiven", "forgiven by ann: kind")
        event = store.ledger_events(fee.key)[-1]
        assert event.state == "forgiven" and forgiving.key in event.detail and "forgiven by ann: kind" in event.detail
        # The new state works, and the check still refuses any other.
        store.ledger_finish(pending.key, "applied", response_id="131@2")
        assert [e.key for e in store.ledger(states=["forgiven"])] == [fee.key, other.key]
        with pytest.raises(IntegrityError), store.engine.begin() as conn:
            conn.execute(update(tables.ledger).where(tables.ledger.c.key == fee.key).values(state="waived"))
        with store.engine.begin() as conn:  # and back: forgiven fees are applied again, their forgivings kept
            command.downgrade(alembic_config(conn), "0004")
        assert [(e.key, e.state) for e in store.ledger(kinds=["late_fee"])] == [
            (fee.key, "applied"),
            (other.key, "applied"),
        ]
