"""FreshBooks accounting JSON <-> the normalized model, and actions -> FreshBooks payloads (pure).

FreshBooks writes money as `{"amount": "12.00", "code": "USD"}` (strings), days as `YYYY-MM-DD`, and
`updated` as US/Eastern wall time without an offset (converted to UTC here). There is no void state:
`status` (0 disputed, 1 draft, 2 sent, 3 viewed, 4 paid, 5 auto-paid, 6 retry, 7 failed, 8 partial) and
`vis_state` (0 active, 1 deleted, 2 archived) say where an invoice stands, and `outstanding` what is left.
A disputed invoice is on hold; so is an archived one (hidden by the firm, still counted in its books).

FreshBooks may add its own late fee to an invoice (client flag `allow_late_fees`): a line named "Late Fee"
that does not carry the bridge's own occurrence label is marked `provider_late_fee`, so the policy counts it
as a foreign fee and never charges on top of it silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bridge.errors import DataError
from bridge.mapping import common
from bridge.mapping.common import currency_code, customer, email_list, iso_date, money, objects, refuses_malformed, text
from bridge.model import Allocation, Customer, EstimateRecord, Invoice, InvoiceStatus, LineItem, Payment
from bridge.plan import Action, Warning, WarningCode

PROVIDER = "freshbooks"
EASTERN = ZoneInfo("America/New_York")
ID_LIMIT = 64
DELETED, ARCHIVED = 1, 2
_PAID = (4, 5)
_DRAFT = 1
_DISPUTED = 0
# The bridge marks a separate fee invoice in its notes so the next pull knows what it is.
# FreshBooks names the line of its own automatic late fee like this (docs/providers.md: native late fees).
FRESHBOOKS_FEE_NAME = "late fee"
# The occurrence label of the bridge's own fee lines ({period} of the contract's description).
_BRIDGE_PERIOD = re.compile(r"\bno\. \d+, \d{4}-\d{2}-\d{2}\b")
_UPDATED = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def updated_at(value: Any, field: str = "updated") -> datetime:
    """An `updated` timestamp (US/Eastern wall time, no offset) as a UTC instant."""
    if not isinstance(value, str) or not _UPDATED.fullmatch(value.strip()):
        raise DataError(f"{field}: {value!r} is not a FreshBooks timestamp (YYYY-MM-DD hh:mm:ss)")
    local = datetime.fromisoformat(value.strip()).replace(tzinfo=EASTERN)
    return local.astimezone(UTC)


def updated_seconds(raw: Mapping[str, Any]) -> int:
    """`updated` in seconds since the epoch (0 when absent or unreadable): the pull's keyset."""
    try:
        return int(updated_at(raw.get("updated")).timestamp())
    except DataError:
        return 0


def eastern_day(seconds: int) -> date:
    """The US/Eastern calendar day of an instant (what `search[updated_min]` is compared with)."""
    return datetime.fromtimestamp(seconds, UTC).astimezone(EASTERN).date()


def _amount(raw: Mapping[str, Any], key: str, currency: str, field: str) -> Decimal:
    value = raw.get(key)
    if isinstance(value, Mapping):
        value = value.get("amount")
    return money(value, currency, field)


def _id(value: Any, field: str) -> str:
    return text(value, field, limit=ID_LIMIT)


def record_id(raw: Mapping[str, Any], stream: str = "") -> str:
    """The id of an invoice, payment or client (`id`, with the older `invoiceid`/`logid`/`userid` as fallbacks;
    the same for every `stream`)."""
    for key in ("id", "invoiceid", "logid", "userid"):
        if raw.get(key) not in (None, ""):
            return str(raw[key])
    return "?"


def is_deleted(raw: Mapping[str, Any]) -> bool:
    """An invoice, payment or client FreshBooks keeps as deleted (`vis_state` 1)."""
    return raw.get("vis_state") == DELETED


def customer_id(raw: Mapping[str, Any]) -> str | None:
    """The client an invoice is addressed to (`customerid`)."""
    value = raw.get("customerid")
    return str(value) if value not in (None, "") else None


def due_date(raw: Mapping[str, Any]) -> str | None:
    """An invoice's due date as an ISO day."""
    due = raw.get("due_date")
    return due if isinstance(due, str) else None


def id_order(value: str) -> tuple[int, str]:
    """Numeric ids in numeric order."""
    return (int(value), "") if value.isdigit() else (1 << 62, value)


def client_name(raw: Mapping[str, Any]) -> str:
    """A client's (or an invoice's) display name: the organization, else the person."""
    org = raw.get("organization")
    if isinstance(org, str) and org.strip():
        return org.strip()
    return f"{raw.get('fname') or ''} {raw.get('lname') or ''}".strip()


def client_contacts(client: Mapping[str, Any]) -> tuple[str, ...]:
    """The e-mail addresses of a client's `contacts` (read with `include[]=contacts`): its other billing contacts."""
    contacts = client.get("contacts")
    if not isinstance(contacts, list):
        return ()
    return email_list(c.get("email") for c in contacts if isinstance(c, Mapping))


@refuses_malformed("Client")
def map_client(raw: Mapping[str, Any]) -> Customer:
    """A FreshBooks client as the model's Customer."""
    return customer(_id(record_id(raw), "client.id"), client_name(raw), raw.get("email"))


def late_fees_allowed(raw: Mapping[str, Any]) -> bool:
    """The client's `allow_late_fees` flag (FreshBooks' default for a new client is true)."""
    return raw.get("allow_late_fees", True) is not False and not is_deleted(raw)


def is_provider_fee_line(line: Mapping[str, Any]) -> bool:
    """A late-fee line FreshBooks added on its own: its name, without the bridge's occurrence label."""
    name = str(line.get("name") or "").strip().casefold()
    description = str(line.get("description") or "")
    return name == FRESHBOOKS_FEE_NAME and not _BRIDGE_PERIOD.search(description)


def _lines(raw: Mapping[str, Any], currency: str) -> tuple[LineItem, ...]:
    out: list[LineItem] = []
    for index, line in enumerate(objects(raw, "lines", "invoice.lines")):
        field = f"invoice.lines[{index}]"
        name = text(line.get("name"), f"{field}.name", required=False)
        description = text(line.get("description"), f"{field}.description", required=False)
        line_id = line.get("lineid")
        out.append(
            LineItem(
                id=str(line_id) if line_id not in (None, "") else None,
                item=name or None,
                description=description or name,
                amount=_amount(line, "amount", currency, f"{field}.amount"),
                provider_late_fee=is_provider_fee_line(line),
            )
        )
    return tuple(out)


def _status(raw: Mapping[str, Any], total: Decimal, outstanding: Decimal, paid: Decimal) -> InvoiceStatus:
    if raw.get("vis_state") == DELETED:
        return InvoiceStatus.DELETED
    status = raw.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 0 <= status <= 8:
        raise DataError(f"invoice.status: {status!r} is not a FreshBooks invoice status (0..8)")
    if status == _DRAFT:
        return InvoiceStatus.DRAFT
    if status in _PAID or (outstanding <= 0 and total > 0):
        return InvoiceStatus.PAID
    if paid > 0 and outstanding > 0:
        return InvoiceStatus.PARTIALLY_PAID
    return InvoiceStatus.OPEN


@refuses_malformed("Invoice")
def map_invoice(raw: Mapping[str, Any], connection: str, clients: Mapping[str, Mapping[str, Any]]) -> Invoice:
    """A FreshBooks invoice as the model's Invoice (payments are attached later from payment records).

    Raises `DataError` naming the field when the record cannot be mapped; the caller quarantines it.
    """
    if not isinstance(raw, Mapping):
        raise DataError("invoice is not an object")
    invoice_id = _id(record_id(raw), "invoice.id")
    currency = currency_code(raw.get("currency_code"), "invoice.currency_code")
    total = _amount(raw, "amount", currency, "invoice.amount")
    outstanding = _amount(raw, "outstanding", currency, "invoice.outstanding")
    paid = _amount(raw, "paid", currency, "invoice.paid") if raw.get("paid") is not None else total - outstanding
    if min(total, outstanding, paid) < 0:
        raise DataError(f"invoice amounts negative (amount {total}, outstanding {outstanding})")
    client_id = _id(customer_id(raw), "invoice.customerid")
    client = {**raw, **clients.get(client_id, {})}
    notes = text(raw.get("notes"), "invoice.notes", required=False, limit=20_000)
    return Invoice(
        id=invoice_id,
        number=text(raw.get("invoice_number"), "invoice.invoice_number", required=False, limit=ID_LIMIT) or invoice_id,
        connection=connection,
        provider=PROVIDER,
        customer=customer(client_id, client_name(client), client.get("email"), client_contacts(client)),
        currency=currency,
        issue_date=iso_date(raw.get("create_date"), "invoice.create_date", required=False),
        due_date=iso_date(raw.get("due_date"), "invoice.due_date", required=False),
        total=total,
        amount_due=outstanding,
        status=_status(raw, total, outstanding, paid),
        lines=_lines(raw, currency),
        disputed=raw.get("status") == _DISPUTED or raw.get("vis_state") == ARCHIVED,
        editable=raw.get("vis_state") != DELETED,
        fee_for=common.fee_for(notes),
        estimate_keys=estimate_links(raw),
    )


def estimate_links(raw_invoice: Mapping[str, Any]) -> tuple[str, ...]:
    """The estimate an invoice was made from: its `estimateid` (0 or absent when none)."""
    value = raw_invoice.get("estimateid")
    return (f"estimate:{value}",) if value not in (None, "", 0, "0") else ()


# An estimate the client agreed to: accepted, or already made into an invoice (`ui_status`, or the flags).
_AGREED_ESTIMATE = frozenset({"accepted", "invoiced"})


@refuses_malformed("estimate")
def map_estimate(raw: Mapping[str, Any], connection: str) -> EstimateRecord:
    """A FreshBooks estimate for the estimate check: its `amount`, agreed when accepted or invoiced; invoices
    name it by their `estimateid`."""
    if not isinstance(raw, Mapping):
        raise DataError("estimate is not an object")
    estimate_id = _id(raw.get("id") or raw.get("estimateid"), "estimate.id")
    amount = raw.get("amount")
    code = amount.get("code") if isinstance(amount, Mapping) else None
    currency = currency_code(raw.get("currency_code") or code, "estimate.currency_code")
    agreed = raw.get("ui_status") in _AGREED_ESTIMATE or raw.get("accepted") is True or raw.get("invoiced") is True
    return EstimateRecord(
        id=estimate_id,
        connection=connection,
        number=text(raw.get("estimate_number"), "estimate.estimate_number", required=False, limit=ID_LIMIT)
        or estimate_id,
        currency=currency,
        total=_amount(raw, "amount", currency, "estimate.amount"),
        accepted=agreed,
        keys=(f"estimate:{estimate_id}",),
    )


@refuses_malformed("Payment")
def map_payment(raw: Mapping[str, Any], connection: str) -> Payment:
    """A FreshBooks payment: one allocation to the invoice it names (`invoiceid`)."""
    if not isinstance(raw, Mapping):
        raise DataError("payment is not an object")
    payment_id = _id(record_id(raw), "payment.id")
    amount_obj = raw.get("amount")
    code = amount_obj.get("code") if isinstance(amount_obj, Mapping) else None
    currency = currency_code(code or raw.get("code"), "payment.amount.code", "USD")
    when = iso_date(raw.get("date"), "payment.date")
    assert when is not None
    amount = _amount(raw, "amount", currency, "payment.amount")
    invoice_id = _id(raw.get("invoiceid"), "payment.invoiceid")
    client = raw.get("clientid")
    return Payment(
        id=payment_id,
        connection=connection,
        customer_id=str(client) if client not in (None, "") else None,
        date=when,
        amount=amount,
        currency=currency,
        allocations=(Allocation(date=when, amount=amount, payment_id=payment_id, invoice_id=invoice_id),),
    )


# -- actions -> payloads -------------------------------------------------------------------------


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": str(amount), "code": currency}


def _fee_line(action: Action) -> dict[str, Any]:
    assert action.amount is not None
    return {
        "name": (action.item or "Late Fee")[:200],
        "description": action.description or "",
        "qty": "1",
        "unit_cost": _money(action.amount, action.invoice.currency),
    }


def _plain(value: Any) -> Any:
    """JSON-ready without floats: an exact number read back as `Decimal` goes out as its digits (a string)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _kept_line(line: Mapping[str, Any]) -> dict[str, Any]:
    """An existing line sent back whole, with its `lineid` (FreshBooks may drop a line left out of a PUT)."""
    kept = {k: line[k] for k in ("lineid", "name", "description", "qty", "unit_cost", "type") if k in line}
    for tax in ("taxName1", "taxAmount1", "taxName2", "taxAmount2"):
        if line.get(tax) not in (None, ""):
            kept[tax] = line[tax]
    return dict(_plain(kept))


def fee_line_update(raw_invoice: Mapping[str, Any], action: Action) -> dict[str, Any]:
    """`PUT …/invoices/{id}` adding the fee line: every existing line goes back with its `lineid`."""
    lines = [_kept_line(line) for line in raw_invoice.get("lines") or [] if isinstance(line, Mapping)]
    return {"lines": [*lines, _fee_line(action)]}


def fee_line_removal(raw_invoice: Mapping[str, Any], action: Action) -> dict[str, Any]:
    """`PUT …/invoices/{id}` taking the fee line off (`bridge forgive`): every other line goes back with its
    `lineid`."""
    lines = raw_invoice.get("lines") or []
    kept = [
        _kept_line(line)
        for line in lines
        if isinstance(line, Mapping) and line.get("description") != action.description
    ]
    return {"lines": kept}


def fee_invoice_number(action: Action) -> str:
    """invoice_number of a separate fee invoice: the original's number and the occurrence."""
    return f"{action.invoice.number}-LF{action.occurrence}"[-30:]


def fee_invoice_create(raw_invoice: Mapping[str, Any], action: Action, on: date) -> dict[str, Any]:
    """A separate (sent) invoice carrying only the fee, naming the original in its number and notes."""
    return {
        "customerid": raw_invoice.get("customerid"),
        "invoice_number": fee_invoice_number(action),
        "create_date": on.isoformat(),
        "due_date": on.isoformat(),
        "currency_code": raw_invoice.get("currency_code") or action.invoice.currency,
        "status": 2,
        "notes": f"Late fee on invoice {action.invoice.number} {common.fee_mark(action.invoice.id)}",
        "lines": [_fee_line(action)],
    }


def is_fee_invoice_for(raw: Mapping[str, Any], action: Action) -> bool:
    """Is this invoice the separate fee invoice of this action (our number and our mark in the notes)?"""
    return (
        raw.get("invoice_number") == fee_invoice_number(action)
        and common.fee_for(str(raw.get("notes") or "")) == action.invoice.id
        and not is_deleted(raw)
    )


def version(raw_invoice: Mapping[str, Any]) -> str:
    """The invoice's version as the provider answered a write (`updated`): it ends the write's response id."""
    return str(raw_invoice.get("updated", ""))


def due_date_update(raw_invoice: Mapping[str, Any], new_due: date) -> dict[str, Any]:
    """`PUT …/invoices/{id}` moving the due date."""
    return {"due_date": new_due.isoformat()}


def email_update(action: Action) -> dict[str, Any]:
    """`PUT …/invoices/{id}` e-mailing the invoice with the contract's own subject and body.

    Nothing else may ride along: a PUT with an action carries out only the action (FreshBooks' update phases).
    """
    body: dict[str, Any] = {"action_email": True}
    if action.to:
        body["email_recipients"] = list(action.recipients)  # the client, then its copies (escalation)
    if action.subject or action.body:
        body["invoice_customized_email"] = {"subject": action.subject or "", "body": action.body or ""}
    return body


def fee_line_id(raw_invoice: Mapping[str, Any] | None, action: Action) -> str | None:
    """`lineid` of the line this fee action wrote, when it is on the invoice (evidence, and the check before
    a retried write)."""
    for line in (raw_invoice or {}).get("lines") or []:
        if isinstance(line, Mapping) and line.get("description") == action.description:
            return str(line.get("lineid") or "") or "line"
    return None


def error_messages(body: Any) -> list[str]:
    """The messages of a FreshBooks error envelope (`response.errors[].message`)."""
    if not isinstance(body, Mapping):
        return []
    response = body.get("response")
    errors = response.get("errors") if isinstance(response, Mapping) else None
    if isinstance(errors, Mapping):
        errors = [errors]
    found = [str(e.get("message")) for e in errors or [] if isinstance(e, Mapping) and e.get("message")]
    if not found and body.get("error_description"):
        found.append(str(body["error_description"]))
    return found


def late_fee_clients(flagged: Iterable[str], clients: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The clients that let FreshBooks add its own late fees: those `flagged` before, as the `clients` read now
    say (numeric ids in numeric order)."""
    ids = set(flagged)
    for raw in clients:
        client = record_id(raw)
        ids.discard(client)
        if late_fees_allowed(raw):
            ids.add(client)
    return tuple(sorted(ids, key=id_order))


def late_fee_warnings(connection: str, ids: Iterable[str], clients: Mapping[str, Mapping[str, Any]]) -> list[Warning]:
    """What the accountant should know about clients that let FreshBooks add its own late fees."""
    return [
        Warning(
            connection,
            None,
            WarningCode.PROVIDER_LATE_FEES,
            f"FreshBooks may add its own late fees to invoices of {name} (client {cid}, allow_late_fees "
            "is on): such a fee counts as a foreign fee and the bridge charges nothing on top of it; "
            "turn late fees off for this client in FreshBooks to leave them to the contract",
        )
        for cid in ids
        for name in [client_name(clients.get(cid, {})) or f"client {cid}"]
    ]


def pay_link(answer: Any) -> str | None:
    """`response.result.share_link.share_link` of a share-link answer."""
    result = answer.get("response", {}).get("result", {}) if isinstance(answer, Mapping) else {}
    share = result.get("share_link") if isinstance(result, Mapping) else None
    link = share.get("share_link") if isinstance(share, Mapping) else None
    return link if isinstance(link, str) and link else None
