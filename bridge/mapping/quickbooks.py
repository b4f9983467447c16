"""QuickBooks Online JSON <-> the normalized model, and actions -> QuickBooks payloads (pure).

QuickBooks has no invoice status: paid when `Balance == 0`, partially paid when
`0 < Balance < TotalAmt`; a voided invoice shows zero amounts and the note
"Voided"; deletions only show up as CDC tombstones. A customer with `Job: true`
is a project (sub-customer) of its `ParentRef`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from bridge.errors import DataError, ProviderError, TransportError
from bridge.mapping import common
from bridge.mapping.common import currency_code, customer, email_list, iso_date, money, objects, refuses_malformed, text
from bridge.model import Allocation, Customer, EstimateRecord, Invoice, InvoiceStatus, LineItem, Payment
from bridge.plan import Action

PROVIDER = "quickbooks"
PAGE = 1000  # the most rows a query (or one entity of a change-data-capture answer) brings
# The bridge marks a separate fee invoice in its private note so the next pull knows what it is.
_LINE_KINDS = {"SalesItemLineDetail", "GroupLineDetail", "DescriptionOnly", "DiscountLineDetail"}
# An Estimate's TxnStatus once the client agreed: "Accepted", or "Closed" (converted to an invoice, or closed by
# hand after it); "Pending" and "Rejected" ones are not what the client agreed to pay.
_AGREED = frozenset({"Accepted", "Closed"})


def _ref(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    ref = obj.get(key)
    return ref if isinstance(ref, Mapping) else {}


# -- the query language and the wire -------------------------------------------------------------


def decimal_json(obj: Any) -> str:
    """A request body as the SDK's own encoder writes it: amounts as exact strings, never through float."""
    return json.dumps(obj, default=lambda o: str(o) if isinstance(o, Decimal) else o, sort_keys=True)


def query_string(value: str, what: str) -> str:
    """`value` as a string literal of QuickBooks' query language.

    Intuit documents one escape: a backslash before an apostrophe (`'Adam\\'s'`). How the service reads a
    backslash before anything else is not documented, so a value holding a backslash (which could
    otherwise turn the closing quote into an escaped one) or a control character is refused with a
    DataError instead of guessed at.
    """
    if "\\" in value or any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        raise DataError(
            f"{what} {value!r} holds a backslash or a control character, which a QuickBooks query cannot carry"
        )
    return "'" + value.replace("'", "\\'") + "'"


def stamp_literal(stamp: str) -> str:
    """A last-updated time as a query literal; anything that is not an ISO 8601 timestamp is refused."""
    try:
        datetime.fromisoformat(stamp)
    except ValueError:
        raise ProviderError(f"QuickBooks gave a last-updated time that is not a timestamp: {stamp[:80]!r}") from None
    return query_string(stamp, "a last-updated time")


def as_utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).astimezone(UTC)


def order(raw: Mapping[str, Any]) -> tuple[tuple[datetime, str], str]:
    """A record's place in a keyset read: its last-updated instant (with the provider's text of it, which the
    next query starts from) and its id."""
    stamp = str(_ref(raw, "MetaData").get("LastUpdatedTime", ""))
    try:
        instant = as_utc(stamp)
    except ValueError:
        instant = datetime.min.replace(tzinfo=UTC)
    return (instant, stamp), str(raw.get("Id"))


def cdc_records(answer: Mapping[str, Any], entities: Sequence[str]) -> dict[str, list[Mapping[str, Any]]] | None:
    """The records of a change-data-capture answer by entity, deletions included (`is_deleted`); None when an
    entity came back full (truncated: the changes must then be read by query)."""
    found: dict[str, list[Mapping[str, Any]]] = {e: [] for e in entities}
    for block in answer.get("CDCResponse", []):
        for response in block.get("QueryResponse", []):
            for entity in entities:
                rows = response.get(entity) or []
                if len(rows) >= PAGE:
                    return None
                found[entity] += rows
    return found


def record_id(raw: Mapping[str, Any], stream: str = "") -> str:
    """The `Id` of a customer, invoice or payment."""
    return str(raw.get("Id", "?"))


def is_deleted(raw: Mapping[str, Any]) -> bool:
    """A change-data-capture tombstone (QuickBooks lists a deletion nowhere else)."""
    return raw.get("status") == "Deleted"


def customer_id(raw: Mapping[str, Any]) -> str | None:
    value = _ref(raw, "CustomerRef").get("value")
    return str(value) if value else None


def due_date(raw: Mapping[str, Any]) -> str | None:
    due = raw.get("DueDate")
    return due if isinstance(due, str) else None


@refuses_malformed("Customer")
def map_customer(raw: Mapping[str, Any]) -> Customer:
    """A QuickBooks Customer as the model's Customer."""
    name = text(raw.get("DisplayName") or raw.get("FullyQualifiedName"), "Customer.DisplayName", required=False)
    return customer(text(raw.get("Id"), "Customer.Id"), name, _ref(raw, "PrimaryEmailAddr").get("Address"))


def _lines(raw: Mapping[str, Any], currency: str) -> tuple[LineItem, ...]:
    lines: list[LineItem] = []
    for index, line in enumerate(objects(raw, "Line", "Invoice.Line")):
        kind = line.get("DetailType")
        if kind not in _LINE_KINDS:
            continue  # SubTotalLineDetail and tax lines are not charges of their own
        amount = money(line.get("Amount", 0), currency, f"Invoice.Line[{index}].Amount")
        if kind == "DiscountLineDetail":
            amount = -abs(amount)
        item = _ref(_ref(line, "SalesItemLineDetail"), "ItemRef").get("name")
        lines.append(
            LineItem(
                id=str(line["Id"]) if line.get("Id") is not None else None,
                item=item if isinstance(item, str) else None,
                description=text(line.get("Description"), f"Invoice.Line[{index}].Description", required=False),
                amount=amount,
            )
        )
    return tuple(lines)


def _status(total: Decimal, balance: Decimal, note: str) -> InvoiceStatus:
    if total == 0 and balance == 0 and note.strip().lower().startswith("voided"):
        return InvoiceStatus.VOID
    if balance <= 0:
        return InvoiceStatus.PAID
    if balance < total:
        return InvoiceStatus.PARTIALLY_PAID
    return InvoiceStatus.OPEN


@refuses_malformed("Invoice")
def map_invoice(
    raw: Mapping[str, Any],
    connection: str,
    customers: Mapping[str, Mapping[str, Any]],
    home_currency: str = "USD",
) -> Invoice:
    """A QuickBooks Invoice as the model's Invoice (payments are attached later from Payment records).

    Raises `DataError` naming the field when the record cannot be mapped; the caller quarantines it.
    """
    if not isinstance(raw, Mapping):
        raise DataError("Invoice is not an object")
    invoice_id = text(raw.get("Id"), "Invoice.Id", limit=64)
    currency = currency_code(_ref(raw, "CurrencyRef").get("value"), "Invoice.CurrencyRef", home_currency)
    total = money(raw.get("TotalAmt"), currency, "Invoice.TotalAmt")
    balance = money(raw.get("Balance"), currency, "Invoice.Balance")
    if total < 0 or balance < 0:
        raise DataError(f"Invoice.TotalAmt/Balance negative ({total}, {balance})")
    note = text(raw.get("PrivateNote"), "Invoice.PrivateNote", required=False)
    customer_ref = _ref(raw, "CustomerRef")
    customer_id = text(customer_ref.get("value"), "Invoice.CustomerRef.value", limit=64)
    customer_raw = customers.get(customer_id, {})
    project: str | None = None
    if customer_raw.get("Job") and _ref(customer_raw, "ParentRef").get("value"):
        # A QuickBooks project is a sub-customer: the client is its parent.
        project = customer_id
        customer_id = str(_ref(customer_raw, "ParentRef")["value"])
        customer_raw = customers.get(customer_id, {})
    bill_email = _ref(raw, "BillEmail").get("Address")
    customer_email = _ref(customer_raw, "PrimaryEmailAddr").get("Address")
    name = customer_raw.get("DisplayName") if customer_raw else customer_ref.get("name")
    return Invoice(
        id=invoice_id,
        number=text(raw.get("DocNumber"), "Invoice.DocNumber", required=False, limit=64) or invoice_id,
        connection=connection,
        provider=PROVIDER,
        customer=Customer(
            id=customer_id,
            name=name if isinstance(name, str) else "",
            email=(bill_email or customer_email) if isinstance(bill_email or customer_email, str) else None,
            # The invoice's copies (the Customer object has no copy addresses: the invoice carries them).
            cc=email_list([_ref(raw, "BillEmailCc").get("Address")]),
            bcc=email_list([_ref(raw, "BillEmailBcc").get("Address")]),
        ),
        currency=currency,
        issue_date=iso_date(raw.get("TxnDate"), "Invoice.TxnDate", required=False),
        due_date=iso_date(raw.get("DueDate"), "Invoice.DueDate", required=False),
        total=total,
        amount_due=balance,
        status=_status(total, balance, note),
        lines=_lines(raw, currency),
        project=project,
        fee_for=common.fee_for(note),
        estimate_keys=estimate_links(raw),
    )


def estimate_links(raw_invoice: Mapping[str, Any]) -> tuple[str, ...]:
    """The estimates an invoice was made from: its `LinkedTxn` entries of `TxnType` "Estimate" (as
    `EstimateRecord.keys` name them)."""
    return tuple(
        f"Estimate:{linked.get('TxnId')}"
        for linked in raw_invoice.get("LinkedTxn") or []
        if isinstance(linked, Mapping) and linked.get("TxnType") == "Estimate" and linked.get("TxnId")
    )


@refuses_malformed("Estimate")
def map_estimate(raw: Mapping[str, Any], connection: str, home_currency: str = "USD") -> EstimateRecord:
    """A QuickBooks Estimate for the estimate check: its `TotalAmt`, agreed when `TxnStatus` is Accepted or
    Closed; invoices name it by its `Id` in their `LinkedTxn`."""
    if not isinstance(raw, Mapping):
        raise DataError("Estimate is not an object")
    estimate_id = text(raw.get("Id"), "Estimate.Id", limit=64)
    currency = currency_code(_ref(raw, "CurrencyRef").get("value"), "Estimate.CurrencyRef", home_currency)
    return EstimateRecord(
        id=estimate_id,
        connection=connection,
        number=text(raw.get("DocNumber"), "Estimate.DocNumber", required=False, limit=64) or estimate_id,
        currency=currency,
        total=money(raw.get("TotalAmt"), currency, "Estimate.TotalAmt"),
        accepted=raw.get("TxnStatus") in _AGREED,
        keys=(f"Estimate:{estimate_id}",),
    )


@refuses_malformed("Payment")
def map_payment(raw: Mapping[str, Any], connection: str, home_currency: str = "USD") -> Payment:
    """A QuickBooks Payment; each line linked to an Invoice becomes an allocation to it."""
    if not isinstance(raw, Mapping):
        raise DataError("Payment is not an object")
    payment_id = text(raw.get("Id"), "Payment.Id", limit=64)
    currency = currency_code(_ref(raw, "CurrencyRef").get("value"), "Payment.CurrencyRef", home_currency)
    day = iso_date(raw.get("TxnDate"), "Payment.TxnDate")
    assert day is not None
    allocations: list[Allocation] = []
    for index, line in enumerate(objects(raw, "Line", "Payment.Line")):
        amount = money(line.get("Amount"), currency, f"Payment.Line[{index}].Amount")
        for linked in line.get("LinkedTxn") or []:
            if isinstance(linked, Mapping) and linked.get("TxnType") == "Invoice":
                allocations.append(
                    Allocation(date=day, amount=amount, payment_id=payment_id, invoice_id=str(linked.get("TxnId")))
                )
    return Payment(
        id=payment_id,
        connection=connection,
        customer_id=str(_ref(raw, "CustomerRef").get("value") or "") or None,
        date=day,
        amount=money(raw.get("TotalAmt"), currency, "Payment.TotalAmt"),
        currency=currency,
        allocations=tuple(allocations),
    )


# -- actions -> payloads -------------------------------------------------------------------------


def _fee_line(action: Action, item: Mapping[str, Any]) -> dict[str, Any]:
    assert action.amount is not None
    return {
        "DetailType": "SalesItemLineDetail",
        "Amount": action.amount,
        "Description": action.description,
        "SalesItemLineDetail": {
            "ItemRef": {"value": str(item["Id"]), "name": str(item.get("Name", action.item))},
            "Qty": 1,
            "UnitPrice": action.amount,
        },
    }


def fee_line_update(raw_invoice: Mapping[str, Any], fees: Sequence[tuple[Action, Mapping[str, Any]]]) -> dict[str, Any]:
    """Sparse update adding the fee lines `fees` (each action with its Item), in one write of the invoice. `Line`
    replaces the whole collection, so every existing line goes too."""
    kept = [line for line in raw_invoice.get("Line") or [] if line.get("DetailType") != "SubTotalLineDetail"]
    return {
        "Id": raw_invoice["Id"],
        "SyncToken": raw_invoice["SyncToken"],
        "sparse": True,
        "Line": [*kept, *(_fee_line(action, item) for action, item in fees)],
    }


def fee_line_removal(raw_invoice: Mapping[str, Any], action: Action) -> dict[str, Any]:
    """Sparse update taking the fee line off (`bridge forgive`): `Line` replaces the whole collection, so every
    other line goes back with its Id."""
    kept = [
        line
        for line in raw_invoice.get("Line") or []
        if line.get("DetailType") != "SubTotalLineDetail"
        and not (line.get("Description") == action.description and line.get("DetailType") == "SalesItemLineDetail")
    ]
    return {"Id": raw_invoice["Id"], "SyncToken": raw_invoice["SyncToken"], "sparse": True, "Line": kept}


def void_body(raw_invoice: Mapping[str, Any]) -> dict[str, Any]:
    """`POST /invoice?operation=void`: the invoice's Id and current SyncToken."""
    return {"Id": raw_invoice["Id"], "SyncToken": raw_invoice["SyncToken"]}


def fee_invoice_number(action: Action) -> str:
    """DocNumber of a separate fee invoice: the original's number and the occurrence (QuickBooks allows 21 chars)."""
    return f"{action.invoice.number}-LF{action.occurrence}"[-21:]


def fee_invoice_create(
    raw_invoice: Mapping[str, Any], action: Action, item: Mapping[str, Any], on: date
) -> dict[str, Any]:
    """A separate invoice carrying only the fee, referencing the original in its note and number."""
    body: dict[str, Any] = {
        "DocNumber": fee_invoice_number(action),
        "CustomerRef": dict(_ref(raw_invoice, "CustomerRef")),
        "TxnDate": on.isoformat(),
        "DueDate": on.isoformat(),
        "PrivateNote": f"{action.description} {common.fee_mark(action.invoice.id)}",
        "Line": [_fee_line(action, item)],
    }
    for key in ("CurrencyRef", "BillEmail"):
        if raw_invoice.get(key):
            body[key] = dict(raw_invoice[key])
    return body


def version(raw_invoice: Mapping[str, Any]) -> str:
    """The invoice's version as the provider answered a write (`SyncToken`): it ends the write's response id."""
    return str(raw_invoice.get("SyncToken"))


def due_date_update(raw_invoice: Mapping[str, Any], new_due: date) -> dict[str, Any]:
    """Sparse update of the due date."""
    return {
        "Id": raw_invoice["Id"],
        "SyncToken": raw_invoice["SyncToken"],
        "sparse": True,
        "DueDate": new_due.isoformat(),
    }


def fee_line_id(raw_invoice: Mapping[str, Any], action: Action) -> str | None:
    """Id of the line this fee action wrote, when it is on the invoice (reconciliation evidence)."""
    for line in raw_invoice.get("Line") or []:
        if line.get("Description") == action.description and line.get("DetailType") == "SalesItemLineDetail":
            return str(line.get("Id") or "")
    return None


def delivery_time(raw_invoice: Mapping[str, Any]) -> str | None:
    """When QuickBooks last e-mailed the invoice (`DeliveryInfo.DeliveryTime`), if ever."""
    if raw_invoice.get("EmailStatus") != "EmailSent":
        return None
    value = _ref(raw_invoice, "DeliveryInfo").get("DeliveryTime")
    return value if isinstance(value, str) else None


def pay_link(answer: Any) -> str | None:
    """`Invoice.InvoiceLink` of an invoice read with `include=invoiceLink` (present when online payment is on)."""
    link = _ref(answer, "Invoice").get("InvoiceLink") if isinstance(answer, Mapping) else None
    return link if isinstance(link, str) and link else None


def keyset_query(entity: str, cap: str, watermark: tuple[datetime, str] | None, page: int) -> str:
    """The query of one keyset page: `entity` records last updated up to `cap` and (with a watermark) from the
    watermark on, oldest first, `page` within them."""
    where = [f"Metadata.LastUpdatedTime <= {stamp_literal(cap)}"]
    if watermark:  # the provider's own text: checked to be a timestamp before it enters a query
        where.append(f"Metadata.LastUpdatedTime >= {stamp_literal(watermark[1])}")
    return (
        f"SELECT * FROM {entity} WHERE {' AND '.join(where)} "
        f"ORDERBY Metadata.LastUpdatedTime STARTPOSITION {(page - 1) * PAGE + 1} MAXRESULTS {PAGE}"
    )


def batch_queries(queries: Mapping[str, str]) -> dict[str, Any]:
    """A /batch request asking `queries` (by their bId) at once."""
    return {"BatchItemRequest": [{"bId": bid, "Query": query} for bid, query in queries.items()]}


def batch_query_rows(answer: Any, queries: Mapping[str, str]) -> dict[str, list[Mapping[str, Any]]]:
    """The records each query of a /batch answer brought, by its bId (the entity it reads). A query refused on
    its own (a Fault in its item), missing, or answered with anything but a list of records is a ProviderError."""
    items = answer.get("BatchItemResponse") if isinstance(answer, Mapping) else None
    if not isinstance(items, list):
        raise ProviderError("QuickBooks answered a batch without a BatchItemResponse list")
    found = {str(item.get("bId")): item for item in items if isinstance(item, Mapping)}
    out: dict[str, list[Mapping[str, Any]]] = {}
    for entity in queries:
        item = found.get(entity)
        if item is None:
            raise ProviderError(f"QuickBooks' batch answer holds no answer to the {entity} query")
        if "Fault" in item:
            raise ProviderError(_fault_text(item, f"the {entity} query of a batch"))
        rows = _ref(item, "QueryResponse").get(entity, [])
        if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
            raise ProviderError(f"QuickBooks answered a {entity} query with something not a list of records")
        out[entity] = rows
    return out


def batch_updates(bodies: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A /batch request updating invoices: each sparse update `bodies` holds, under its bId."""
    return {"BatchItemRequest": [{"bId": bid, "operation": "update", "Invoice": body} for bid, body in bodies.items()]}


def batch_invoices(answer: Any, bids: Sequence[str]) -> dict[str, Mapping[str, Any] | Exception]:
    """What a /batch answer says of each invoice update, by its bId: the invoice as written, or why it was refused
    (the item's Fault, a ProviderError: not done). An answer without the item, or with anything but an invoice
    in it, leaves that write's outcome unknown (a `TransportError`: reconciled, never repeated blind)."""
    items = answer.get("BatchItemResponse") if isinstance(answer, Mapping) else None
    found = {str(item.get("bId")): item for item in items or [] if isinstance(item, Mapping)}
    out: dict[str, Mapping[str, Any] | Exception] = {}
    for bid in bids:
        item = found.get(bid)
        invoice = item.get("Invoice") if item is not None else None
        if item is not None and "Fault" in item:
            out[bid] = BatchItemRefused(
                _fault_text(item, f"the update of invoice {bid} in a batch"), _fault_codes(item)
            )
        elif isinstance(invoice, Mapping):
            out[bid] = invoice
        else:
            out[bid] = TransportError(f"QuickBooks' batch answer holds no invoice for item {bid}: outcome unknown")
    return out


class BatchItemRefused(ProviderError):
    """One item of a /batch call refused on its own (its Fault): nothing of it was done; `codes` are the Fault's."""

    def __init__(self, message: str, codes: frozenset[str]) -> None:
        super().__init__(message)
        self.codes = codes


def _fault_errors(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    errors = _ref(item, "Fault").get("Error")
    return [e for e in (errors if isinstance(errors, list) else []) if isinstance(e, Mapping)]


def _fault_codes(item: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(str(e.get("code")) for e in _fault_errors(item))


def _fault_text(item: Mapping[str, Any], what: str) -> str:
    """What a batch item's Fault says, as "QuickBooks refused `what`: code message detail; ..."."""
    said = "; ".join(
        " ".join(str(e.get(k) or "") for k in ("code", "Message", "Detail")).strip() for e in _fault_errors(item)
    )
    return f"QuickBooks refused {what}: {said or 'no detail'}"[:500]
