"""FreshBooks JSON -> model and actions -> payloads (pure; no sandbox)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from bridge.errors import DataError
from bridge.mapping import freshbooks as fm
from bridge.model import InvoiceStatus
from bridge.plan import Action, ActionKind, InvoiceRef


def invoice(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": 103,
        "invoiceid": 103,
        "invoice_number": "0000003",
        "customerid": 3,
        "organization": "Lakeside Dental",
        "create_date": "2026-07-09",
        "due_date": "2026-08-08",
        "currency_code": "USD",
        "amount": {"amount": "3900.00", "code": "USD"},
        "paid": {"amount": "0.00", "code": "USD"},
        "outstanding": {"amount": "3900.00", "code": "USD"},
        "status": 2,
        "vis_state": 0,
        "notes": "",
        "updated": "2026-07-09 10:03:00",
        "lines": [
            {
                "lineid": 1,
                "name": "Drawings",
                "description": "",
                "qty": "1",
                "unit_cost": {"amount": "3900.00", "code": "USD"},
                "amount": {"amount": "3900.00", "code": "USD"},
            }
        ],
    }
    raw.update(over)
    return raw


CLIENTS = {"3": {"id": 3, "organization": "Lakeside Dental", "email": "office@lakesidedental.example"}}


def fee(amount: str = "12.50", **over: Any) -> Action:
    fields: dict[str, Any] = {
        "key": "late_fee:fb:103:1",
        "kind": ActionKind.LATE_FEE,
        "connection": "fb",
        "provider": "freshbooks",
        "invoice": InvoiceRef(
            "103", "0000003", "Lakeside Dental", "USD", Decimal("3900.00"), Decimal("3900.00"), None, None
        ),
        "clause": "contracts.standard.late_fee",
        "reason": "test",
        "occurrence": 1,
        "amount": Decimal(amount),
        "item": "Late Fee",
        "description": "Late fee (no. 1, 2026-08-13) on invoice 0000003",
    }
    fields.update(over)
    return Action(**fields)


def test_an_open_invoice_maps_with_exact_amounts_and_the_clients_email() -> None:
    inv = fm.map_invoice(invoice(), "fb", CLIENTS)
    assert (inv.id, inv.number, inv.status, inv.total, inv.amount_due) == (
        "103",
        "0000003",
        InvoiceStatus.OPEN,
        Decimal("3900.00"),
        Decimal("3900.00"),
    )
    assert inv.customer.email == "office@lakesidedental.example" and inv.due_date == date(2026, 8, 8)
    assert inv.provider == "freshbooks" and not inv.disputed and inv.editable


@pytest.mark.parametrize(
    ("over", "status", "held"),
    [
        ({"status": 1}, InvoiceStatus.DRAFT, False),
        ({"status": 3}, InvoiceStatus.OPEN, False),
        ({"status": 4, "outstanding": {"amount": "0.00", "code": "USD"}}, InvoiceStatus.PAID, False),
        ({"status": 5, "outstanding": {"amount": "0.00", "code": "USD"}}, InvoiceStatus.PAID, False),
        (
            {"status": 8, "paid": {"amount": "100.00", "code": "USD"}, "outstanding": {"amount": "3800.00"}},
            InvoiceStatus.PARTIALLY_PAID,
            False,
        ),
        ({"status": 0}, InvoiceStatus.OPEN, True),  # disputed: on hold
        ({"vis_state": 2}, InvoiceStatus.OPEN, True),  # archived: on hold
        ({"vis_state": 1}, InvoiceStatus.DELETED, False),
    ],
)
def test_statuses_disputes_and_vis_states(over: dict[str, Any], status: InvoiceStatus, held: bool) -> None:
    inv = fm.map_invoice(invoice(**over), "fb", CLIENTS)
    assert inv.status is status and inv.disputed is held


def test_updated_is_us_eastern_wall_time() -> None:
    assert fm.updated_at("2026-07-09 10:03:00") == datetime(2026, 7, 9, 14, 3, tzinfo=UTC)  # EDT, UTC-4
    assert fm.updated_at("2026-12-01 10:00:00") == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # EST, UTC-5
    assert fm.eastern_day(int(datetime(2026, 7, 10, 2, 0, tzinfo=UTC).timestamp())) == date(2026, 7, 9)
    with pytest.raises(DataError):
        fm.updated_at("2026-07-09T10:03:00Z")


def test_a_float_amount_is_refused_and_a_bad_one_quarantined() -> None:
    with pytest.raises(DataError, match="float"):
        fm.map_invoice(invoice(amount={"amount": 3900.0, "code": "USD"}), "fb", CLIENTS)
    with pytest.raises(DataError, match="amount"):
        fm.map_invoice(invoice(outstanding={"amount": "lots"}), "fb", CLIENTS)


def test_freshbooks_own_late_fee_line_is_marked_and_the_bridges_own_is_not() -> None:
    lines = [
        *invoice()["lines"],
        {
            "lineid": 2,
            "name": "Late Fee",
            "description": "Late fee applied by FreshBooks",
            "amount": {"amount": "18.75"},
        },
        {"lineid": 3, "name": "Late Fee", "description": fee().description, "amount": {"amount": "12.50"}},
    ]
    inv = fm.map_invoice(invoice(lines=lines), "fb", CLIENTS)
    assert [line.provider_late_fee for line in inv.lines] == [False, True, False]
    assert inv.lines[2].item == "Late Fee" and inv.lines[2].amount == Decimal("12.50")


def test_a_fee_invoice_is_recognised_by_its_notes() -> None:
    raw = invoice(id=150, invoice_number="0000003-LF1", notes="Late fee on invoice 0000003 (bridge fee_for=103)")
    assert fm.map_invoice(raw, "fb", CLIENTS).fee_for == "103"
    assert fm.is_fee_invoice_for(raw, fee())
    assert not fm.is_fee_invoice_for({**raw, "notes": ""}, fee())


def test_a_payment_is_one_allocation_to_its_invoice() -> None:
    raw = {"id": 5003, "invoiceid": 103, "clientid": 3, "amount": {"amount": "1560.00", "code": "USD"}}
    payment = fm.map_payment({**raw, "date": "2026-08-10", "vis_state": 0}, "fb")
    assert payment.amount == Decimal("1560.00") and payment.allocations[0].invoice_id == "103"
    assert payment.date == date(2026, 8, 10) and payment.customer_id == "3"


def test_the_fee_line_update_sends_every_line_back_with_its_lineid_and_amounts_as_strings() -> None:
    raw = invoice()
    raw["lines"][0]["qty"] = Decimal("1")  # read back as an exact number: still no float on the way out
    body = fm.fee_line_update(raw, fee())
    text = json.dumps(body)  # the SDK's json.dumps must manage it (no Decimal, no float)
    assert [line.get("lineid") for line in body["lines"]] == [1, None]
    assert body["lines"][1] == {
        "name": "Late Fee",
        "description": "Late fee (no. 1, 2026-08-13) on invoice 0000003",
        "qty": "1",
        "unit_cost": {"amount": "12.50", "code": "USD"},
    }
    assert '"qty": "1"' in text


def test_the_email_update_carries_only_the_action_and_the_contracts_words() -> None:
    reminder = fee(kind=ActionKind.REMINDER, to="a@b.example", subject="Hello", body="Please pay")
    assert fm.email_update(reminder) == {
        "action_email": True,
        "email_recipients": ["a@b.example"],
        "invoice_customized_email": {"subject": "Hello", "body": "Please pay"},
    }


def test_error_envelopes() -> None:
    body = {"response": {"errors": [{"errno": 1012, "field": "invoiceid", "message": "Invoice not found."}]}}
    assert fm.error_messages(body) == ["Invoice not found."]
    assert fm.error_messages({"error": "invalid_grant", "error_description": "used"}) == ["used"]
    assert fm.error_messages("nope") == []
