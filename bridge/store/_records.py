"""Pulled records, cursors and quarantine, as functions over an open transaction (the `Store` commits)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import TypeAdapter
from sqlalchemy import Connection, insert, select, update

from bridge.model import INVOICE_JSON, EstimateRecord, Invoice, Payment
from bridge.providers import customer_id_fields, first_id
from bridge.store import jsontext
from bridge.store import tables as t
from bridge.store._sql import delete_ids, id_order, upsert
from bridge.store.rows import ESTIMATES, INVOICES, PAYMENTS, CachedInvoice, Cursor, KeptPlan, Quarantined

_ESTIMATE_JSON: TypeAdapter[EstimateRecord] = TypeAdapter(EstimateRecord)
_Record = TypeVar("_Record", Payment, EstimateRecord)


def save(
    conn: Connection,
    connection: str,
    now: datetime,
    *,
    invoices: Sequence[tuple[Invoice, Mapping[str, Any]]],
    payments: Sequence[tuple[Payment, Mapping[str, Any]]],
    customers: Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
    deleted_invoices: Sequence[str],
    deleted_payments: Sequence[str],
    cursors: Mapping[str, Cursor],
    quarantined: Sequence[Quarantined],
    estimates: Sequence[tuple[EstimateRecord, Mapping[str, Any]]] = (),
    deleted_estimates: Sequence[str] = (),
) -> None:
    """Write one pull: upserts, then deletions, then quarantine, then cursors (see `Store.save_pull`)."""
    invoice_rows: dict[str, dict[str, Any]] = {}
    for invoice, raw in invoices:
        _check_connection(connection, invoice.connection, "invoice", invoice.id)
        invoice_rows[invoice.id] = {
            "connection": connection,
            "remote_id": invoice.id,
            "number": invoice.number,
            "status": invoice.status.value,
            "model": INVOICE_JSON.dump_json(invoice).decode(),
            "raw": jsontext.dumps(raw),
            "updated_at": now,
        }
    payment_rows = _rows(connection, now, "payment", payments, lambda p: p.model_dump_json())
    estimate_rows = _rows(connection, now, "estimate", estimates, lambda e: _ESTIMATE_JSON.dump_json(e).decode())
    customer_items = customers.items() if isinstance(customers, Mapping) else ((None, c) for c in customers)
    customer_rows: dict[str, dict[str, Any]] = {}
    fields: tuple[str, ...] | None = None  # the installed providers' id fields, read once, when a list needs them
    for given_id, raw in customer_items:
        if given_id is None and fields is None:
            fields = customer_id_fields()
        remote_id = given_id if given_id is not None else customer_id(raw, fields)
        customer_rows[remote_id] = {
            "connection": connection,
            "remote_id": remote_id,
            "raw": jsontext.dumps(raw),
            "updated_at": now,
        }
    quarantine_rows = {
        (q.stream, q.record_id): {
            "connection": connection,
            "stream": q.stream,
            "record_id": q.record_id,
            "error": q.error,
            "raw": None if q.raw is None else jsontext.dumps(q.raw),
            "quarantined_at": now,
        }
        for q in quarantined
    }
    cursor_rows = [
        {
            "connection": connection,
            "stream": stream,
            "watermark": cursor.watermark,
            "ids_at_watermark": json.dumps(list(cursor.ids_at_watermark)),
            "full_sync_at": cursor.full_sync_at,
            "updated_at": now,
        }
        for stream, cursor in cursors.items()
    ]

    upsert(
        conn,
        t.invoices,
        list(invoice_rows.values()),
        keys=("connection", "remote_id"),
        update=("number", "status", "model", "raw", "updated_at"),
    )
    upsert(
        conn,
        t.payments,
        list(payment_rows.values()),
        keys=("connection", "remote_id"),
        update=("model", "raw", "updated_at"),
    )
    upsert(
        conn, t.customers, list(customer_rows.values()), keys=("connection", "remote_id"), update=("raw", "updated_at")
    )
    if estimate_rows or deleted_estimates:
        upsert(
            conn,
            t.estimates,
            list(estimate_rows.values()),
            keys=("connection", "remote_id"),
            update=("model", "raw", "updated_at"),
        )
        delete_ids(conn, t.estimates, connection, "remote_id", deleted_estimates)
        cleared = [*estimate_rows, *deleted_estimates]
        delete_ids(conn, t.quarantine, connection, "record_id", cleared, stream=ESTIMATES)
    if (
        invoice_rows
        or payment_rows
        or customer_rows
        or estimate_rows
        or quarantine_rows
        or deleted_invoices
        or deleted_payments
        or deleted_estimates
    ):
        count_change(conn)
    delete_ids(conn, t.invoices, connection, "remote_id", deleted_invoices)
    delete_ids(conn, t.evaluations, connection, "remote_id", deleted_invoices)
    delete_ids(conn, t.payments, connection, "remote_id", deleted_payments)
    # A record that arrives fine, or is gone, is no longer quarantined.
    delete_ids(conn, t.quarantine, connection, "record_id", [*invoice_rows, *deleted_invoices], stream=INVOICES)
    delete_ids(conn, t.quarantine, connection, "record_id", [*payment_rows, *deleted_payments], stream=PAYMENTS)
    upsert(
        conn,
        t.quarantine,
        list(quarantine_rows.values()),
        keys=("connection", "stream", "record_id"),
        update=("error", "raw", "quarantined_at"),
    )
    upsert(
        conn,
        t.cursors,
        cursor_rows,
        keys=("connection", "stream"),
        update=("watermark", "ids_at_watermark", "full_sync_at", "updated_at"),
    )


def cursor(conn: Connection, connection: str, stream: str) -> Cursor | None:
    """The saved cursor of one stream."""
    row = (
        conn.execute(select(t.cursors).where(t.cursors.c.connection == connection, t.cursors.c.stream == stream))
        .mappings()
        .first()
    )
    if row is None:
        return None
    return Cursor(
        watermark=row["watermark"],
        ids_at_watermark=tuple(json.loads(row["ids_at_watermark"])),
        full_sync_at=row["full_sync_at"],
    )


def invoices(
    conn: Connection, connection: str, remote_id: str | None = None, number: str | None = None
) -> list[Invoice]:
    """Stored invoices of a connection (optionally one id or number), by remote id."""
    stmt = select(t.invoices.c.remote_id, t.invoices.c.model).where(t.invoices.c.connection == connection)
    if remote_id is not None:
        stmt = stmt.where(t.invoices.c.remote_id == remote_id)
    if number is not None:
        stmt = stmt.where(t.invoices.c.number == number)
    rows = sorted(conn.execute(stmt).all(), key=lambda r: id_order(r[0]))
    return [INVOICE_JSON.validate_json(model) for _, model in rows]


def cached_invoices(conn: Connection, connection: str) -> tuple[list[CachedInvoice], list[str]]:
    """A connection's invoices as stored, each with its last evaluation (by remote id), and its payments' model
    JSON texts (by remote id): what `bridge.evaluations` reads before it knows which invoices it must validate."""
    inv, ev = t.invoices, t.evaluations
    joined = inv.outerjoin(ev, (ev.c.connection == inv.c.connection) & (ev.c.remote_id == inv.c.remote_id))
    stmt = (
        select(inv.c.remote_id, inv.c.number, inv.c.model, ev.c.fingerprint, ev.c.result)
        .select_from(joined)
        .where(inv.c.connection == connection)
    )
    rows = sorted(conn.execute(stmt).all(), key=lambda r: id_order(r[0]))
    found = [CachedInvoice(*row) for row in rows]
    stmt = select(t.payments.c.remote_id, t.payments.c.model).where(t.payments.c.connection == connection)
    payments: list[str] = [row[1] for row in sorted(conn.execute(stmt).all(), key=lambda r: id_order(r[0]))]
    return found, payments


def save_evaluations(conn: Connection, connection: str, rows: Sequence[tuple[str, str, str]]) -> None:
    """Keep (remote id, fingerprint, result) as each invoice's last evaluation, replacing the one before."""
    upsert(
        conn,
        t.evaluations,
        [{"connection": connection, "remote_id": r, "fingerprint": f, "result": text} for r, f, text in rows],
        keys=("connection", "remote_id"),
        update=("fingerprint", "result"),
    )


def count_change(conn: Connection) -> None:
    """One more change to the pulled records (in the transaction that makes it): every kept plan is stale."""
    if conn.execute(update(t.record_changes).values(count=t.record_changes.c.count + 1)).rowcount == 0:
        conn.execute(insert(t.record_changes).values(id=1, count=1))


def changes(conn: Connection) -> int:
    """How many times the pulled records changed (`count_change`)."""
    return conn.execute(select(t.record_changes.c.count)).scalar() or 0


def kept_plan(conn: Connection, names: Sequence[str]) -> KeptPlan | None:
    """The plan kept for these connections, or None."""
    row = conn.execute(select(t.kept_plans).where(t.kept_plans.c.names == "\n".join(names))).mappings().first()
    return None if row is None else KeptPlan(row["changes"], row["fingerprint"], row["head"], row["plan"])


def keep_plan(conn: Connection, names: Sequence[str], kept: KeptPlan) -> None:
    """Keep `kept` as the plan of these connections, replacing the one before."""
    row = {"names": "\n".join(names), "changes": kept.changes, "fingerprint": kept.fingerprint, "head": kept.head,
           "plan": kept.plan}  # fmt: skip
    upsert(conn, t.kept_plans, [row], keys=("names",), update=("changes", "fingerprint", "head", "plan"))


def payments(conn: Connection, connection: str) -> list[Payment]:
    """Stored payments of a connection, by remote id."""
    stmt = select(t.payments.c.remote_id, t.payments.c.model).where(t.payments.c.connection == connection)
    rows = sorted(conn.execute(stmt).all(), key=lambda r: id_order(r[0]))
    return [Payment.model_validate_json(model) for _, model in rows]


def estimates(conn: Connection, connection: str) -> list[EstimateRecord]:
    """Stored estimates of a connection, by remote id."""
    stmt = select(t.estimates.c.remote_id, t.estimates.c.model).where(t.estimates.c.connection == connection)
    rows = sorted(conn.execute(stmt).all(), key=lambda r: id_order(r[0]))
    return [_ESTIMATE_JSON.validate_json(model) for _, model in rows]


def customers(conn: Connection, connection: str) -> dict[str, dict[str, Any]]:
    """Cached raw customer payloads of a connection, by the provider's customer id."""
    stmt = select(t.customers.c.remote_id, t.customers.c.raw).where(t.customers.c.connection == connection)
    rows = sorted(conn.execute(stmt).all(), key=lambda r: id_order(r[0]))
    return {remote_id: jsontext.loads(raw) for remote_id, raw in rows}


def customer_id(raw: Mapping[str, Any], fields: tuple[str, ...] | None = None) -> str:
    """The provider's id of a raw customer payload: the first of the installed providers' id fields it holds."""
    fields = customer_id_fields() if fields is None else fields
    found = first_id(raw, fields)
    if found is None:
        raise ValueError(
            f"customer payload has none of the id fields {', '.join(fields)}; "
            "pass customers as a mapping of id to payload"
        )
    return found


def raw_invoice(conn: Connection, connection: str, remote_id: str) -> dict[str, Any] | None:
    """The provider's own payload of a stored invoice."""
    raw = conn.execute(
        select(t.invoices.c.raw).where(t.invoices.c.connection == connection, t.invoices.c.remote_id == remote_id)
    ).scalar()
    if raw is None:
        return None
    value = jsontext.loads(raw)
    assert isinstance(value, dict), "raw payloads are stored from mappings"
    return value


def quarantined(conn: Connection, connection: str) -> list[Quarantined]:
    """Quarantined records of a connection, by stream then record id."""
    rows = conn.execute(select(t.quarantine).where(t.quarantine.c.connection == connection)).mappings().all()
    found = [
        Quarantined(
            stream=row["stream"],
            record_id=row["record_id"],
            error=row["error"],
            raw=None if row["raw"] is None else jsontext.loads(row["raw"]),
            quarantined_at=row["quarantined_at"],
        )
        for row in rows
    ]
    return sorted(found, key=lambda q: (q.stream, id_order(q.record_id)))


def _rows(
    connection: str,
    now: datetime,
    what: str,
    records: Sequence[tuple[_Record, Mapping[str, Any]]],
    dump: Callable[[_Record], str],
) -> dict[str, dict[str, Any]]:
    """The rows of pulled records (payments, estimates) by remote id: the model as `dump` writes it, the raw."""
    rows: dict[str, dict[str, Any]] = {}
    for record, raw in records:
        _check_connection(connection, record.connection, what, record.id)
        rows[record.id] = {
            "connection": connection,
            "remote_id": record.id,
            "model": dump(record),
            "raw": jsontext.dumps(raw),
            "updated_at": now,
        }
    return rows


def _check_connection(expected: str, actual: str, what: str, remote_id: str) -> None:
    if actual != expected:
        raise ValueError(f"{what} {remote_id} belongs to connection {actual!r}, not {expected!r}")
