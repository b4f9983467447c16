"""Xero Accounting JSON <-> the normalized model, and actions -> Xero payloads (pure).

Xero has real statuses: DRAFT and SUBMITTED (awaiting approval) are drafts,
AUTHORISED is open (partially paid once something is allocated), PAID, VOIDED,
DELETED. `AmountDue` is what is left after payments *and* credit notes. An
invoice with a payment or credit allocated cannot be edited, so the model marks
it not editable and a fee goes on a separate invoice. Dates travel as
`/Date(ms+0000)/`; only sales invoices (ACCREC) are the bridge's business.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from bridge.errors import DataError
from bridge.mapping import common
from bridge.mapping.common import currency_code, customer, email_list, money, objects, refuses_malformed, text
from bridge.model import Allocation, Customer, EstimateRecord, Invoice, InvoiceStatus, LineItem, Payment
from bridge.plan import Action, Warning, WarningCode

PROVIDER = "xero"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_DATE = re.compile(r"/Date\((-?\d{1,15})(?:[+-]\d{4})?\)/")
# The bridge marks a separate fee invoice in its Reference so the next pull knows what it is.
_STATUS = {
    "DRAFT": InvoiceStatus.DRAFT,
    "SUBMITTED": InvoiceStatus.DRAFT,  # awaiting approval: not yet sent to anyone
    "AUTHORISED": InvoiceStatus.OPEN,
    "PAID": InvoiceStatus.PAID,
    "VOIDED": InvoiceStatus.VOID,
    "DELETED": InvoiceStatus.DELETED,
}
# Xero refuses an edit of an invoice with a payment or credit allocated with this message (400).
NOT_EDITABLE = "cannot be edited as it has a payment or credit note allocated"
ID_LIMIT = 64


def moment(value: Any, field: str) -> datetime:
    """The instant of a `/Date(ms+0000)/` value (or an ISO 8601 timestamp, as `UpdatedDateUTC` may come)."""
    if not isinstance(value, str):
        raise DataError(f"{field}: {value!r} is not a Xero date")
    found = _MS_DATE.fullmatch(value.strip())
    if found:
        try:
            return _EPOCH + timedelta(milliseconds=int(found.group(1)))
        except OverflowError:
            raise DataError(f"{field}: {value!r} is out of range") from None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise DataError(f"{field}: {value!r} is not a Xero date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def day(value: Any, field: str, *, required: bool = True) -> date | None:
    """A calendar day from a Xero date (midnight UTC of that day on the wire)."""
    if value in (None, ""):
        if required:
            raise DataError(f"{field} missing")
        return None
    return moment(value, field).astimezone(UTC).date()


def wire_date(on: date) -> str:
    """A day as Xero writes it: `/Date(ms+0000)/` at midnight UTC."""
    delta = datetime(on.year, on.month, on.day, tzinfo=UTC) - _EPOCH
    return f"/Date({(delta.days * 86_400 + delta.seconds) * 1000}+0000)/"


def updated_ms(raw: Mapping[str, Any]) -> int:
    """`UpdatedDateUTC` in milliseconds since the epoch (0 when absent or unreadable): the pull's keyset."""
    try:
        when = moment(raw.get("UpdatedDateUTC"), "UpdatedDateUTC")
    except DataError:
        return 0
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _obj(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


@refuses_malformed("Contact")
def map_contact(raw: Mapping[str, Any]) -> Customer:
    """A Xero Contact as the model's Customer."""
    contact_id = text(raw.get("ContactID"), "Contact.ContactID", limit=ID_LIMIT)
    return customer(contact_id, text(raw.get("Name"), "Contact.Name", required=False), raw.get("EmailAddress"))


def included_persons(contact: Mapping[str, Any]) -> tuple[str, ...]:
    """The e-mail addresses of a contact's `ContactPersons` marked `IncludeInEmails`: those Xero's invoice e-mail
    copies, and the client's other billing contacts."""
    persons = contact.get("ContactPersons")
    if not isinstance(persons, list):
        return ()
    included = (p for p in persons if isinstance(p, Mapping) and p.get("IncludeInEmails") is True)
    return email_list(p.get("EmailAddress") for p in included)


def _lines(raw: Mapping[str, Any], currency: str) -> tuple[LineItem, ...]:
    lines: list[LineItem] = []
    for index, line in enumerate(objects(raw, "LineItems", "Invoice.LineItems")):
        lines.append(
            LineItem(
                id=text(line.get("LineItemID"), f"Invoice.LineItems[{index}].LineItemID", required=False) or None,
                item=text(line.get("ItemCode"), f"Invoice.LineItems[{index}].ItemCode", required=False) or None,
                description=text(line.get("Description"), f"Invoice.LineItems[{index}].Description", required=False),
                amount=money(line.get("LineAmount", 0), currency, f"Invoice.LineItems[{index}].LineAmount"),
            )
        )
    return tuple(lines)


def _credits(raw: Mapping[str, Any], currency: str, invoice_id: str) -> list[Allocation]:
    """Credit notes allocated to the invoice, with their dates (they lower the late-fee base like payments)."""
    out: list[Allocation] = []
    for index, note in enumerate(objects(raw, "CreditNotes", "Invoice.CreditNotes")):
        field = f"Invoice.CreditNotes[{index}]"
        amount = money(note.get("AppliedAmount", note.get("Total")), currency, f"{field}.AppliedAmount")
        when = day(note.get("Date"), f"{field}.Date")
        assert when is not None
        credit_id = text(note.get("CreditNoteID"), f"{field}.CreditNoteID", required=False, limit=ID_LIMIT) or None
        out.append(Allocation(date=when, amount=amount, kind="credit", payment_id=credit_id, invoice_id=invoice_id))
    return out


@refuses_malformed("Invoice")
def map_invoice(raw: Mapping[str, Any], connection: str, contacts: Mapping[str, Mapping[str, Any]]) -> Invoice:
    """A Xero Invoice as the model's Invoice (payments are attached later from Payment records).

    Raises `DataError` naming the field when the record cannot be mapped; the caller quarantines it.
    """
    if not isinstance(raw, Mapping):
        raise DataError("Invoice is not an object")
    invoice_id = text(raw.get("InvoiceID"), "Invoice.InvoiceID", limit=ID_LIMIT)
    status_text = raw.get("Status")
    if status_text not in _STATUS:
        raise DataError(f"Invoice.Status: {status_text!r} is not a Xero invoice status")
    currency = currency_code(raw.get("CurrencyCode"), "Invoice.CurrencyCode")
    total = money(raw.get("Total"), currency, "Invoice.Total")
    due = money(raw.get("AmountDue"), currency, "Invoice.AmountDue")
    paid = money(raw.get("AmountPaid", 0), currency, "Invoice.AmountPaid")
    credited = money(raw.get("AmountCredited", 0), currency, "Invoice.AmountCredited")
    if min(total, due, paid, credited) < 0:
        raise DataError(f"Invoice amounts negative (Total {total}, AmountDue {due})")
    status = _STATUS[str(status_text)]
    if status is InvoiceStatus.OPEN and (paid > 0 or credited > 0):
        status = InvoiceStatus.PARTIALLY_PAID if due > 0 else InvoiceStatus.PAID
    contact_ref = _obj(raw, "Contact")
    contact_id = text(contact_ref.get("ContactID"), "Invoice.Contact.ContactID", limit=ID_LIMIT)
    contact = {**contact_ref, **contacts.get(contact_id, {})}
    name = text(contact.get("Name"), "Invoice.Contact.Name", required=False)
    reference = text(raw.get("Reference"), "Invoice.Reference", required=False)
    return Invoice(
        id=invoice_id,
        number=text(raw.get("InvoiceNumber"), "Invoice.InvoiceNumber", required=False, limit=ID_LIMIT) or invoice_id,
        connection=connection,
        provider=PROVIDER,
        customer=customer(contact_id, name, contact.get("EmailAddress"), included_persons(contact)),
        currency=currency,
        issue_date=day(raw.get("Date"), "Invoice.Date", required=False),
        due_date=day(raw.get("DueDate"), "Invoice.DueDate", required=False),
        total=total,
        amount_due=due,
        status=status,
        payments=tuple(_credits(raw, currency, invoice_id)),
        lines=_lines(raw, currency),
        is_sale=raw.get("Type") == "ACCREC",
        editable=paid == 0 and credited == 0 and status_text in ("DRAFT", "SUBMITTED", "AUTHORISED"),
        fee_for=common.fee_for(reference),
        estimate_keys=(_quote_key(reference),) if reference.strip() else (),
    )


# A quote the client agreed to: ACCEPTED, or INVOICED (an invoice was made from it). Xero's API links no invoice
# to its quote: the invoice's Reference names the quote by its number or its own reference.
_AGREED_QUOTE = frozenset({"ACCEPTED", "INVOICED"})


def _quote_key(text_: str) -> str:
    return "ref:" + text_.strip().casefold()


@refuses_malformed("Quote")
def map_estimate(raw: Mapping[str, Any], connection: str) -> EstimateRecord:
    """A Xero Quote (GET /Quotes) for the estimate check: its `Total`, agreed when ACCEPTED or INVOICED, found by
    an invoice whose `Reference` is the quote's `QuoteNumber` or `Reference` (case and spaces aside)."""
    if not isinstance(raw, Mapping):
        raise DataError("Quote is not an object")
    quote_id = text(raw.get("QuoteID"), "Quote.QuoteID", limit=ID_LIMIT)
    currency = currency_code(raw.get("CurrencyCode"), "Quote.CurrencyCode")
    number = text(raw.get("QuoteNumber"), "Quote.QuoteNumber", required=False, limit=ID_LIMIT)
    reference = text(raw.get("Reference"), "Quote.Reference", required=False)
    return EstimateRecord(
        id=quote_id,
        connection=connection,
        number=number or quote_id,
        currency=currency,
        total=money(raw.get("Total"), currency, "Quote.Total"),
        accepted=raw.get("Status") in _AGREED_QUOTE,
        keys=tuple(dict.fromkeys(_quote_key(t) for t in (number, reference) if t.strip())),
    )


@refuses_malformed("Payment")
def map_payment(raw: Mapping[str, Any], connection: str) -> Payment:
    """A Xero Payment: one allocation to the invoice it names (`Invoice.InvoiceID`)."""
    if not isinstance(raw, Mapping):
        raise DataError("Payment is not an object")
    payment_id = text(raw.get("PaymentID"), "Payment.PaymentID", limit=ID_LIMIT)
    invoice = _obj(raw, "Invoice")
    currency = currency_code(invoice.get("CurrencyCode"), "Payment.Invoice.CurrencyCode")
    when = day(raw.get("Date"), "Payment.Date")
    assert when is not None
    amount = money(raw.get("Amount"), currency, "Payment.Amount")
    invoice_id = text(invoice.get("InvoiceID"), "Payment.Invoice.InvoiceID", limit=ID_LIMIT)
    contact = _obj(invoice, "Contact").get("ContactID")
    return Payment(
        id=payment_id,
        connection=connection,
        customer_id=str(contact) if contact else None,
        date=when,
        amount=amount,
        currency=currency,
        allocations=(Allocation(date=when, amount=amount, payment_id=payment_id, invoice_id=invoice_id),),
    )


def customer_id(raw: Mapping[str, Any]) -> str | None:
    """The ContactID an invoice is addressed to, if it names one."""
    value = _obj(raw, "Contact").get("ContactID")
    return str(value) if value else None


_ID_FIELDS = {"customers": "ContactID", "invoices": "InvoiceID", "payments": "PaymentID", "estimates": "QuoteID"}


def record_id(raw: Mapping[str, Any], stream: str) -> str:
    """The id of a contact, invoice or payment (`stream`: "customers", "invoices", "payments")."""
    return str(raw.get(_ID_FIELDS[stream], "?"))


def due_date(raw: Mapping[str, Any]) -> str | None:
    """An invoice's due date as an ISO day."""
    due = day(raw.get("DueDate"), "DueDate", required=False)
    return due.isoformat() if due else None


def is_deleted(raw: Mapping[str, Any]) -> bool:
    """A payment or invoice Xero reports as deleted (they stay listed with that status)."""
    return raw.get("Status") == "DELETED"


# -- actions -> payloads -------------------------------------------------------------------------


def _fee_line(action: Action) -> dict[str, Any]:
    assert action.amount is not None
    return {
        "Description": action.description,
        "Quantity": Decimal(1),
        "UnitAmount": action.amount,
        "LineAmount": action.amount,
        "AccountCode": "200",
        "TaxType": "NONE",
    }


def _kept_line(line: Mapping[str, Any]) -> dict[str, Any]:
    """An existing line sent back as it is: its `LineItemID` keeps it (a line left out would be deleted)."""
    return {k: v for k, v in line.items() if v is not None}


def fee_line_update(raw_invoice: Mapping[str, Any], actions: Sequence[Action]) -> dict[str, Any]:
    """The invoice's update adding the fee lines of `actions` (`POST /Invoices/{id}`, or one element of `POST
    /Invoices`); every existing line goes back with its LineItemID."""
    return {
        "InvoiceID": raw_invoice["InvoiceID"],
        "LineItems": [
            *(_kept_line(line) for line in raw_invoice.get("LineItems") or []),
            *(_fee_line(action) for action in actions),
        ],
    }


def written_invoices(answer: Mapping[str, Any], invoice_ids: Sequence[str]) -> dict[str, Mapping[str, Any] | list[str]]:
    """What a `POST /Invoices?summarizeErrors=false` answer says of each invoice, by id: the invoice as written,
    or its validation messages (it was not written). An invoice the answer does not speak of is left out (its
    outcome unknown)."""
    out: dict[str, Mapping[str, Any] | list[str]] = {}
    elements = [e for e in answer.get("Invoices") or [] if isinstance(e, Mapping)]
    for invoice_id, element in zip(invoice_ids, elements, strict=False):  # Xero answers in the order it was asked
        if str(element.get("InvoiceID") or invoice_id) != invoice_id:
            continue
        errors = element.get("ValidationErrors") or []
        if errors or element.get("StatusAttributeString") == "ERROR":
            out[invoice_id] = [
                str(e.get("Message")) for e in errors if isinstance(e, Mapping) and e.get("Message")
            ] or ["refused without a message"]
        else:
            out[invoice_id] = element
    return out


def fee_line_removal(raw_invoice: Mapping[str, Any], action: Action) -> dict[str, Any]:
    """`POST /Invoices/{id}` taking the fee line off (`bridge forgive`): every other line goes back with its
    LineItemID; the one left out is deleted."""
    lines = raw_invoice.get("LineItems") or []
    kept = [
        _kept_line(line)
        for line in lines
        if isinstance(line, Mapping) and line.get("Description") != action.description
    ]
    return {"InvoiceID": raw_invoice["InvoiceID"], "LineItems": kept}


def void_update(raw_invoice: Mapping[str, Any]) -> dict[str, Any]:
    """`POST /Invoices/{id}` voiding an approved invoice."""
    return {"InvoiceID": raw_invoice["InvoiceID"], "Status": "VOIDED"}


def fee_invoice_number(action: Action) -> str:
    """InvoiceNumber of a separate fee invoice: the original's number and the occurrence."""
    return f"{action.invoice.number}-LF{action.occurrence}"[-255:]


def fee_invoice_create(raw_invoice: Mapping[str, Any], action: Action, on: date) -> dict[str, Any]:
    """A separate ACCREC invoice carrying only the fee, referencing the original in its number and Reference."""
    contact = _obj(raw_invoice, "Contact")
    return {
        "Type": "ACCREC",
        "Status": "AUTHORISED",
        "InvoiceNumber": fee_invoice_number(action),
        "Reference": f"Late fee on {action.invoice.number} {common.fee_mark(action.invoice.id)}"[:255],
        "Contact": {"ContactID": contact.get("ContactID")},
        "Date": wire_date(on),
        "DueDate": wire_date(on),
        "CurrencyCode": raw_invoice.get("CurrencyCode"),
        "LineAmountTypes": "NoTax",
        "LineItems": [_fee_line(action)],
    }


def version(raw_invoice: Mapping[str, Any]) -> str:
    """The invoice's version as the provider answered a write (`UpdatedDateUTC`): it ends the write's response id."""
    return str(raw_invoice.get("UpdatedDateUTC", ""))


def due_date_update(raw_invoice: Mapping[str, Any], new_due: date) -> dict[str, Any]:
    """`POST /Invoices/{id}` moving the due date (allowed even with a payment allocated)."""
    return {"InvoiceID": raw_invoice["InvoiceID"], "DueDate": wire_date(new_due)}


def fee_line_id(raw_invoice: Mapping[str, Any], action: Action) -> str | None:
    """LineItemID of the line this fee action wrote, when it is on the invoice (reconciliation evidence)."""
    for line in raw_invoice.get("LineItems") or []:
        if isinstance(line, Mapping) and line.get("Description") == action.description:
            return str(line.get("LineItemID") or "")
    return None


def history_note(action: Action, form: str | None) -> str:
    """The note left in the invoice's history for an action: what, why, and the clause (at most 2,500 chars)."""
    what = {
        "late_fee": f"late fee {action.amount} {action.invoice.currency}"
        + (f" on a separate invoice {fee_invoice_number(action)}" if form == "invoice" else " added as a line"),
        "reminder": f"reminder {action.step} ({action.message}) e-mailed",
        "update_due_date": f"due date moved to {action.new_due_date}",
        "forgive_fee": f"late fee {abs(action.amount or 0)} {action.invoice.currency} forgiven"
        + (f", fee invoice {fee_invoice_number(action)} voided" if form == "invoice" else ", its line removed"),
    }.get(action.kind.value, action.kind.value)
    return f"bridge: {what}. {action.reason} [{action.clause}; {action.key}]"[:2500]


def error_messages(content: bytes) -> list[str]:
    """The validation messages of a Xero 4xx body (`Elements[].ValidationErrors[].Message`, else `Message`); none
    when it is not JSON."""
    try:
        body = json.loads(content, parse_float=Decimal)
    except ValueError:
        return []
    if not isinstance(body, Mapping):
        return []
    found: list[str] = []
    for element in body.get("Elements") or []:
        if isinstance(element, Mapping):
            for error in element.get("ValidationErrors") or []:
                if isinstance(error, Mapping) and error.get("Message"):
                    found.append(str(error["Message"]))
    if not found and body.get("Message"):
        found.append(str(body["Message"]))
    return found


def reminders_enabled(answer: Mapping[str, Any]) -> bool:
    """Whether the organisation's own invoice reminders are on (an `InvoiceReminders` answer)."""
    settings = answer.get("InvoiceReminders") or [{}]
    first = settings[0] if isinstance(settings, list) and settings else {}
    return bool(first.get("Enabled")) if isinstance(first, Mapping) else False


def reminders_warning(connection: str) -> Warning:
    return Warning(
        connection,
        None,
        WarningCode.PROVIDER_REMINDERS,
        "the organisation's own Xero invoice reminders are on, so clients may be reminded twice: "
        "turn them off in Xero (Invoice settings > Invoice reminders)",
    )


def pay_link(answer: Any) -> str | None:
    """`OnlineInvoices[0].OnlineInvoiceUrl` of an online-invoice answer."""
    online = answer.get("OnlineInvoices") if isinstance(answer, Mapping) else None
    first = online[0] if isinstance(online, list) and online and isinstance(online[0], Mapping) else {}
    url = first.get("OnlineInvoiceUrl")
    return url if isinstance(url, str) and url else None
