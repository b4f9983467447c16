"""Xero JSON -> the model, and actions -> Xero payloads (pure: no HTTP)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from bridge.errors import DataError
from bridge.mapping import xero as xm
from bridge.model import InvoiceStatus
from tests.contract.suite import due_date_action, fee_action

CONTACTS = {"c1": {"ContactID": "c1", "Name": "Ridgeway University", "EmailAddress": "ap@ridgeway.example"}}


def raw(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Type": "ACCREC",
        "InvoiceID": "i1",
        "InvoiceNumber": "INV-0001",
        "Reference": "",
        "Contact": {"ContactID": "c1", "Name": "Ridgeway University"},
        "Date": "/Date(1782259200000+0000)/",  # 2026-06-24
        "DueDate": "/Date(1784851200000+0000)/",  # 2026-07-24
        "Status": "AUTHORISED",
        "LineItems": [{"LineItemID": "l1", "Description": "Workshop", "LineAmount": Decimal("1200.00")}],
        "Total": Decimal("1200.00"),
        "AmountDue": Decimal("1200.00"),
        "AmountPaid": Decimal("0.00"),
        "AmountCredited": Decimal("0.00"),
        "CurrencyCode": "USD",
        "UpdatedDateUTC": "/Date(1784642460123+0000)/",
    }
    base.update(over)
    return base


def test_an_authorised_invoice_is_open_with_the_contacts_email_and_its_days() -> None:
    inv = xm.map_invoice(raw(), "x", CONTACTS)
    assert inv.status is InvoiceStatus.OPEN and inv.editable and inv.is_sale
    assert (inv.issue_date, inv.due_date) == (date(2026, 6, 24), date(2026, 7, 24))
    assert inv.customer.email == "ap@ridgeway.example" and inv.total == Decimal("1200.00")
    assert inv.lines[0].id == "l1"


@pytest.mark.parametrize(
    ("status", "paid", "due", "expected"),
    [
        ("DRAFT", "0", "1200", InvoiceStatus.DRAFT),
        ("SUBMITTED", "0", "1200", InvoiceStatus.DRAFT),
        ("AUTHORISED", "200", "1000", InvoiceStatus.PARTIALLY_PAID),
        ("PAID", "1200", "0", InvoiceStatus.PAID),
        ("VOIDED", "0", "0", InvoiceStatus.VOID),
        ("DELETED", "0", "0", InvoiceStatus.DELETED),
    ],
)
def test_statuses(status: str, paid: str, due: str, expected: InvoiceStatus) -> None:
    inv = xm.map_invoice(raw(Status=status, AmountPaid=Decimal(paid), AmountDue=Decimal(due)), "x", CONTACTS)
    assert inv.status is expected


def test_a_payment_or_credit_allocated_makes_the_invoice_not_editable() -> None:
    credited = raw(
        AmountCredited=Decimal("100.00"),
        AmountDue=Decimal("1100.00"),
        CreditNotes=[{"CreditNoteID": "cn1", "AppliedAmount": Decimal("100.00"), "Date": "/Date(1783296000000+0000)/"}],
    )
    inv = xm.map_invoice(credited, "x", CONTACTS)
    assert not inv.editable and inv.status is InvoiceStatus.PARTIALLY_PAID
    assert [(p.kind, p.amount, p.date) for p in inv.payments] == [("credit", Decimal("100.00"), date(2026, 7, 6))]


def test_a_bridge_fee_invoice_is_recognised_by_its_reference() -> None:
    inv = xm.map_invoice(raw(Reference="Late fee on INV-0001 (bridge fee_for=i0)"), "x", CONTACTS)
    assert inv.fee_for == "i0"


def test_a_bill_is_not_a_sale() -> None:
    assert not xm.map_invoice(raw(Type="ACCPAY"), "x", CONTACTS).is_sale


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("Total", 1.5, "binary float"),
        ("Total", "lots", "Total"),
        ("Status", "APPROVED", "Status"),
        ("CurrencyCode", "XXY", "CurrencyCode"),
        ("DueDate", "next week", "DueDate"),
        ("InvoiceID", None, "InvoiceID"),
        ("LineItems", "none", "LineItems"),
        ("AmountDue", Decimal("-1"), "negative"),
    ],
)
def test_a_bad_record_names_the_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        xm.map_invoice(raw(**{field: value}), "x", CONTACTS)


def test_a_payment_is_one_allocation_to_its_invoice() -> None:
    payment = xm.map_payment(
        {
            "PaymentID": "p1",
            "Date": "/Date(1784592000000+0000)/",
            "Amount": Decimal("1200.00"),
            "Status": "AUTHORISED",
            "Invoice": {"InvoiceID": "i1", "CurrencyCode": "USD", "Contact": {"ContactID": "c1"}},
        },
        "x",
    )
    (allocation,) = payment.allocations
    assert (allocation.invoice_id, allocation.amount, allocation.date) == ("i1", Decimal("1200.00"), date(2026, 7, 21))
    assert payment.customer_id == "c1"


def test_dates_go_out_as_xero_writes_them_and_come_back_the_same_day() -> None:
    assert xm.wire_date(date(2026, 6, 24)) == "/Date(1782259200000+0000)/"
    assert xm.day(xm.wire_date(date(2028, 2, 29)), "d") == date(2028, 2, 29)
    assert xm.updated_ms(raw()) == 1784642460123


def test_the_fee_line_update_sends_every_existing_line_back_with_its_id() -> None:
    invoice = xm.map_invoice(raw(), "x", CONTACTS)
    action = fee_action(invoice)
    body = xm.fee_line_update(raw(), [action])
    assert [line.get("LineItemID") for line in body["LineItems"]] == ["l1", None]
    assert body["LineItems"][1]["UnitAmount"] == Decimal("12.34")  # a Decimal, encoded exactly by the connector
    assert xm.fee_line_id({"LineItems": [*body["LineItems"][:1], {**body["LineItems"][1], "LineItemID": "n"}]}, action)


def test_a_fee_invoice_references_the_original() -> None:
    invoice = xm.map_invoice(raw(), "x", CONTACTS)
    body = xm.fee_invoice_create(raw(), fee_action(invoice), date(2026, 10, 1))
    assert body["Type"] == "ACCREC" and body["InvoiceNumber"] == "INV-0001-LF1"
    assert body["Contact"] == {"ContactID": "c1"} and "bridge fee_for=i1" in body["Reference"]
    assert xm.map_invoice({**raw(InvoiceID="f1"), **body, "Total": Decimal("12.34")}, "x", CONTACTS).fee_for == "i1"


def test_a_history_note_cites_the_clause_and_the_action_key() -> None:
    invoice = xm.map_invoice(raw(), "x", CONTACTS)
    note = xm.history_note(due_date_action(invoice, date(2026, 12, 31)), None)
    assert note.startswith("bridge: due date moved to 2026-12-31.")
    assert "contracts.standard.renegotiation" in note and "renegotiation:x:i1" in note


def test_validation_messages_are_read_from_a_400_body() -> None:
    body = {"Elements": [{"ValidationErrors": [{"Message": "This document cannot be edited as it has a payment"}]}]}
    assert xm.error_messages(json.dumps(body).encode()) == ["This document cannot be edited as it has a payment"]
    assert xm.error_messages(b'{"Message": "A validation exception occurred"}') == ["A validation exception occurred"]
    assert xm.error_messages(b"<html>Bad gateway</html>") == [] and xm.error_messages(b"[1, 2]") == []
