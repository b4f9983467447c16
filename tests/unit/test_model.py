"""The normalized records: validated on the way in, frozen, and small (no per-object `__dict__`)."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from bridge.model import INVOICE_JSON, Allocation, Customer, HistoryEntry, Invoice, InvoiceStatus, LineItem


def sample() -> Invoice:
    return Invoice(
        id="7",
        number="INV-7",
        connection="acme",
        customer=Customer(id="c1", name="Blue Bakery", email="ap@blue.example"),
        currency="KWD",
        due_date=date(2026, 2, 28),
        total=Decimal("10.500"),
        amount_due=Decimal("4.500"),
        status=InvoiceStatus.PARTIALLY_PAID,
        payments=(Allocation(date=date(2026, 2, 1), amount=Decimal("6.000"), payment_id="P1"),),
        lines=(LineItem(id="1", item="Hours", amount=Decimal("10.500")),),
    )


def test_records_have_no_per_object_dict_and_refuse_assignment() -> None:
    inv = sample()
    for record in (inv, inv.customer, inv.lines[0], inv.payments[0], HistoryEntry(key="reminder:acme:7:1", kind="r")):
        assert not hasattr(record, "__dict__"), type(record).__name__
        first = dataclasses.fields(record)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, first, "other")


def test_an_invoice_round_trips_through_its_json() -> None:
    inv = sample()
    again = INVOICE_JSON.validate_json(INVOICE_JSON.dump_json(inv))
    assert again == inv
    assert hash(again) == hash(inv)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: LineItem(amount=1.5), "not a float"),  # type: ignore[arg-type]
        (lambda: LineItem(amount=Decimal("1"), colour="red"), "Unexpected keyword argument"),  # type: ignore[call-arg]
        (lambda: Allocation(date="31/01/2026", amount=Decimal("1")), "date"),  # type: ignore[arg-type]
        (lambda: dataclasses.replace(sample(), currency="EURO"), "ISO 4217"),
    ],
)
def test_bad_values_are_refused(make: object, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        make()  # type: ignore[operator]


def test_ledger_entries_ignore_extra_fields() -> None:
    entry = HistoryEntry(key="late_fee:acme:7:1", kind="late_fee", amount=Decimal("1.50"), response_id="x")  # type: ignore[call-arg]
    assert entry.amount == Decimal("1.50")
