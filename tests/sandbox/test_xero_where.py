"""The `where` and `order` clauses of the Xero emulator."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bridge_sandbox.xero_where import WhereError, ms_date, parse_ms_date, parse_where, sort_objects

A = {
    "Status": "AUTHORISED",
    "Type": "ACCREC",
    "AmountDue": Decimal("10.00"),
    "InvoiceNumber": "INV-0002",
    "DueDate": ms_date(datetime(2026, 9, 1, tzinfo=UTC)),
    "Contact": {"ContactID": "AB-1", "Name": "Ann"},
}
B = {
    "Status": "PAID",
    "Type": "ACCREC",
    "AmountDue": Decimal("0.00"),
    "InvoiceNumber": "INV-0001",
    "DueDate": ms_date(datetime(2026, 10, 1, tzinfo=UTC)),
    "Contact": {"ContactID": "ab-2", "Name": "Bob"},
}


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ('Status=="AUTHORISED"', ["INV-0002"]),
        ('status=="paid" AND Type=="ACCREC"', ["INV-0001"]),
        ('Status=="PAID" OR AmountDue>5', ["INV-0002", "INV-0001"]),
        ('(Status=="PAID" || Status=="AUTHORISED") && AmountDue>=10', ["INV-0002"]),
        ("DueDate<DateTime(2026,09,15)", ["INV-0002"]),
        ("DueDate>=DateTime(2026, 10, 01)", ["INV-0001"]),
        ('Contact.ContactID==Guid("ab-1")', ["INV-0002"]),
        ('InvoiceNumber!="INV-0001"', ["INV-0002"]),
    ],
)
def test_where(clause: str, expected: list[str]) -> None:
    predicate = parse_where(clause)
    assert [o["InvoiceNumber"] for o in (A, B) if predicate(o)] == expected


@pytest.mark.parametrize("clause", ['Status=="PAID" AND', "Status==", '(Status=="PAID"', "DueDate<DateTime(x)"])
def test_bad_where(clause: str) -> None:
    with pytest.raises(WhereError):
        parse_where(clause)


def test_order_and_dates() -> None:
    assert [o["InvoiceNumber"] for o in sort_objects([A, B], "DueDate DESC")] == ["INV-0001", "INV-0002"]
    assert [o["InvoiceNumber"] for o in sort_objects([A, B], "InvoiceNumber")] == ["INV-0001", "INV-0002"]
    assert ms_date(datetime(2018, 10, 20, tzinfo=UTC)) == "/Date(1539993600000+0000)/"
    assert parse_ms_date("/Date(1539993600000)/") == datetime(2018, 10, 20, tzinfo=UTC)
    with pytest.raises(WhereError):
        sort_objects([A], "DueDate SIDEWAYS")
