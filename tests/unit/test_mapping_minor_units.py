"""Provider amounts are never rounded by the mappings: finer than the currency's minor unit is a refusal.

Every money amount a mapping reads (invoice total and balance, line amounts, payments, credits) must be
a whole number of the currency's minor units. One that is finer (12.345 USD, 1500.5 JPY) raises
`DataError` naming the field, so the connector quarantines the record with that reason; trailing zeros
("40.0000") are the same value and are accepted, with the currency's places.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bridge.errors import DataError
from bridge.mapping import freshbooks as fm
from bridge.mapping import quickbooks as qbo
from bridge.mapping import xero as xm
from bridge.mapping.common import money
from tests.unit.test_mapping_freshbooks import invoice as fb_invoice
from tests.unit.test_mapping_quickbooks import CUSTOMERS, raw_invoice
from tests.unit.test_mapping_xero import CONTACTS
from tests.unit.test_mapping_xero import raw as xero_invoice


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("40.0000", "USD", "40.00"),
        (Decimal("1200.10"), "USD", "1200.10"),
        (Decimal("1500.0"), "JPY", "1500"),
        ("12.345", "KWD", "12.345"),
        ("7", "EUR", "7.00"),
    ],
)
def test_an_exact_amount_is_kept_whatever_its_trailing_zeros(value: Any, currency: str, expected: str) -> None:
    assert str(money(value, currency, "f")) == expected


@pytest.mark.parametrize(
    ("value", "currency"), [("12.345", "USD"), ("0.005", "USD"), ("1500.5", "JPY"), ("1.2345", "KWD")]
)
def test_an_amount_finer_than_the_minor_unit_is_refused_not_rounded(value: str, currency: str) -> None:
    with pytest.raises(DataError, match=rf"^Invoice\.Total: {value} {currency} is finer than the currency's minor"):
        money(value, currency, "Invoice.Total")


# -- QuickBooks ---------------------------------------------------------------------------------


def test_quickbooks_an_invoice_with_a_sub_cent_total_is_refused_naming_the_field() -> None:
    with pytest.raises(DataError, match=r"Invoice\.TotalAmt: 2000\.005 USD is finer"):
        qbo.map_invoice(raw_invoice(TotalAmt=Decimal("2000.005")), "q", CUSTOMERS)


def test_quickbooks_a_sub_cent_balance_or_line_amount_is_refused() -> None:
    with pytest.raises(DataError, match=r"Invoice\.Balance"):
        qbo.map_invoice(raw_invoice(Balance=Decimal("1500.125")), "q", CUSTOMERS)
    raw = raw_invoice()
    raw["Line"][0]["Amount"] = Decimal("2000.001")
    with pytest.raises(DataError, match=r"Invoice\.Line\[0\]\.Amount"):
        qbo.map_invoice(raw, "q", CUSTOMERS)


def test_quickbooks_trailing_zeros_are_exact_and_mapped() -> None:
    inv = qbo.map_invoice(raw_invoice(TotalAmt=Decimal("2000.0000"), Balance="1500.000"), "q", CUSTOMERS)
    assert (str(inv.total), str(inv.amount_due)) == ("2000.00", "1500.00")


def test_quickbooks_a_sub_cent_payment_is_refused() -> None:
    raw = {
        "Id": "9",
        "TxnDate": "2026-09-20",
        "CustomerRef": {"value": "3"},
        "TotalAmt": Decimal("500.005"),
        "Line": [{"Amount": Decimal("500.00"), "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]}],
    }
    with pytest.raises(DataError, match=r"Payment\.TotalAmt"):
        qbo.map_payment(raw, "q")
    raw["TotalAmt"], raw["Line"][0]["Amount"] = Decimal("500.00"), Decimal("499.995")
    with pytest.raises(DataError, match=r"Payment\.Line\[0\]\.Amount"):
        qbo.map_payment(raw, "q")


# -- Xero ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["Total", "AmountDue", "AmountPaid", "AmountCredited"])
def test_xero_an_invoice_with_a_sub_cent_amount_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(DataError, match=rf"Invoice\.{field}: 0\.001 USD is finer"):
        xm.map_invoice(xero_invoice(**{field: Decimal("0.001")}), "x", CONTACTS)


def test_xero_a_sub_cent_line_or_credit_is_refused() -> None:
    line = [{"LineItemID": "l1", "Description": "Workshop", "LineAmount": Decimal("1200.004")}]
    with pytest.raises(DataError, match=r"Invoice\.LineItems\[0\]\.LineAmount"):
        xm.map_invoice(xero_invoice(LineItems=line), "x", CONTACTS)
    credit = [{"CreditNoteID": "cn1", "AppliedAmount": Decimal("99.999"), "Date": "/Date(1783296000000+0000)/"}]
    with pytest.raises(DataError, match=r"Invoice\.CreditNotes\[0\]\.AppliedAmount"):
        xm.map_invoice(xero_invoice(CreditNotes=credit), "x", CONTACTS)


def test_xero_a_jpy_invoice_in_fractions_of_a_yen_is_refused_and_whole_yen_with_decimals_is_not() -> None:
    with pytest.raises(DataError, match=r"Invoice\.Total: 1200\.5 JPY"):
        xm.map_invoice(xero_invoice(CurrencyCode="JPY", Total=Decimal("1200.5"), LineItems=[]), "x", CONTACTS)
    inv = xm.map_invoice(
        xero_invoice(CurrencyCode="JPY", Total=Decimal("1200.00"), AmountDue=Decimal("1200.0"), LineItems=[]),
        "x",
        CONTACTS,
    )
    assert (str(inv.total), str(inv.amount_due)) == ("1200", "1200")


def test_xero_a_sub_cent_payment_is_refused() -> None:
    raw = {
        "PaymentID": "p1",
        "Date": "/Date(1784592000000+0000)/",
        "Amount": Decimal("1200.005"),
        "Invoice": {"InvoiceID": "i1", "CurrencyCode": "USD", "Contact": {"ContactID": "c1"}},
    }
    with pytest.raises(DataError, match=r"Payment\.Amount"):
        xm.map_payment(raw, "x")


# -- FreshBooks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["amount", "outstanding", "paid"])
def test_freshbooks_an_invoice_with_a_sub_cent_amount_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(DataError, match=rf"invoice\.{field}: 3900\.001 USD is finer"):
        fm.map_invoice(fb_invoice(**{field: {"amount": "3900.001", "code": "USD"}}), "f", {})


def test_freshbooks_a_sub_cent_line_is_refused_and_trailing_zeros_are_not() -> None:
    raw = fb_invoice()
    raw["lines"][0]["amount"] = {"amount": "3900.0001", "code": "USD"}
    with pytest.raises(DataError, match=r"invoice\.lines\[0\]\.amount"):
        fm.map_invoice(raw, "f", {})
    raw["lines"][0]["amount"] = {"amount": "3900.0000", "code": "USD"}
    assert str(fm.map_invoice(raw, "f", {}).lines[0].amount) == "3900.00"


def test_freshbooks_a_sub_cent_payment_is_refused() -> None:
    raw = {"id": 5003, "invoiceid": 103, "clientid": 3, "date": "2026-09-01"}
    raw["amount"] = {"amount": "1560.005", "code": "USD"}
    with pytest.raises(DataError, match=r"payment\.amount"):
        fm.map_payment(raw, "f")
