"""QuickBooks JSON -> model: derived status, payments, projects, exact money; action -> payloads."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from bridge.errors import DataError
from bridge.mapping import quickbooks as qbo
from bridge.mapping.common import attach_payments, idempotency_key
from bridge.model import InvoiceStatus
from bridge.plan import Action, ActionKind, InvoiceRef

CUSTOMERS = {
    "3": {"Id": "3", "DisplayName": "Amy's Bird Sanctuary", "PrimaryEmailAddr": {"Address": "birds@example.com"}},
    "30": {"Id": "30", "DisplayName": "Amy: Aviary", "Job": True, "ParentRef": {"value": "3"}},
}


def raw_invoice(**over):
    raw = {
        "Id": "130",
        "SyncToken": "2",
        "DocNumber": "1037",
        "TxnDate": "2026-08-08",
        "DueDate": "2026-09-07",
        "CustomerRef": {"value": "3", "name": "Amy's Bird Sanctuary"},
        "CurrencyRef": {"value": "USD"},
        "TotalAmt": Decimal("2000.00"),
        "Balance": Decimal("1500.00"),
        "Line": [
            {
                "Id": "1",
                "LineNum": 1,
                "Amount": Decimal("2000.00"),
                "DetailType": "SalesItemLineDetail",
                "Description": "Consulting",
                "SalesItemLineDetail": {"ItemRef": {"value": "1", "name": "Services"}},
            },
            {"Amount": Decimal("2000.00"), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
        ],
        "MetaData": {"LastUpdatedTime": "2026-09-20T10:00:00-07:00"},
    }
    raw.update(over)
    return raw


def test_status_is_derived_from_balance_and_total():
    assert qbo.map_invoice(raw_invoice(), "c", CUSTOMERS).status is InvoiceStatus.PARTIALLY_PAID
    assert qbo.map_invoice(raw_invoice(Balance=2000), "c", CUSTOMERS).status is InvoiceStatus.OPEN
    assert qbo.map_invoice(raw_invoice(Balance=0), "c", CUSTOMERS).status is InvoiceStatus.PAID
    voided = raw_invoice(TotalAmt=0, Balance=0, PrivateNote="Voided")
    assert qbo.map_invoice(voided, "c", CUSTOMERS).status is InvoiceStatus.VOID


def test_money_is_exact_decimal_in_minor_units_and_subtotal_lines_are_not_charges():
    inv = qbo.map_invoice(raw_invoice(TotalAmt=2000), "c", CUSTOMERS)
    assert inv.total == Decimal("2000.00") and str(inv.total) == "2000.00"
    assert [line.description for line in inv.lines] == ["Consulting"]
    with pytest.raises(DataError, match="float"):
        qbo.map_invoice(raw_invoice(TotalAmt=2000.5), "c", CUSTOMERS)


def test_a_project_is_a_sub_customer_of_its_parent():
    inv = qbo.map_invoice(raw_invoice(CustomerRef={"value": "30"}), "c", CUSTOMERS)
    assert inv.project == "30" and inv.customer.id == "3" and inv.customer.email == "birds@example.com"


def test_bad_records_raise_data_error_naming_the_field():
    for bad, field in [
        (raw_invoice(TotalAmt=None), "TotalAmt"),
        (raw_invoice(DueDate="07/09/2026"), "DueDate"),
        (raw_invoice(CurrencyRef={"value": "XYZ"}), "CurrencyRef"),
        (raw_invoice(Balance=Decimal("-5")), "negative"),
        (raw_invoice(Line="nope"), "Line"),
    ]:
        with pytest.raises(DataError, match=field):
            qbo.map_invoice(bad, "c", CUSTOMERS)


def test_a_payment_pays_several_invoices_and_attaches_by_date():
    raw = {
        "Id": "201",
        "TxnDate": "2026-09-20",
        "TotalAmt": Decimal("700.00"),
        "CustomerRef": {"value": "3"},
        "Line": [
            {"Amount": Decimal("500.00"), "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]},
            {"Amount": Decimal("200.00"), "LinkedTxn": [{"TxnId": "131", "TxnType": "Invoice"}]},
        ],
    }
    payment = qbo.map_payment(raw, "c")
    assert [(a.invoice_id, a.amount) for a in payment.allocations] == [
        ("130", Decimal("500.00")),
        ("131", Decimal("200.00")),
    ]
    (inv,) = attach_payments([qbo.map_invoice(raw_invoice(), "c", CUSTOMERS)], [payment])
    assert [(p.date, p.amount) for p in inv.payments] == [(date(2026, 9, 20), Decimal("500.00"))]


def fee_action(form="line"):
    ref = InvoiceRef(
        "130", "1037", "Amy", "USD", Decimal("2000.00"), Decimal("1500.00"), date(2026, 9, 7), date(2026, 9, 7)
    )
    return Action(
        key="late_fee:c:130:2",
        kind=ActionKind.LATE_FEE,
        connection="c",
        provider="quickbooks",
        invoice=ref,
        clause="contracts.standard.late_fee",
        reason="",
        occurrence=2,
        amount=Decimal("22.50"),
        form=form,
        item="Late Fee",
        description="Late fee (no. 2, 2026-10-12) on invoice 1037",
    )


def test_the_fee_line_update_is_sparse_and_keeps_every_line_with_its_id():
    body = qbo.fee_line_update(raw_invoice(), [(fee_action(), {"Id": "9", "Name": "Late Fee"})])
    assert body["sparse"] is True and body["SyncToken"] == "2"
    assert [line.get("Id") for line in body["Line"]] == ["1", None]  # the subtotal line is QuickBooks' to compute
    assert body["Line"][-1]["Amount"] == Decimal("22.50")
    assert body["Line"][-1]["SalesItemLineDetail"]["ItemRef"] == {"value": "9", "name": "Late Fee"}


def test_several_fees_of_one_invoice_go_in_its_one_update_each_line_found_by_its_action():
    item = {"Id": "9", "Name": "Late Fee"}
    second = fee_action()._replace(key="late_fee:c:130:3", occurrence=3, description="Late fee no. 3")
    body = qbo.fee_line_update(raw_invoice(), [(fee_action(), item), (second, item)])
    assert [line.get("Description") for line in body["Line"][1:]] == [fee_action().description, "Late fee no. 3"]
    written = {**body, "Line": [{**line, "Id": str(n)} for n, line in enumerate(body["Line"], 1)]}
    assert qbo.fee_line_id(written, fee_action()) == "2" and qbo.fee_line_id(written, second) == "3"


def test_a_batch_of_invoice_updates_is_read_back_item_by_item() -> None:
    from bridge.errors import TransportError

    request = qbo.batch_updates({"7": {"Id": "7", "SyncToken": "1"}, "8": {"Id": "8", "SyncToken": "4"}})
    assert request["BatchItemRequest"][0] == {
        "bId": "7",
        "operation": "update",
        "Invoice": {"Id": "7", "SyncToken": "1"},
    }
    stale = {"Fault": {"Error": [{"code": "5010", "Message": "Stale Object Error"}], "type": "ValidationFault"}}
    answer = {"BatchItemResponse": [{"bId": "8", **stale}, {"bId": "7", "Invoice": {"Id": "7", "SyncToken": "2"}}]}
    found = qbo.batch_invoices(answer, ["7", "8", "9"])
    assert found["7"] == {"Id": "7", "SyncToken": "2"}
    refused = found["8"]
    assert isinstance(refused, qbo.BatchItemRefused) and refused.codes == {"5010"} and not refused.outcome_unknown
    assert "refused the update of invoice 8 in a batch: 5010 Stale Object Error" in str(refused)
    # An answer that does not speak of an item leaves that write's outcome unknown: reconciled, never repeated blind.
    assert isinstance(found["9"], TransportError) and found["9"].outcome_unknown


def test_a_fee_invoice_references_the_original():
    body = qbo.fee_invoice_create(raw_invoice(), fee_action("invoice"), {"Id": "9"}, date(2026, 10, 20))
    assert body["DocNumber"] == "1037-LF2" and "bridge fee_for=130" in body["PrivateNote"]
    created = {**raw_invoice(), "Id": "500", "DocNumber": "1037-LF2", "PrivateNote": body["PrivateNote"]}
    assert qbo.map_invoice(created, "c", CUSTOMERS).fee_for == "130"


def test_idempotency_keys_are_stable_short_and_distinct():
    a, b = idempotency_key("late_fee:c:130:2"), idempotency_key("late_fee:c:130:3")
    assert a == idempotency_key("late_fee:c:130:2") and a != b and len(a) <= 50


def test_a_batch_of_keyset_queries_is_read_back_by_entity_and_a_refused_query_is_an_error() -> None:
    from bridge.errors import ProviderError

    queries = {e: qbo.keyset_query(e, "2026-10-20T10:00:00+00:00", None, 1) for e in ("Customer", "Invoice")}
    assert qbo.batch_queries(queries)["BatchItemRequest"][1] == {"bId": "Invoice", "Query": queries["Invoice"]}
    assert "STARTPOSITION 1 MAXRESULTS 1000" in queries["Customer"]
    answer = {
        "BatchItemResponse": [
            {"bId": "Invoice", "QueryResponse": {"Invoice": [{"Id": "7"}]}},
            {"bId": "Customer", "QueryResponse": {}},
        ]
    }
    assert qbo.batch_query_rows(answer, queries) == {"Customer": [], "Invoice": [{"Id": "7"}]}
    fault = {"Fault": {"Error": [{"code": "4000", "Message": "Error parsing query"}], "type": "ValidationFault"}}
    refused = {"BatchItemResponse": [{"bId": "Customer", "QueryResponse": {}}, {"bId": "Invoice", **fault}]}
    with pytest.raises(ProviderError, match="refused the Invoice query of a batch: 4000 Error parsing query"):
        qbo.batch_query_rows(refused, queries)
    with pytest.raises(ProviderError, match="no answer to the Invoice query"):
        qbo.batch_query_rows({"BatchItemResponse": answer["BatchItemResponse"][1:]}, queries)
    with pytest.raises(ProviderError, match="not a list of records"):
        qbo.batch_query_rows({"BatchItemResponse": [{"bId": "Customer", "QueryResponse": {"Customer": [1]}}]}, queries)
    # The watermark enters a query only as the provider's own timestamp text.
    watermark = qbo.order({"Id": "1", "MetaData": {"LastUpdatedTime": "2026-10-01T09:00:00-07:00"}})[0]
    assert ">= '2026-10-01T09:00:00-07:00'" in qbo.keyset_query("Payment", "2026-10-20T10:00:00+00:00", watermark, 2)
