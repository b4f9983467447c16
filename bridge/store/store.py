"""The store: connections, encrypted tokens, the read cache of pulled records, the action ledger
and renegotiations, behind one object. SQLAlchemy Core; SQLite by default, PostgreSQL by URL, same code.

Transactions: every method is one transaction of its own, committed before it returns (inside
`token_lock` too: that lock is not a transaction, see there).
On SQLite a writing transaction starts with `BEGIN IMMEDIATE`, so writers queue on the busy
timeout instead of failing half-way.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, RowMapping, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import StaticPool

from bridge.clock import now_utc
from bridge.errors import StoreBusyError
from bridge.model import EstimateRecord, HistoryEntry, Invoice, Payment, RenegotiationRequest
from bridge.plan import Action
from bridge.store import _ledger, _records, _schedule
from bridge.store import engine as _engine_settings
from bridge.store import tables as t
from bridge.store._sql import upsert
from bridge.store.engine import BEGIN_OPTION, build_engine, display_url, parse_url
from bridge.store.migrate import upgrade
from bridge.store.rows import (
    BLOCKING_STATES,
    HISTORY_STATES,
    CachedInvoice,
    ConnectionRow,
    Cursor,
    FinishState,
    KeptPlan,
    LedgerEntry,
    LedgerEvent,
    Quarantined,
    ScheduleRow,
    TokenRow,
)

_NO_CURSORS: Mapping[str, Cursor] = MappingProxyType({})
# Named locks of in-memory SQLite databases (no file to lock beside): per engine, kind and name.
_PROCESS_LOCKS: dict[tuple[int, str, str], threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


class Store:
    """The bridge's persistent state. Open with `Store.open(url)`; close when done (or use `with`)."""

    url: str
    dialect: str

    def __init__(self, engine: Engine, url: str) -> None:
        """Wrap an engine whose database is already migrated; use `Store.open` instead."""
        self._engine = engine
        self.url = url
        self.dialect = engine.dialect.name
        self._local = threading.local()

    @classmethod
    def open(cls, url: str) -> Store:
        """Open the store at `url` (`sqlite:///PATH` or `postgresql://...`), migrating it to the current schema.

        A new SQLite file is created with mode 0600 before the database touches it.
        """
        parsed = parse_url(url)
        engine = build_engine(parsed)
        try:
            upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, display_url(parsed))

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tools and tests; the methods below are the API)."""
        return self._engine

    @property
    def shared_by_threads(self) -> bool:
        """Whether threads may use the store at once: each takes a pooled connection of its own. Not so for an
        in-memory SQLite database, which is one connection (tests, experiments)."""
        return not isinstance(self._engine.pool, StaticPool)

    def close(self) -> None:
        """Close every pooled database connection."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Connection]:
        """One transaction; a lock timeout becomes `StoreBusyError` (never a raw driver error)."""
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{BEGIN_OPTION: "BEGIN IMMEDIATE"})
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            if _is_lock_timeout(exc):
                raise StoreBusyError(
                    f"the store {self.url} stayed locked by another process for more than "
                    f"{_engine_settings.BUSY_TIMEOUT_MS / 1000:g} s; try again, or look for a stuck bridge process"
                ) from exc
            raise

    def _must_commit_now(self, operation: str) -> None:
        if any((getattr(self._local, "token_locks", None) or {}).values()):
            raise RuntimeError(
                f"{operation} may not run inside token_lock (the lock serializes token refreshes, nothing else); "
                "call it outside the block"
            )

    # -- connections ----------------------------------------------------------------------------

    def upsert_connection(self, name: str, provider: str, tenant_id: str | None, base_url: str | None) -> None:
        """Add a linked connection, or update its provider, tenant and base URL."""
        now = now_utc()
        row = {
            "name": name,
            "provider": provider,
            "tenant_id": tenant_id,
            "base_url": base_url,
            "created_at": now,
            "updated_at": now,
            "last_sync_at": None,
        }
        with self._tx(write=True) as conn:
            upsert(
                conn, t.connections, [row], keys=("name",), update=("provider", "tenant_id", "base_url", "updated_at")
            )

    def connections(self) -> list[ConnectionRow]:
        """Every linked connection, by name."""
        with self._tx() as conn:
            rows = conn.execute(select(t.connections)).mappings().all()
        return sorted((_connection_row(r) for r in rows), key=lambda c: c.name)

    def get_connection(self, name: str) -> ConnectionRow | None:
        """One connection, or None."""
        with self._tx() as conn:
            row = conn.execute(select(t.connections).where(t.connections.c.name == name)).mappings().first()
        return None if row is None else _connection_row(row)

    def remove_connection(self, name: str) -> None:
        """Forget a connection with its token, cursors, cached records (invoices and their evaluations, payments,
        customers, estimates), quarantine, place in the server's schedule and webhook key.

        The ledger and the renegotiations stay: they are the audit trail.
        """
        with self._tx(write=True) as conn:
            tables = (
                t.tokens,
                t.cursors,
                t.invoices,
                t.evaluations,
                t.payments,
                t.customers,
                t.estimates,
                t.quarantine,
                t.schedule,
                t.webhook_keys,
            )
            for table in tables:
                conn.execute(delete(table).where(table.c.connection == name))
            _records.count_change(conn)
            conn.execute(delete(t.connections).where(t.connections.c.name == name))

    def mark_synced(self, name: str, at: datetime) -> None:
        """Record when the connection last synced (nothing to record for a connection the store does not know)."""
        with self._tx(write=True) as conn:
            conn.execute(
                update(t.connections).where(t.connections.c.name == name).values(last_sync_at=at, updated_at=now_utc())
            )

    # -- tokens ---------------------------------------------------------------------------------

    def save_token(
        self,
        connection: str,
        ciphertext: bytes,
        access_expires_at: datetime | None,
        refresh_expires_at: datetime | None,
    ) -> None:
        """Store a connection's encrypted tokens (the caller encrypts); the version goes up by one on every save.

        Committed before it returns, inside `token_lock` too.
        """
        row = {
            "connection": connection,
            "ciphertext": bytes(ciphertext),
            "access_expires_at": access_expires_at,
            "refresh_expires_at": refresh_expires_at,
            "updated_at": now_utc(),
            "version": 1,
        }
        with self._tx(write=True) as conn:
            upsert(
                conn,
                t.tokens,
                [row],
                keys=("connection",),
                update=("ciphertext", "access_expires_at", "refresh_expires_at", "updated_at"),
                update_exprs={"version": t.tokens.c.version + 1},
            )

    def load_token(self, connection: str) -> TokenRow | None:
        """A connection's stored tokens, or None."""
        with self._tx() as conn:
            row = conn.execute(select(t.tokens).where(t.tokens.c.connection == connection)).mappings().first()
        if row is None:
            return None
        return TokenRow(
            connection=row["connection"],
            ciphertext=bytes(row["ciphertext"]),
            access_expires_at=row["access_expires_at"],
            refresh_expires_at=row["refresh_expires_at"],
            updated_at=row["updated_at"],
            version=row["version"],
        )

    @contextmanager
    def token_lock(self, connection: str, *, timeout: float = 60.0) -> Iterator[None]:
        """Hold the connection's token lock for the block: one refresh at a time, across processes and machines.

        No database transaction stays open while it is held: a refresh makes an HTTP call that may take its
        whole timeout, and on SQLite a write transaction locks the whole database (every other process's
        writes would queue behind a token endpoint that never answers). SQLite: an exclusive `flock` on a file
        beside the database, per connection (an in-memory database: a lock in this process). PostgreSQL: a
        session advisory lock on the connection name, on a database connection of its own. Waits up to
        `timeout` seconds, then raises `StoreBusyError`.

        Store calls in the block are ordinary short transactions, committed before they return: a rotated
        refresh token saved in the block is durable at once, even if the block then ends with an exception.
        The ledger's write methods refuse to run in the block (a refresh has no business with the ledger).
        Nested `token_lock` calls in the same thread for a connection already held join the outer block.
        """
        held: dict[str, int] | None = getattr(self._local, "token_locks", None)
        if held is None:
            held = self._local.token_locks = {}
        if held.get(connection):
            held[connection] += 1
            try:
                yield
            finally:
                held[connection] -= 1
            return
        busy = StoreBusyError(
            f"the token lock of connection {connection!r} was held by another process for more than "
            f"{timeout:g} s; try again, or look for a stuck bridge process"
        )
        with self._named_lock("token", connection, timeout, busy):
            held[connection] = 1
            try:
                yield
            finally:
                del held[connection]

    @contextmanager
    def _named_lock(self, kind: str, name: str, timeout: float, busy: StoreBusyError) -> Iterator[None]:
        """An exclusive lock per (kind, name) across processes, held without any open transaction: a `flock`
        beside the SQLite file, a session advisory lock on PostgreSQL. `busy` is raised after `timeout` s."""
        deadline = time.monotonic() + timeout
        if self.dialect == "sqlite":
            database = self._engine.url.database or ""
            if not database or database == ":memory:":
                with _PROCESS_LOCKS_GUARD:
                    lock = _PROCESS_LOCKS.setdefault((id(self._engine), kind, name), threading.Lock())
                if not lock.acquire(timeout=max(timeout, 0.0)):
                    raise busy
                try:
                    yield
                finally:
                    lock.release()
                return
            import fcntl

            fd = os.open(Path(f"{database}.{name}.{kind}-lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise busy from None
                        time.sleep(0.05)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
            return
        conn = self._engine.connect()
        try:
            key = {"name": name}
            space = f"bridge.{kind}:"
            query = text("SELECT pg_try_advisory_lock(hashtext(:space || current_schema()), hashtext(:name))")
            while not conn.execute(query, {**key, "space": space}).scalar():
                conn.rollback()
                if time.monotonic() >= deadline:
                    raise busy
                time.sleep(0.05)
            conn.commit()
            try:
                yield
            finally:
                conn.execute(
                    text("SELECT pg_advisory_unlock(hashtext(:space || current_schema()), hashtext(:name))"),
                    {**key, "space": space},
                )
                conn.commit()
        finally:
            conn.close()

    @contextmanager
    def run_lock(self, connections: Collection[str], *, timeout: float = 600.0) -> Iterator[None]:
        """Hold the run lock of these connections for the block: one applying run per connection at a time.

        A second `bridge sync` (or `apply`, `renegotiate`) on a connection waits until the first one is done,
        up to `timeout` seconds, then raises `StoreBusyError`; its own plan is made after the wait, so it never
        acts on what the first run already did, nor reconciles that run's live `pending` entries as if it had
        crashed. SQLite: an exclusive `flock` on a file beside the database, per connection. PostgreSQL: a
        session advisory lock per connection, on a connection of its own. Locks are taken in name order.
        """
        names = sorted(set(connections))
        with ExitStack() as held:
            for name in names:
                held.enter_context(self._one_run_lock(name, timeout))
            yield

    @contextmanager
    def _one_run_lock(self, name: str, timeout: float) -> Iterator[None]:
        busy = StoreBusyError(
            f"another bridge run is applying connection {name!r} and did not finish within {timeout:g} s; "
            "try again when it is done"
        )
        with self._named_lock("run", name, timeout, busy):
            yield

    # -- pulled records -------------------------------------------------------------------------

    def save_pull(
        self,
        connection: str,
        *,
        invoices: Sequence[tuple[Invoice, Mapping[str, Any]]] = (),
        payments: Sequence[tuple[Payment, Mapping[str, Any]]] = (),
        customers: Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] = (),
        deleted_invoices: Sequence[str] = (),
        deleted_payments: Sequence[str] = (),
        cursors: Mapping[str, Cursor] = _NO_CURSORS,
        quarantined: Sequence[Quarantined] = (),
        estimates: Sequence[tuple[EstimateRecord, Mapping[str, Any]]] = (),
        deleted_estimates: Sequence[str] = (),
    ) -> None:
        """Save one pull in ONE transaction: a cursor never advances without its records.

        Records are upserted by (connection, remote id): the normalized model as JSON (Decimals as exact
        strings) and the provider's raw payload as JSON. Then deleted ids are removed (a deletion wins over
        an upsert of the same id in the same call), then quarantined records (stream, record id) replace
        earlier quarantine rows for that record, then the cursors are saved. A record that arrives fine or
        is deleted clears its quarantine row (streams `invoices` and `payments`).

        `customers` are raw provider payloads, upserted by id: a mapping of id to payload, or a list of
        payloads whose id is in one of their provider's `customer_id_fields` (bridge.providers). `estimates`
        are upserted and `deleted_estimates` removed like invoices (docs/policy.md §2.1).
        """
        with self._tx(write=True) as conn:
            _records.save(
                conn,
                connection,
                now_utc(),
                invoices=invoices,
                payments=payments,
                customers=customers,
                deleted_invoices=deleted_invoices,
                deleted_payments=deleted_payments,
                cursors=cursors,
                quarantined=quarantined,
                estimates=estimates,
                deleted_estimates=deleted_estimates,
            )

    def cursor(self, connection: str, stream: str) -> Cursor | None:
        """Where the last pull of a stream got to, or None before the first."""
        with self._tx() as conn:
            return _records.cursor(conn, connection, stream)

    def invoices(self, connection: str) -> list[Invoice]:
        """Every cached invoice of a connection, by remote id ('9' before '10')."""
        with self._tx() as conn:
            return _records.invoices(conn, connection)

    def payments(self, connection: str) -> list[Payment]:
        """Every cached payment of a connection, by remote id."""
        with self._tx() as conn:
            return _records.payments(conn, connection)

    def cached_invoices(self, connection: str) -> tuple[list[CachedInvoice], list[str]]:
        """The invoices as stored with their last evaluations, and the payments' model texts (see `_records`)."""
        with self._tx() as conn:
            return _records.cached_invoices(conn, connection)

    def changes(self) -> int:
        """How many times the pulled records changed: a plan kept at another count is stale."""
        with self._tx() as conn:
            return _records.changes(conn)

    def kept_plan(self, names: Sequence[str]) -> KeptPlan | None:
        """The plan kept for these connections (bridge.evaluations), or None."""
        with self._tx() as conn:
            return _records.kept_plan(conn, names)

    def keep_plan(self, names: Sequence[str], kept: KeptPlan) -> None:
        """Keep `kept` as the plan of these connections."""
        with self._tx(write=True) as conn:
            _records.keep_plan(conn, names, kept)

    def save_evaluations(self, connection: str, rows: Sequence[tuple[str, str, str]]) -> None:
        """Keep each (remote id, fingerprint, result) as that invoice's last evaluation."""
        with self._tx(write=True) as conn:
            _records.save_evaluations(conn, connection, rows)

    def invoice(self, connection: str, remote_id: str) -> Invoice | None:
        """One cached invoice by the provider's id, or None."""
        with self._tx() as conn:
            found = _records.invoices(conn, connection, remote_id=remote_id)
        return found[0] if found else None

    def invoice_by_number(self, connection: str, number: str) -> Invoice | None:
        """One cached invoice by its number (as people know it), or None; the lowest id if numbers repeat."""
        with self._tx() as conn:
            found = _records.invoices(conn, connection, number=number)
        return found[0] if found else None

    def estimates(self, connection: str) -> list[EstimateRecord]:
        """Cached estimates (quotes) of a connection, by remote id."""
        with self._tx() as conn:
            return _records.estimates(conn, connection)

    def customers(self, connection: str) -> dict[str, dict[str, Any]]:
        """Cached raw customer payloads of a connection, by the provider's customer id."""
        with self._tx() as conn:
            return _records.customers(conn, connection)

    def raw_invoice(self, connection: str, remote_id: str) -> dict[str, Any] | None:
        """The provider's own payload of a cached invoice (numbers with a fraction as Decimal), or None."""
        with self._tx() as conn:
            return _records.raw_invoice(conn, connection, remote_id)

    def quarantined(self, connection: str) -> list[Quarantined]:
        """Records that could not be mapped and have not arrived fine since, by stream and id."""
        with self._tx() as conn:
            return _records.quarantined(conn, connection)

    # -- the action ledger ----------------------------------------------------------------------

    def ledger_begin(self, action: Action) -> LedgerEntry:
        """Record `pending` for the action's key and commit, before the provider is called.

        Raises ConflictError if the key is already pending, applied, in doubt or forgiven (never two pendings);
        a failed or dropped key becomes pending again with attempts + 1.
        """
        self._must_commit_now("ledger_begin")
        try:
            with self._tx(write=True) as conn:
                return _ledger.begin(conn, action, now_utc())
        except IntegrityError:
            # PostgreSQL: another process inserted the same key between our read and our insert.
            existing = self.ledger_get(action.key)
            if existing is not None and existing.state in BLOCKING_STATES:
                raise _ledger.already_begun(action.key, existing.state, existing.attempts) from None
            raise

    def ledger_finish(
        self,
        key: str,
        state: FinishState,
        *,
        response_id: str | None = None,
        form: str | None = None,
        error: str | None = None,
        applied_on: date | None = None,
    ) -> LedgerEntry:
        """Record the outcome of a begun action and commit.

        pending → applied | failed | dropped | in_doubt; in_doubt → applied (evidence found later).
        Anything else raises ConflictError; an unknown key raises KeyError. For applied and in_doubt,
        `applied_on` defaults to the UTC day the entry went pending (when the call was made). A forgiving
        (`forgive:…`) that becomes applied moves its late fee from applied to forgiven in the same commit, with
        the forgiving's reason (who and why) as the fee's `error`.
        """
        self._must_commit_now("ledger_finish")
        with self._tx(write=True) as conn:
            return _ledger.finish(
                conn,
                key,
                state,
                now_utc(),
                response_id=response_id,
                form=form,
                error=error,
                applied_on=applied_on,
            )

    def ledger_drop(self, action: Action, reason: str) -> LedgerEntry:
        """Record an action that was never begun (a stale plan's) as dropped, with the reason (in `error`)."""
        self._must_commit_now("ledger_drop")
        try:
            with self._tx(write=True) as conn:
                return _ledger.drop(conn, action, reason, now_utc())
        except IntegrityError:
            existing = self.ledger_get(action.key)
            if existing is not None and existing.state in BLOCKING_STATES:
                raise _ledger.already_begun(action.key, existing.state, existing.attempts) from None
            raise

    def ledger_get(self, key: str) -> LedgerEntry | None:
        """The ledger entry of an action key, or None."""
        with self._tx() as conn:
            return _ledger.get(conn, key)

    def ledger(
        self,
        *,
        connection: str | None = None,
        invoice_number: str | None = None,
        states: Collection[str] | None = None,
        kinds: Collection[str] | None = None,
    ) -> list[LedgerEntry]:
        """Ledger entries matching every given filter, by creation time then key."""
        with self._tx() as conn:
            return _ledger.entries(
                conn,
                connections=None if connection is None else [connection],
                invoice_number=invoice_number,
                states=states,
                kinds=kinds,
            )

    def ledger_events(self, key: str | None = None, *, connection: str | None = None) -> list[LedgerEvent]:
        """The audit trail: every state change, oldest first, with time and detail."""
        with self._tx() as conn:
            return _ledger.events(conn, key, connection)

    def history(self, connections: Collection[str], states: Collection[str] = HISTORY_STATES) -> list[HistoryEntry]:
        """What the policies count as done for these connections: applied and in-doubt entries by default.

        An in-doubt reminder counts as sent, so it is never sent again. A sync also passes
        `pending`, so an action whose outcome is being settled is not planned a second time.
        """
        with self._tx() as conn:
            return _ledger.history(conn, connections, states)

    # -- the server's schedule ------------------------------------------------------------------

    def schedule_ensure(self, first_runs: Mapping[str, datetime]) -> None:
        """Schedule every named connection not scheduled yet, at its first run; forget the others' rows."""
        with self._tx(write=True) as conn:
            _schedule.ensure(conn, first_runs, now_utc())

    def schedule_claim(
        self, worker: str, *, lease: timedelta, limit: int, now: datetime | None = None
    ) -> list[ScheduleRow]:
        """Claim up to `limit` due connections for `worker`, for `lease` (PostgreSQL: FOR UPDATE SKIP LOCKED)."""
        with self._tx(write=True) as conn:
            return _schedule.claim(conn, worker, now or now_utc(), lease, limit)

    def schedule_bring_forward(self, connection: str, due: datetime) -> bool | None:
        """Bring the connection's next run forward to `due` (see `_schedule.bring_forward`); None: not scheduled."""
        with self._tx(write=True) as conn:
            return _schedule.bring_forward(conn, connection, due, now_utc())

    def schedule_finish(
        self, connection: str, worker: str, *, next_run_at: datetime, outcome: str, detail: str = "", ok: bool
    ) -> None:
        """Record how the claimed run went and when the connection runs next; releases the claim."""
        with self._tx(write=True) as conn:
            _schedule.finish(conn, connection, worker, next_run_at, outcome, detail, ok, now_utc())

    def schedule_release(self, connections: Collection[str], worker: str) -> None:
        """Give back claims `worker` holds but will not run (a draining server)."""
        with self._tx(write=True) as conn:
            _schedule.release(conn, connections, worker, now_utc())

    def schedule(self, connections: Collection[str] | None = None) -> list[ScheduleRow]:
        """The schedule, by connection name."""
        with self._tx() as conn:
            return _schedule.rows(conn, connections)

    def save_webhook_key(self, connection: str, ciphertext: bytes) -> None:
        """Keep a webhook key a provider handed over (the caller encrypts it), replacing any earlier one."""
        row = {"connection": connection, "ciphertext": bytes(ciphertext), "updated_at": now_utc()}
        with self._tx(write=True) as conn:
            upsert(conn, t.webhook_keys, [row], keys=("connection",), update=("ciphertext", "updated_at"))

    def webhook_key(self, connection: str) -> bytes | None:
        """The encrypted webhook key kept for a connection, or None."""
        with self._tx() as conn:
            stmt = select(t.webhook_keys.c.ciphertext).where(t.webhook_keys.c.connection == connection)
            found = conn.execute(stmt).scalar()
        return None if found is None else bytes(found)

    # -- renegotiations -------------------------------------------------------------------------

    def add_renegotiation(self, record: RenegotiationRequest) -> int:
        """Record a renegotiation request (accepted, refused or undecided); returns its id."""
        with self._tx(write=True) as conn:
            result = conn.execute(
                insert(t.renegotiations)
                .values(
                    connection=record.connection,
                    invoice_id=record.invoice_id,
                    invoice_number=record.invoice_number,
                    status=record.status,
                    requested_on=record.requested_on,
                    new_due_date=record.new_due_date,
                    decided_on=record.decided_on,
                    record=record.model_dump_json(),
                    created_at=now_utc(),
                )
                .returning(t.renegotiations.c.id)
            )
            return int(result.scalar_one())

    def renegotiations(self, connections: Collection[str]) -> list[RenegotiationRequest]:
        """Every recorded request of these connections, in the order they were made."""
        stmt = (
            select(t.renegotiations.c.record)
            .where(t.renegotiations.c.connection.in_(sorted(set(connections))))
            .order_by(t.renegotiations.c.id)
        )
        with self._tx() as conn:
            return [RenegotiationRequest.model_validate_json(r) for r in conn.execute(stmt).scalars()]


def _connection_row(row: RowMapping) -> ConnectionRow:
    return ConnectionRow(
        name=row["name"],
        provider=row["provider"],
        tenant_id=row["tenant_id"],
        base_url=row["base_url"],
        created_at=row["created_at"],
        last_sync_at=row["last_sync_at"],
    )


def _is_lock_timeout(exc: OperationalError) -> bool:
    """SQLite 'database is locked' or PostgreSQL lock_not_available (55P03)."""
    if getattr(exc.orig, "sqlstate", None) == "55P03":
        return True
    return "database is locked" in str(exc.orig)
