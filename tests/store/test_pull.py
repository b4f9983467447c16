"""Pulled records, cursors and quarantine: one transaction per pull, money exact."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from bridge.model import InvoiceStatus
from bridge.store import Cursor, Quarantined, Store, _records, _sql
from bridge.store import tables as t
from tests.store.factories import invoice, payment, raw_invoice

WATERMARK = "2026-10-20T10:00:00Z"


def test_records_and_cursors_round_trip(store: Store) -> None:
    assert store.cursor("acme", "invoices") is None
    full = datetime(2026, 10, 1, tzinfo=UTC)
    store.save_pull(
        "acme",
        invoices=[(invoice("10"), raw_invoice("10")), (invoice("9"), raw_invoice("9"))],
        payments=[(payment("p2"), {"Id": "p2"}), (payment("p1"), {"Id": "p1"})],
        cursors={
            "invoices": Cursor(WATERMARK, ("9", "10"), full),
            "payments": Cursor("2026-10-19T00:00:00Z"),
        },
    )
    assert [i.id for i in store.invoices("acme")] == ["9", "10"]
    assert store.invoices("acme")[0] == invoice("9")
    assert [p.id for p in store.payments("acme")] == ["p1", "p2"]
    assert store.payments("acme")[0] == payment("p1")
    assert store.invoice("acme", "10") == invoice("10")
    assert store.invoice("acme", "11") is None
    assert store.invoice_by_number("acme", "INV-9") == invoice("9")
    assert store.cursor("acme", "invoices") == Cursor(WATERMARK, ("9", "10"), full)
    assert store.cursor("acme", "payments") == Cursor("2026-10-19T00:00:00Z", (), None)
    assert store.invoices("other") == []


def test_upsert_replaces_by_connection_and_remote_id(store: Store) -> None:
    store.save_pull("acme", invoices=[(invoice("1", total="100.00"), raw_invoice("1", "100.00"))])
    store.save_pull("other", invoices=[(invoice("1", connection="other"), raw_invoice("1"))])
    paid = invoice("1", total="100.00", status=InvoiceStatus.PAID)
    store.save_pull("acme", invoices=[(paid, {**raw_invoice("1"), "Balance": Decimal("0")})])
    assert store.invoices("acme") == [paid]
    assert store.raw_invoice("acme", "1") == {**raw_invoice("1"), "Balance": 0}
    assert len(store.invoices("other")) == 1


def test_deleted_records_disappear(store: Store) -> None:
    store.save_pull(
        "acme",
        invoices=[(invoice(str(n)), raw_invoice(str(n))) for n in range(1, 4)],
        payments=[(payment("p1"), {}), (payment("p2"), {})],
    )
    store.save_pull("acme", deleted_invoices=["2", "404"], deleted_payments=["p1"])
    assert [i.id for i in store.invoices("acme")] == ["1", "3"]
    assert [p.id for p in store.payments("acme")] == ["p2"]
    assert store.raw_invoice("acme", "2") is None
    # A deletion wins over an upsert of the same id in the same pull.
    store.save_pull("acme", invoices=[(invoice("3"), raw_invoice("3"))], deleted_invoices=["3"])
    assert [i.id for i in store.invoices("acme")] == ["1"]


def test_quarantine_is_replaced_per_record_and_cleared_when_it_arrives_fine(store: Store) -> None:
    store.save_pull(
        "acme",
        quarantined=[
            Quarantined("invoices", "5", "DueDate missing", {"Id": "5", "TotalAmt": Decimal("10.10")}),
            Quarantined("invoices", "6", "bad currency", {"Id": "6"}),
            Quarantined("payments", "p9", "no amount", None),
        ],
    )
    store.save_pull("acme", quarantined=[Quarantined("invoices", "5", "still no DueDate", {"Id": "5"})])
    found = store.quarantined("acme")
    assert [(q.stream, q.record_id, q.error) for q in found] == [
        ("invoices", "5", "still no DueDate"),
        ("invoices", "6", "bad currency"),
        ("payments", "p9", "no amount"),
    ]
    assert found[0].raw == {"Id": "5"} and found[2].raw is None
    assert found[0].quarantined_at is not None

    store.save_pull("acme", invoices=[(invoice("5"), raw_invoice("5"))], deleted_invoices=["6"])
    assert [(q.stream, q.record_id) for q in store.quarantined("acme")] == [("payments", "p9")]
    store.save_pull("acme", payments=[(payment("p9"), {})])
    assert store.quarantined("acme") == []


def test_customers_are_cached_raw_by_provider_id(store: Store) -> None:
    store.save_pull(
        "acme",
        customers=[
            {"Id": "3", "DisplayName": "Amy", "Balance": Decimal("1500.00")},
            {"ContactID": "c-1", "Name": "Xero Co"},
            {"id": 77, "organization": "FB Ltd"},
        ],
    )
    store.save_pull("acme", customers={"3": {"Id": "3", "DisplayName": "Amy B."}})
    assert store.customers("acme") == {
        "3": {"Id": "3", "DisplayName": "Amy B."},
        "77": {"id": 77, "organization": "FB Ltd"},
        "c-1": {"ContactID": "c-1", "Name": "Xero Co"},
    }
    with pytest.raises(ValueError, match="id fields"):
        store.save_pull("acme", customers=[{"Name": "nobody"}])


def test_a_record_of_another_connection_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="belongs to connection 'other'"):
        store.save_pull("acme", invoices=[(invoice("1", connection="other"), {})])


# -- one transaction -------------------------------------------------------------------------


def _seed(store: Store) -> None:
    store.save_pull(
        "acme", invoices=[(invoice("1"), raw_invoice("1"))], cursors={"invoices": Cursor("2026-10-01T00:00:00Z")}
    )


def test_a_failing_quarantine_row_leaves_neither_records_nor_cursor(store: Store) -> None:
    _seed(store)
    bad: Any = None  # violates NOT NULL on quarantine.record_id, after the records were written
    with pytest.raises(IntegrityError):
        store.save_pull(
            "acme",
            invoices=[(invoice("2"), raw_invoice("2")), (invoice("1", total="999.00"), raw_invoice("1", "999.00"))],
            deleted_payments=["p1"],
            cursors={"invoices": Cursor(WATERMARK, ("2",))},
            quarantined=[Quarantined("invoices", bad, "broken")],
        )
    assert store.invoices("acme") == [invoice("1")]
    assert store.cursor("acme", "invoices") == Cursor("2026-10-01T00:00:00Z")


def test_a_failure_while_saving_cursors_rolls_back_the_records(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _seed(store)
    real_upsert = _sql.upsert

    def failing_upsert(conn: Any, table: Any, rows: Any, **kw: Any) -> None:
        if table is t.cursors:
            raise RuntimeError("disk full, say")
        real_upsert(conn, table, rows, **kw)

    monkeypatch.setattr(_records, "upsert", failing_upsert)
    with pytest.raises(RuntimeError, match="disk full"):
        store.save_pull(
            "acme",
            invoices=[(invoice("2"), raw_invoice("2"))],
            deleted_invoices=["1"],
            cursors={"invoices": Cursor(WATERMARK, ("2",))},
        )
    monkeypatch.undo()
    assert [i.id for i in store.invoices("acme")] == ["1"]
    assert store.cursor("acme", "invoices") == Cursor("2026-10-01T00:00:00Z")


# -- money stays exact ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount"),
    [("USD", "0.1"), ("USD", "0.10"), ("JPY", "1500"), ("KWD", "12.345"), ("KWD", "0.005"), ("USD", "1E+3")],
)
def test_decimals_round_trip_exactly(store: Store, currency: str, amount: str) -> None:
    inv = invoice("1", total=amount, currency=currency)
    raw = {"Id": "1", "TotalAmt": Decimal(amount), "Line": [{"Amount": Decimal(amount)}], "Count": 2}
    store.save_pull(
        "acme",
        invoices=[(inv, raw)],
        payments=[(payment("p", amount=amount, currency=currency), {"Amount": raw["TotalAmt"]})],
    )
    back = store.invoices("acme")[0]
    assert back == inv
    assert str(back.total) == amount and str(back.lines[0].amount) == amount  # same digits, not just equal
    assert str(store.payments("acme")[0].amount) == amount
    raw_back = store.raw_invoice("acme", "1")
    assert raw_back is not None
    assert str(raw_back["TotalAmt"]) == amount or raw_back["TotalAmt"] == int(Decimal(amount))
    assert raw_back["TotalAmt"] == Decimal(amount) and not isinstance(raw_back["TotalAmt"], float)


def test_the_stored_json_holds_the_exact_digits(store: Store) -> None:
    store.save_pull("acme", invoices=[(invoice("1", total="0.10"), {"TotalAmt": Decimal("0.10")})])
    with store.engine.connect() as conn:
        model, raw = conn.execute(t.invoices.select().with_only_columns(t.invoices.c.model, t.invoices.c.raw)).one()
    assert json.loads(model)["total"] == "0.10"
    assert raw == '{"TotalAmt":0.10}'
