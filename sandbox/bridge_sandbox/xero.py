"""The Xero emulator: OAuth 2 (identity), `/connections` and the Accounting API (`/api.xro/2.0`).

Seed section (docs/interfaces.md): `{"tenant_id", "Invoices", "Payments", "Contacts"}` as the API returns
them (dates as `/Date(ms+0000)/`), plus optional `Organisation` (`{"Name"}`), `InvoiceReminders`
(`{"Enabled": bool}`) and `Quotes` (GET /Quotes' shape: `QuoteID`, `QuoteNumber`, `Reference`, `Status` DRAFT,
SENT, DECLINED, ACCEPTED, INVOICED or DELETED, `Total`, `CurrencyCode`, `UpdatedDateUTC`; read only); a list of
such objects emulates several organisations reached by one token.

Rules kept (docs/providers.md, Xero): the `xero-tenant-id` header (403 without a known one), single-use refresh
tokens with a grace window for the previous one, line items upserted by `LineItemID` and omitted lines
deleted, no edits once a payment or credit is allocated, `AmountDue`/`AmountPaid`/`Status` kept consistent,
`Idempotency-Key` replay, `summarizeErrors=false`, and per-tenant rate-limit headers on every API answer.
Behaviour we could not confirm is a `XeroSettings` field (`Sandbox(options={"xero": {...}})`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs

from bridge_sandbox.core import (
    Json,
    Provider,
    RateLimit,
    Request,
    Response,
    Route,
    SandboxContext,
    consent,
    invoice_pdf,
    oauth_client_id,
    oauth_error,
    pdf_response,
    register_provider,
    route,
    settings_from,
)
from bridge_sandbox.xero_reference import REFERENCE_LISTS, reference_lists
from bridge_sandbox.xero_where import WhereError, ms_date, parse_ms_date, parse_where, sort_objects

Obj = dict[str, Any]

DEFAULT_TENANT_ID = "6f9d3c1e-2b7a-4c55-9e1d-0a8f4b2c7d31"
MINUTE, DAY = 60.0, 86_400.0
_CENT = Decimal("0.01")
NOT_EDITABLE_ALLOCATED = "This document cannot be edited as it has a payment or credit note allocated to it."
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"


@dataclass(frozen=True)
class XeroSettings:
    """Emulator behaviour; defaults follow Xero's published documentation where there is one."""

    access_token_ttl: int = 1800
    refresh_token_ttl: int = 60 * 86_400  # an unused refresh token expires after 60 days
    refresh_grace_seconds: int = 1800  # the previous refresh token is accepted again for 30 minutes
    grace_returns_current: bool = True  # unsure: a grace-window refresh hands back the current refresh token
    auth_code_ttl: int = 300
    minute_limit: int = 60
    daily_limit: int = 5000
    concurrent_limit: int = 5  # API requests of one tenant in flight at once (with rate limits on)
    page_size_default: int = 100
    page_size_max: int = 1000
    idempotency_key_max_length: int = 128
    replay_errors: bool = False  # unsure: whether a 4xx answer is replayed for a repeated Idempotency-Key
    # `UpdatedDateUTC >= since` at one-second precision (True) or `>` (False). Xero's spec says "created or
    # modified since this timestamp"; the header carries no milliseconds, and a client handing back the newest
    # UpdatedDateUTC it saw gets that record again (xero-gateway/xero_gateway#145, where users round up to the
    # next second to avoid it). Clients must de-duplicate by id either way; the bridge does.
    if_modified_since_inclusive: bool = True
    # unsure: which fields may change once a payment or credit is allocated (real Xero refuses most edits)
    allocated_editable_fields: tuple[str, ...] = ("DueDate", "Reference", "SentToContact", "ExpectedPaymentDate")
    email_subject: str = "Invoice {number} from {org}"
    email_body: str = "Hi {contact},\n\nHere's invoice {number} for {currency} {amount_due}.\n\nThanks,\n{org}"
    default_tenant_id: str = DEFAULT_TENANT_ID
    default_org_name: str = "Demo Company (NZ)"
    injected_429_problem: str = "minute"  # X-Rate-Limit-Problem of an injected 429 (minute, daily, concurrent)

    @classmethod
    def from_options(cls, options: Mapping[str, Json]) -> XeroSettings:
        """Settings from `Sandbox(options={"xero": {...}})`; unknown keys are refused."""
        values = dict(options)
        if isinstance(values.get("allocated_editable_fields"), list):
            values["allocated_editable_fields"] = tuple(values["allocated_editable_fields"])
        return settings_from(cls, "xero", values)


class _Answer(Exception):
    """Stop handling and send this response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class XeroValidation(Exception):
    """One or more validation errors on an element (an invoice, a payment)."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


def _dec(value: Any, what: str) -> Decimal:
    if isinstance(value, bool):
        raise XeroValidation(f"{what} must be a number")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise XeroValidation(f"{what} must be a number") from exc


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _new_id() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------------------------------------------- an organisation


class Org:
    """One Xero organisation (tenant): its contacts, invoices, payments and the write rules."""

    def __init__(self, section: Mapping[str, Any], settings: XeroSettings) -> None:
        self.settings = settings
        self.section_keys = list(section)
        self.tenant_id = str(section.get("tenant_id") or settings.default_tenant_id)
        self.organisation: Obj | None = section.get("Organisation")
        self.reminders: Obj | None = section.get("InvoiceReminders")
        self.contacts: dict[str, Obj] = {c["ContactID"]: c for c in section.get("Contacts") or []}
        self.invoices: dict[str, Obj] = {i["InvoiceID"]: i for i in section.get("Invoices") or []}
        self.payments: dict[str, Obj] = {p["PaymentID"]: p for p in section.get("Payments") or []}
        self.quotes: dict[str, Obj] = {q["QuoteID"]: q for q in section.get("Quotes") or []}
        self.history: dict[str, list[Obj]] = {}
        self.replay: dict[str, Response] = {}
        base = str((self.organisation or {}).get("BaseCurrency") or "USD")
        self.reference = reference_lists(section, self.tenant_id, base)

    @property
    def name(self) -> str:
        """The organisation's name (signs e-mails, names the connection)."""
        return str((self.organisation or {}).get("Name") or self.settings.default_org_name)

    def dump(self) -> Obj:
        """The seed section as the data stands now (shares stored objects)."""
        out: Obj = {"tenant_id": self.tenant_id}
        if self.organisation is not None:
            out["Organisation"] = self.organisation
        if self.reminders is not None:
            out["InvoiceReminders"] = self.reminders
        out["Invoices"] = list(self.invoices.values())
        out["Payments"] = list(self.payments.values())
        out["Contacts"] = list(self.contacts.values())
        if self.quotes or "Quotes" in self.section_keys:
            out["Quotes"] = list(self.quotes.values())
        out.update({name: self.reference[name] for name in REFERENCE_LISTS if name in self.section_keys})
        order = {key: i for i, key in enumerate(self.section_keys)}
        return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))

    # -------------------------------------------------------------------------------- invoices

    def write_invoice(self, body: Obj, now: datetime, *, create: bool, path_id: str | None) -> Obj:
        """Create (PUT) or update (POST) one invoice; raises XeroValidation."""
        invoice_id = path_id or body.get("InvoiceID")
        number = body.get("InvoiceNumber")
        previous: Obj | None = None
        if invoice_id:
            previous = self.invoices.get(str(invoice_id).lower()) or self.invoices.get(str(invoice_id))
            if previous is None:
                raise XeroValidation(f"Invoice with ID {invoice_id} could not be found")
        elif not create and number:
            previous = next((i for i in self.invoices.values() if i.get("InvoiceNumber") == number), None)
        if create and previous is not None and path_id is None and not body.get("InvoiceID"):
            previous = None
        if previous is None:
            return self._create_invoice(body, now)
        return self._update_invoice(previous, body, now)

    def _contact_for(self, value: Any) -> Obj:
        if not isinstance(value, dict):
            raise XeroValidation("A Contact must be specified for this type of transaction")
        cid = value.get("ContactID")
        if cid:
            found = self.contacts.get(str(cid))
            if found is None:
                raise XeroValidation("The contact specified could not be found")
            return found
        name = value.get("Name")
        if not name:
            raise XeroValidation("A Contact must be specified for this type of transaction")
        found = next((c for c in self.contacts.values() if str(c.get("Name", "")).lower() == str(name).lower()), None)
        if found is not None:
            return found
        contact: Obj = {"ContactID": _new_id(), "ContactStatus": "ACTIVE", "Name": name, "EmailAddress": ""}
        contact.update({k: v for k, v in value.items() if k in ("EmailAddress", "FirstName", "LastName")})
        self.contacts[contact["ContactID"]] = contact
        return contact

    @staticmethod
    def _contact_ref(contact: Obj) -> Obj:
        ref: Obj = {k: contact[k] for k in ("ContactID", "Name", "EmailAddress") if k in contact}
        ref.setdefault("Addresses", [])
        ref.setdefault("Phones", [])
        ref.setdefault("ContactGroups", [])
        ref.setdefault("ContactPersons", [])
        ref.setdefault("HasValidationErrors", False)
        return ref

    def _lines(self, lines: Any, previous: Sequence[Obj]) -> list[Obj]:
        if not isinstance(lines, list):
            raise XeroValidation("LineItems must be a list")
        by_id = {str(line.get("LineItemID")): line for line in previous}
        out: list[Obj] = []
        errors: list[str] = []
        for given in lines:
            if not isinstance(given, dict):
                errors.append("A line item must be an object")
                continue
            line_id = given.get("LineItemID")
            base: Obj = {}
            if line_id:
                if str(line_id) not in by_id:
                    errors.append(f"LineItemID {line_id} does not belong to this invoice")
                    continue
                base = dict(by_id[str(line_id)])
            line = {**base, **{k: v for k, v in given.items() if v is not None}}
            line.setdefault("LineItemID", _new_id())
            if not str(line.get("Description") or "").strip() and not line.get("ItemCode"):
                errors.append("Description cannot be empty")
                continue
            try:
                quantity = _dec(line.get("Quantity", 1), "Quantity")
                unit = _dec(line.get("UnitAmount", line.get("LineAmount", 0)), "UnitAmount")
                tax = _money(_dec(line.get("TaxAmount", 0), "TaxAmount"))
                discount = _dec(line.get("DiscountRate", 0), "DiscountRate")
            except XeroValidation as exc:
                errors.extend(exc.messages)
                continue
            amount = _money(quantity * unit * (1 - discount / 100))
            line.update(Quantity=quantity, UnitAmount=unit, TaxAmount=tax, LineAmount=amount)
            line.setdefault("AccountCode", "200")
            line.setdefault("TaxType", "NONE")
            line.setdefault("Tracking", [])
            out.append(line)
        if errors:
            raise XeroValidation(*errors)
        return out

    def _create_invoice(self, body: Obj, now: datetime) -> Obj:
        errors: list[str] = []
        kind = body.get("Type")
        if kind not in ("ACCREC", "ACCPAY"):
            errors.append("Invoice Type must be specified" if not kind else f"Invoice Type {kind} is not valid")
        status = str(body.get("Status") or "DRAFT")
        if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            errors.append(f"Invoice Status {status} is not valid for a new invoice")
        contact: Obj | None = None
        try:
            contact = self._contact_for(body.get("Contact"))
        except XeroValidation as exc:
            errors.extend(exc.messages)
        lines: list[Obj] = []
        try:
            lines = self._lines(body.get("LineItems") or [], [])
        except XeroValidation as exc:
            errors.extend(exc.messages)
        if status != "DRAFT" and not lines:
            errors.append("At least one line item is required to approve an invoice")
        number = body.get("InvoiceNumber")
        if number and any(i.get("InvoiceNumber") == number for i in self.invoices.values()):
            errors.append("Invoice # must be unique.")
        if errors or contact is None:
            raise XeroValidation(*errors)
        invoice: Obj = {
            "Type": kind,
            "InvoiceID": _new_id(),
            "InvoiceNumber": number or (self._next_number() if kind == "ACCREC" else ""),
            "Reference": body.get("Reference") or "",
            "Contact": self._contact_ref(contact),
            "Date": self._date(body.get("Date")) or ms_date(now.replace(hour=0, minute=0, second=0, microsecond=0)),
            "Status": status,
            "LineAmountTypes": body.get("LineAmountTypes") or "Exclusive",
            "LineItems": lines,
            "CurrencyCode": body.get("CurrencyCode") or "USD",
            "CurrencyRate": _dec(body.get("CurrencyRate", 1), "CurrencyRate"),
            "Payments": [],
            "CreditNotes": [],
            "AmountPaid": Decimal("0.00"),
            "AmountCredited": Decimal("0.00"),
            "SentToContact": False,
            "HasAttachments": False,
            "IsDiscounted": False,
            "HasErrors": False,
        }
        due = self._date(body.get("DueDate"))
        if due:
            invoice["DueDate"] = due
        self._recompute(invoice)
        invoice["UpdatedDateUTC"] = ms_date(now)
        self.invoices[invoice["InvoiceID"]] = invoice
        return invoice

    def _next_number(self) -> str:
        top = 0
        for inv in self.invoices.values():
            number = str(inv.get("InvoiceNumber") or "")
            if number.startswith("INV-") and number[4:].isdigit():
                top = max(top, int(number[4:]))
        return f"INV-{top + 1:04d}"

    @staticmethod
    def _date(value: Any) -> str | None:
        if value is None or value == "":
            return None
        moment = parse_ms_date(str(value))
        if moment is None:
            raise XeroValidation(f"{value!r} is not a valid date")
        return ms_date(moment)

    def _update_invoice(self, previous: Obj, body: Obj, now: datetime) -> Obj:
        status = previous.get("Status")
        new_status = str(body.get("Status") or status)
        allocated = (
            _dec(previous.get("AmountPaid", 0), "AmountPaid") > 0
            or _dec(previous.get("AmountCredited", 0), "AmountCredited") > 0
        )
        changing = {k for k in body if k not in ("InvoiceID", "Type") and body[k] != previous.get(k)}
        if new_status == status:
            changing.discard("Status")
        if allocated and changing - set(self.settings.allocated_editable_fields):
            raise XeroValidation(NOT_EDITABLE_ALLOCATED)
        if status in ("VOIDED", "DELETED") and changing:
            raise XeroValidation(f"This document cannot be edited as it is {status}.")
        if status == "PAID" and changing - set(self.settings.allocated_editable_fields):
            raise XeroValidation(NOT_EDITABLE_ALLOCATED)
        allowed = {
            "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
            "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
            "AUTHORISED": {"AUTHORISED", "VOIDED"},
            "PAID": {"PAID"},
        }
        if new_status != status and new_status not in allowed.get(str(status), set()):
            raise XeroValidation(f"Invoice Status cannot be changed from {status} to {new_status}")
        invoice = dict(previous)
        if "Contact" in body and body["Contact"] != previous.get("Contact"):
            invoice["Contact"] = self._contact_ref(self._contact_for(body["Contact"]))
        if "LineItems" in body:
            invoice["LineItems"] = self._lines(body["LineItems"], previous.get("LineItems") or [])
        for key in ("Date", "DueDate", "ExpectedPaymentDate"):
            if key in body:
                invoice[key] = self._date(body[key])
                if invoice[key] is None:
                    del invoice[key]
        for key in ("Reference", "InvoiceNumber", "LineAmountTypes", "CurrencyCode", "SentToContact"):
            if key in body and body[key] is not None:
                invoice[key] = body[key]
        invoice["Status"] = new_status
        self._recompute(invoice)
        invoice["UpdatedDateUTC"] = ms_date(now)
        self.invoices[invoice["InvoiceID"]] = invoice
        return invoice

    @staticmethod
    def _recompute(invoice: Obj) -> None:
        lines = invoice.get("LineItems") or []
        sub = _money(sum((Decimal(str(line.get("LineAmount", 0))) for line in lines), Decimal("0")))
        tax = _money(sum((Decimal(str(line.get("TaxAmount", 0))) for line in lines), Decimal("0")))
        if invoice.get("LineAmountTypes") == "Inclusive":
            sub -= tax
        total = sub + tax
        paid = _money(Decimal(str(invoice.get("AmountPaid", 0))))
        credited = _money(Decimal(str(invoice.get("AmountCredited", 0))))
        invoice.update(SubTotal=sub, TotalTax=tax, Total=total, AmountPaid=paid, AmountCredited=credited)
        if invoice.get("Status") in ("VOIDED", "DELETED"):
            invoice["AmountDue"] = Decimal("0.00")
        else:
            invoice["AmountDue"] = _money(total - paid - credited)

    # -------------------------------------------------------------------------------- payments

    def create_payment(self, body: Obj, now: datetime) -> Obj:
        """Apply one payment to an invoice; raises XeroValidation."""
        ref = body.get("Invoice")
        if not isinstance(ref, dict) or not (ref.get("InvoiceID") or ref.get("InvoiceNumber")):
            raise XeroValidation("You must specify an Invoice, CreditNote, Prepayment or Overpayment to pay")
        invoice = self.invoices.get(str(ref.get("InvoiceID") or ""))
        if invoice is None and ref.get("InvoiceNumber"):
            invoice = next((i for i in self.invoices.values() if i.get("InvoiceNumber") == ref["InvoiceNumber"]), None)
        if invoice is None:
            raise XeroValidation("Invoice could not be found")
        if invoice.get("Status") != "AUTHORISED":
            raise XeroValidation("Payment cannot be applied to an invoice that is not AUTHORISED")
        account = body.get("Account")
        if not isinstance(account, dict) or not (account.get("Code") or account.get("AccountID")):
            raise XeroValidation("You must specify an Account to make a payment")
        amount = _money(_dec(body.get("Amount"), "Amount"))
        due = Decimal(str(invoice["AmountDue"]))
        if amount <= 0:
            raise XeroValidation("Payment amount must be greater than zero")
        if amount > due:
            raise XeroValidation("Payment amount exceeds the amount outstanding on this document")
        when = self._date(body.get("Date")) or ms_date(now.replace(hour=0, minute=0, second=0, microsecond=0))
        payment: Obj = {
            "PaymentID": _new_id(),
            "Date": when,
            "Amount": amount,
            "BankAmount": amount,
            "Reference": body.get("Reference") or "",
            "CurrencyRate": _dec(body.get("CurrencyRate", invoice.get("CurrencyRate", 1)), "CurrencyRate"),
            "PaymentType": "ACCRECPAYMENT" if invoice["Type"] == "ACCREC" else "ACCPAYPAYMENT",
            "Status": "AUTHORISED",
            "IsReconciled": False,
            "HasAccount": True,
            "HasValidationErrors": False,
            "UpdatedDateUTC": ms_date(now),
            "Account": {k: account[k] for k in ("AccountID", "Code") if k in account},
            "Invoice": {
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice.get("InvoiceNumber", ""),
                "Type": invoice["Type"],
                "CurrencyCode": invoice.get("CurrencyCode", "USD"),
                "Contact": {"ContactID": invoice["Contact"]["ContactID"], "Name": invoice["Contact"].get("Name", "")},
            },
        }
        self.payments[payment["PaymentID"]] = payment
        updated = dict(invoice)
        updated["AmountPaid"] = _money(Decimal(str(invoice.get("AmountPaid", 0))) + amount)
        updated["Payments"] = [
            *(invoice.get("Payments") or []),
            {"PaymentID": payment["PaymentID"], "Date": when, "Amount": amount, "Reference": payment["Reference"]},
        ]
        self._recompute(updated)
        if updated["AmountDue"] == 0:
            updated["Status"] = "PAID"
            updated["FullyPaidOnDate"] = when
        updated["UpdatedDateUTC"] = ms_date(now)
        self.invoices[updated["InvoiceID"]] = updated
        return payment


# ---------------------------------------------------------------------------------------------------- OAuth state


@dataclass
class _Grant:
    client_id: str
    scope: str
    refresh_token: str
    refresh_expires: datetime
    previous_refresh: str = ""
    previous_until: datetime | None = None
    auth_event_id: str = field(default_factory=_new_id)
    created: datetime | None = None


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scope: str
    expires: datetime
    challenge: str = ""  # PKCE: base64url(sha256(code_verifier)), when the authorize request sent one


@dataclass
class _Tokens:
    codes: dict[str, _Code] = field(default_factory=dict)
    by_refresh: dict[str, _Grant] = field(default_factory=dict)
    by_access: dict[str, tuple[_Grant, datetime]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- the provider


def _usage_window(hits: deque[float], now: float, seconds: float) -> deque[float]:
    while hits and hits[0] <= now - seconds:
        hits.popleft()
    return hits


@register_provider
class XeroProvider(Provider):
    """The Xero emulator."""

    name = "xero"
    # Per tenant: 60 calls a minute and 5,000 a day (the daily number is the `daily_limit` setting).
    default_rate_limits = (RateLimit(60, MINUTE), RateLimit(5000, DAY))

    def __init__(self, ctx: SandboxContext, options: Mapping[str, Json] | None = None) -> None:
        super().__init__(ctx, options)
        self.settings = XeroSettings.from_options(self.options)
        # The server reads the instance's limits, so the settings decide them.
        limits = (RateLimit(self.settings.minute_limit, MINUTE), RateLimit(self.settings.daily_limit, DAY))
        self.__dict__["default_rate_limits"] = limits
        self.orgs: dict[str, Org] = {}
        self._as_list = False
        self.tokens = _Tokens()  # not part of the seed: a reset keeps linked connections working
        self._usage: dict[tuple[str, float], deque[float]] = {}
        self._local = threading.local()

    # -------------------------------------------------------------------------------- Provider

    def load(self, seed: Json | None) -> None:
        """Load the `xero` seed section (an object, or a list of them for several organisations)."""
        sections: list[Any]
        if seed is None:
            sections, self._as_list = [{"tenant_id": self.settings.default_tenant_id}], False
        elif isinstance(seed, list):
            sections, self._as_list = seed, True
        else:
            sections, self._as_list = [seed], False
        orgs = [Org(s, self.settings) for s in sections]
        self.orgs = {o.tenant_id: o for o in orgs}
        self._usage.clear()

    def dump(self) -> Json:
        """The `xero` seed section as the data stands now."""
        dumped = [o.dump() for o in self.orgs.values()]
        return dumped if self._as_list else dumped[0]

    def describe(self, base_url: str) -> dict[str, str]:
        """Where xero-python should point."""
        return {
            "api": f"{base_url}/api.xro/2.0",
            "token": f"{base_url}/connect/token",
            "authorize": f"{base_url}/identity/connect/authorize",
            "connections": f"{base_url}/connections",
            "tenants": ",".join(self.orgs),
        }

    def tenant_of(self, request: Request) -> str | None:
        """Rate limits are per tenant: the `xero-tenant-id` header (None on identity routes)."""
        tenant = None
        if request.path.lower().startswith("/api.xro/"):
            tenant = (request.header("xero-tenant-id") or "").strip().lower() or "-"
        # The server asks for the tenant and then, on the same thread, may answer with a fault or a
        # throttle: remembering it here lets those answers carry the usage headers too.
        self._local.tenant = tenant
        return tenant

    def routes(self) -> Sequence[Route]:
        """Identity and Accounting API routes (case-insensitive, as xero-python mixes cases)."""
        api = r"/api\.xro/2\.0"
        inv = api + r"/invoices/(?P<id>[^/]+)"
        return [
            route("GET", r"/(?:identity/)?connect/authorize/?", self._authorize, api=False),
            route("POST", r"/connect/token/?", self._token, api=False),
            route("POST", r"/connect/revocation/?", self._revoke, api=False),
            route("GET", r"/connections/?", self._connections, api=False, name="connections"),
            route("GET", api + r"/invoices/?", self._api(self._list_invoices), name="invoices"),
            route("PUT", api + r"/invoices/?", self._api(self._put_invoices), name="invoices.create"),
            route("POST", api + r"/invoices/?", self._api(self._post_invoices), name="invoices.update"),
            route("POST", inv + r"/email/?", self._api(self._email), name="invoice.email"),
            route("GET", inv + r"/history/?", self._api(self._get_history), name="invoice.history"),
            route("PUT", inv + r"/history/?", self._api(self._put_history), name="invoice.history.create"),
            route("GET", inv + r"/onlineinvoice/?", self._api(self._online_invoice), name="invoice.online"),
            route("GET", inv + r"/?", self._api(self._get_invoice), name="invoice"),
            route("POST", inv + r"/?", self._api(self._post_invoices), name="invoice.update"),
            route("GET", api + r"/payments/?", self._api(self._list_payments), name="payments"),
            route("PUT", api + r"/payments/?", self._api(self._put_payments), name="payments.create"),
            # xero-python's create_payment (one payment) POSTs; both verbs create.
            route("POST", api + r"/payments/?", self._api(self._put_payments), name="payments.create"),
            route("GET", api + r"/payments/(?P<id>[^/]+)/?", self._api(self._get_payment), name="payment"),
            route("GET", api + r"/contacts/?", self._api(self._list_contacts), name="contacts"),
            route("GET", api + r"/quotes/?", self._api(self._list_quotes), name="quotes"),
            route("GET", api + r"/contacts/(?P<id>[^/]+)/?", self._api(self._get_contact), name="contact"),
            route("GET", api + r"/invoicereminders/settings/?", self._api(self._reminders), name="reminders"),
            route("GET", api + r"/organisation/?", self._api(self._organisation), name="organisation"),
            *(
                route("GET", api + f"/{name.lower()}/?", self._api(self._reference(name)), name=name.lower())
                for name in REFERENCE_LISTS
            ),
            route("*", api + r"(?:/.*)?", self._api(self._unsupported), name="unsupported"),
        ]

    def fault_response(self, kind: str, retry_after: int | None) -> Response:
        """Injected faults in Xero's shapes."""
        tenant: str | None = getattr(self._local, "tenant", None)
        if kind == "429":
            return self._throttled(self.settings.injected_429_problem, retry_after, tenant)
        if kind == "expired_token":
            response = self._unauthorized("TokenExpired: token expired (injected fault)")
        elif kind == "503":
            response = Response.text(503, "The Xero API is currently offline for maintenance")
        else:
            body = {"ErrorNumber": 500, "Type": "UnknownErrorException", "Message": "An error occurred in Xero."}
            response = Response.json(500, body)
        if tenant is not None:
            response.headers += self._usage_headers(tenant, count=False)
        return response

    def concurrent_limit(self) -> int | None:
        """Xero answers 429 (`X-Rate-Limit-Problem: concurrent`) beyond 5 calls in progress per organisation."""
        return self.settings.concurrent_limit

    def concurrency_response(self) -> Response:
        """Xero's answer to one call too many in flight."""
        return self._throttled("concurrent", 1, getattr(self._local, "tenant", None))

    def throttle_response(self, limit: RateLimit, retry_after: int) -> Response:
        """A published rate limit was exceeded."""
        tenant: str | None = getattr(self._local, "tenant", None)
        return self._throttled("daily" if limit.per_seconds >= DAY else "minute", retry_after, tenant)

    # -------------------------------------------------------------------------------- answers

    def _throttled(self, problem: str, retry_after: int | None, tenant: str | None) -> Response:
        response = Response.text(429, "You have exceeded the rate limit")
        response.headers.append(("X-Rate-Limit-Problem", problem))
        if retry_after is not None:
            response.headers.append(("Retry-After", str(retry_after)))
        if tenant is not None:
            response.headers += self._usage_headers(tenant, count=False)
        return response

    def _unauthorized(self, detail: str) -> Response:
        body = {"Type": None, "Title": "Unauthorized", "Status": 401, "Detail": detail, "Instance": _new_id()}
        response = Response.json(401, body)
        response.headers.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
        return response

    @staticmethod
    def _forbidden(detail: str = "AuthenticationUnsuccessful") -> Response:
        body = {"Type": None, "Title": "Forbidden", "Status": 403, "Detail": detail, "Instance": _new_id()}
        return Response.json(403, body)

    @staticmethod
    def _not_found() -> Response:
        return Response.text(404, NOT_FOUND_TEXT)

    @staticmethod
    def _validation(elements: list[Obj], message: str = "A validation exception occurred") -> Response:
        body = {"ErrorNumber": 10, "Type": "ValidationException", "Message": message, "Elements": elements}
        return Response.json(400, body)

    def _envelope(self, key: str, items: list[Obj], extra: Obj | None = None) -> Response:
        body: Obj = {
            "Id": _new_id(),
            "Status": "OK",
            "ProviderName": "bridge-sandbox",
            "DateTimeUTC": ms_date(self.ctx.now()),
        }
        body.update(extra or {})
        body[key] = items
        return Response.json(200, body)

    def _usage_headers(self, tenant: str, *, count: bool) -> list[tuple[str, str]]:
        now = self.ctx.now().timestamp()
        out: list[tuple[str, str]] = []
        for seconds, limit, header in (
            (DAY, self.settings.daily_limit, "X-DayLimit-Remaining"),
            (MINUTE, self.settings.minute_limit, "X-MinLimit-Remaining"),
        ):
            hits = _usage_window(self._usage.setdefault((tenant, seconds), deque()), now, seconds)
            if count:
                hits.append(now)
            out.append((header, str(max(0, limit - len(hits)))))
        out.append(("X-AppMinLimit-Remaining", "9999"))
        return out

    # -------------------------------------------------------------------------------- plumbing

    def _grant_for(self, request: Request) -> _Grant:
        header = request.header("Authorization") or ""
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise _Answer(self._unauthorized("AuthenticationUnsuccessful"))
        found = self.tokens.by_access.get(header[7:].strip())
        if found is None:
            raise _Answer(self._unauthorized("AuthenticationUnsuccessful"))
        grant, expires = found
        if self.ctx.now() >= expires:
            raise _Answer(self._unauthorized(f"TokenExpired: token expired at {expires:%m/%d/%Y %H:%M:%S}"))
        return grant

    def _api(self, fn: Callable[[Request, Org], Response]) -> Callable[[Request], Response]:
        """Auth, tenant, Idempotency-Key replay, error rendering and the usage headers around a handler."""

        def handle(request: Request) -> Response:
            tenant = self.tenant_of(request) or "-"
            try:
                self._grant_for(request)
                org = self.orgs.get(tenant)
                if org is None:
                    raise _Answer(self._forbidden())
                key = request.header("Idempotency-Key") if request.method in ("PUT", "POST") else None
                if key is not None:
                    if len(key) > self.settings.idempotency_key_max_length:
                        raise _Answer(
                            self._validation(
                                [],
                                f"Idempotency-Key must be at most {self.settings.idempotency_key_max_length} "
                                "characters",
                            )
                        )
                    cached = org.replay.get(key)
                    if cached is not None:
                        response = Response(cached.status, cached.body, list(cached.headers), {"replayed": True})
                        response.headers += self._usage_headers(tenant, count=True)
                        return response
                try:
                    response = fn(request, org)
                except XeroValidation as exc:
                    response = self._validation([{"ValidationErrors": [{"Message": m} for m in exc.messages]}])
                except WhereError as exc:
                    response = self._validation([], str(exc))
                if key is not None and (response.status < 400 or self.settings.replay_errors):
                    org.replay[key] = Response(response.status, response.body, list(response.headers))
            except _Answer as answer:
                response = answer.response
            response.headers += self._usage_headers(tenant, count=True)
            return response

        return handle

    @staticmethod
    def _body(request: Request) -> Any:
        try:
            return request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise XeroValidation(f"The request body is not valid JSON: {exc}") from exc

    @staticmethod
    def _flag(request: Request, name: str, default: bool) -> bool:
        value = next((v for k, v in request.query.items() if k.lower() == name.lower()), None)
        if not value:
            return default
        return value[0].strip().lower() == "true"

    @staticmethod
    def _arg(request: Request, name: str) -> str | None:
        return next((v[0] for k, v in request.query.items() if k.lower() == name.lower() and v), None)

    def _since(self, request: Request) -> datetime | None:
        text = request.header("If-Modified-Since")
        if not text:
            return None
        try:
            parsed = parsedate_to_datetime(text)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (TypeError, ValueError):
            moment = parse_ms_date(text)
            if moment is None:
                raise XeroValidation(f"If-Modified-Since {text!r} is not a valid date") from None
            return moment

    def _select(
        self, request: Request, objs: list[Obj], ids: Mapping[str, str], *, lines: bool = False
    ) -> tuple[list[Obj], Obj | None]:
        """If-Modified-Since, ID lists, where, order and paging over a list of stored objects."""
        since = self._since(request)
        if since is not None:
            cutoff = since.timestamp()
            inclusive = self.settings.if_modified_since_inclusive

            def modified(obj: Obj) -> bool:
                moment = parse_ms_date(str(obj.get("UpdatedDateUTC") or ""))
                if moment is None:
                    return True
                stamp = float(int(moment.timestamp()))  # one-second precision
                return stamp >= cutoff if inclusive else stamp > cutoff

            objs = [o for o in objs if modified(o)]
        for param, fieldname in ids.items():
            wanted = self._arg(request, param)
            if wanted:
                values = {v.strip().lower() for v in wanted.split(",") if v.strip()}
                objs = [o for o in objs if str(_get_path(o, fieldname) or "").lower() in values]
        where = self._arg(request, "where")
        if where:
            predicate = parse_where(where)
            objs = [o for o in objs if predicate(o)]
        order = self._arg(request, "order")
        if order:
            objs = sort_objects(objs, order)
        page_arg = self._arg(request, "page")
        if page_arg is None:
            if lines:
                objs = [{k: v for k, v in o.items() if k != "LineItems"} for o in objs]
            return objs, None
        try:
            page = max(1, int(page_arg))
            size_arg = self._arg(request, "pageSize")
            size = int(size_arg) if size_arg else self.settings.page_size_default
        except ValueError as exc:
            raise XeroValidation("page and pageSize must be integers") from exc
        size = max(1, min(size, self.settings.page_size_max))
        total = len(objs)
        pagination = {"page": page, "pageSize": size, "pageCount": -(-total // size), "itemCount": total}
        return objs[(page - 1) * size : page * size], {"pagination": pagination}

    def _elements(self, body: Any, key: str) -> list[Any]:
        if isinstance(body, dict) and isinstance(body.get(key), list):
            return list(body[key])
        if isinstance(body, dict):
            return [body]
        if isinstance(body, list):
            return body
        raise XeroValidation(f"The request body must hold {key}")

    def _invoice_for(self, org: Org, invoice_id: str) -> Obj:
        found = org.invoices.get(invoice_id) or next(
            (i for i in org.invoices.values() if i.get("InvoiceNumber") == invoice_id), None
        )
        if found is None:
            raise _Answer(self._not_found())
        return found

    # -------------------------------------------------------------------------------- Accounting API

    def _list_invoices(self, request: Request, org: Org) -> Response:
        objs = list(org.invoices.values())
        statuses = self._arg(request, "Statuses")
        if statuses:
            wanted = {s.strip().upper() for s in statuses.split(",")}
            objs = [o for o in objs if o.get("Status") in wanted]
        selected, extra = self._select(
            request,
            objs,
            {"IDs": "InvoiceID", "InvoiceNumbers": "InvoiceNumber", "ContactIDs": "Contact.ContactID"},
            lines=True,
        )
        return self._envelope("Invoices", selected, extra)

    def _get_invoice(self, request: Request, org: Org) -> Response:
        invoice = self._invoice_for(org, request.params["id"])
        if "application/pdf" in (request.header("Accept") or ""):
            return pdf_response(
                invoice_pdf(
                    f"{org.name}: invoice {invoice.get('InvoiceNumber', '')}",
                    f"Amount due {invoice.get('AmountDue', '')} {invoice.get('CurrencyCode', '')}",
                )
            )
        return self._envelope("Invoices", [invoice])

    def _online_invoice(self, request: Request, org: Org) -> Response:
        """`OnlineInvoices[0].OnlineInvoiceUrl`: sales invoices that were approved (not drafts, not voided)."""
        invoice = self._invoice_for(org, request.params["id"])
        if invoice.get("Type") != "ACCREC" or invoice.get("Status") not in ("AUTHORISED", "PAID"):
            return self._validation([], "An online invoice is only available for approved sales invoices")
        url = f"{self.ctx.base_url}/_sandbox/pay/xero/{invoice.get('InvoiceID')}"
        return self._envelope("OnlineInvoices", [{"OnlineInvoiceUrl": url}])

    def _put_invoices(self, request: Request, org: Org) -> Response:
        return self._write_invoices(request, org, create=True)

    def _post_invoices(self, request: Request, org: Org) -> Response:
        return self._write_invoices(request, org, create=False)

    def _write_invoices(self, request: Request, org: Org, *, create: bool) -> Response:
        path_id = request.params.get("id")
        if path_id is not None:
            self._invoice_for(org, path_id)
        elements = self._elements(self._body(request), "Invoices")
        summarize = self._flag(request, "summarizeErrors", True)
        now = self.ctx.now()
        results: list[Obj] = []
        failed = False
        # A summarized call is all or nothing: run it on copies and keep them only when every element passed.
        saved = (dict(org.invoices), dict(org.contacts))
        for element in elements:
            try:
                if not isinstance(element, dict):
                    raise XeroValidation("An invoice must be a JSON object")
                invoice = org.write_invoice(element, now, create=create, path_id=path_id)
                results.append({**invoice, "StatusAttributeString": "OK"} if not summarize else invoice)
            except XeroValidation as exc:
                failed = True
                errors = [{"Message": m} for m in exc.messages]
                results.append(
                    {**element, "StatusAttributeString": "ERROR", "HasErrors": True, "ValidationErrors": errors}
                    if isinstance(element, dict)
                    else {"ValidationErrors": errors}
                )
        if failed and summarize:
            org.invoices, org.contacts = saved
            return self._validation([r for r in results if r.get("ValidationErrors")])
        return self._envelope("Invoices", results)

    def _email(self, request: Request, org: Org) -> Response:
        invoice = self._invoice_for(org, request.params["id"])
        contact = org.contacts.get(invoice["Contact"]["ContactID"]) or invoice["Contact"]
        to = str(contact.get("EmailAddress") or "")
        if invoice.get("Type") != "ACCREC":
            raise XeroValidation("Only sales invoices (ACCREC) can be e-mailed")
        if invoice.get("Status") not in ("SUBMITTED", "AUTHORISED", "PAID"):
            raise XeroValidation(f"An invoice with status {invoice.get('Status')} cannot be e-mailed")
        if not to:
            raise XeroValidation("The contact has no e-mail address")
        values = {
            "number": invoice.get("InvoiceNumber", ""),
            "org": org.name,
            "contact": contact.get("Name", ""),
            "currency": invoice.get("CurrencyCode", ""),
            "amount_due": invoice.get("AmountDue", ""),
        }
        self.ctx.record_email(
            provider=self.name,
            tenant=org.tenant_id,
            invoice_id=invoice["InvoiceID"],
            to=to,
            subject=self.settings.email_subject.format(**values),
            body=self.settings.email_body.format(**values),
            # Xero copies the contact's persons marked IncludeInEmails.
            cc=[
                str(p["EmailAddress"])
                for p in contact.get("ContactPersons") or []
                if isinstance(p, Mapping) and p.get("IncludeInEmails") is True and p.get("EmailAddress")
            ],
        )
        if not invoice.get("SentToContact"):
            org.invoices[invoice["InvoiceID"]] = {**invoice, "SentToContact": True}
        return Response(204)

    def _get_history(self, request: Request, org: Org) -> Response:
        invoice = self._invoice_for(org, request.params["id"])
        return Response.json(200, {"HistoryRecords": org.history.get(invoice["InvoiceID"], [])})

    def _put_history(self, request: Request, org: Org) -> Response:
        invoice = self._invoice_for(org, request.params["id"])
        records = self._elements(self._body(request), "HistoryRecords")
        added: list[Obj] = []
        for record in records:
            details = str(record.get("Details") or "") if isinstance(record, dict) else ""
            if not details:
                raise XeroValidation("Details cannot be empty")
            if len(details) > 2500:
                raise XeroValidation("Details must be at most 2500 characters")
            added.append(
                {"Changes": "Note", "DateUTC": ms_date(self.ctx.now()), "User": "System Generated", "Details": details}
            )
        org.history.setdefault(invoice["InvoiceID"], []).extend(added)
        return Response.json(200, {"HistoryRecords": added})

    def _list_payments(self, request: Request, org: Org) -> Response:
        selected, extra = self._select(request, list(org.payments.values()), {})
        return self._envelope("Payments", selected, extra)

    def _get_payment(self, request: Request, org: Org) -> Response:
        found = org.payments.get(request.params["id"])
        if found is None:
            return self._not_found()
        return self._envelope("Payments", [found])

    def _put_payments(self, request: Request, org: Org) -> Response:
        elements = self._elements(self._body(request), "Payments")
        summarize = self._flag(request, "summarizeErrors", True)
        now = self.ctx.now()
        saved = (dict(org.invoices), dict(org.payments))
        results: list[Obj] = []
        failed = False
        for element in elements:
            try:
                if not isinstance(element, dict):
                    raise XeroValidation("A payment must be a JSON object")
                payment = org.create_payment(element, now)
                results.append({**payment, "StatusAttributeString": "OK"} if not summarize else payment)
            except XeroValidation as exc:
                failed = True
                errors = [{"Message": m} for m in exc.messages]
                results.append(
                    {
                        **(element if isinstance(element, dict) else {}),
                        "ValidationErrors": errors,
                        "StatusAttributeString": "ERROR",
                    }
                )
        if failed and summarize:
            org.invoices, org.payments = saved
            return self._validation([r for r in results if r.get("ValidationErrors")])
        return self._envelope("Payments", results)

    def _list_quotes(self, request: Request, org: Org) -> Response:
        """GET /Quotes (read only): If-Modified-Since, Status, QuoteNumber, ContactID, order and page, 100 quotes a
        page with their line items (no `where`, no `pageSize` in Xero's spec)."""
        objs = list(org.quotes.values())
        status = self._arg(request, "Status")
        if status:
            objs = [o for o in objs if o.get("Status") == status.strip().upper()]
        return self._envelope(
            "Quotes", *self._select(request, objs, {"QuoteNumber": "QuoteNumber", "ContactID": "Contact.ContactID"})
        )

    def _list_contacts(self, request: Request, org: Org) -> Response:
        selected, extra = self._select(request, list(org.contacts.values()), {"IDs": "ContactID"})
        return self._envelope("Contacts", selected, extra)

    def _get_contact(self, request: Request, org: Org) -> Response:
        found = org.contacts.get(request.params["id"])
        if found is None:
            return self._not_found()
        return self._envelope("Contacts", [found])

    def _reminders(self, request: Request, org: Org) -> Response:
        enabled = bool((org.reminders or {}).get("Enabled", False))
        return Response.json(200, {"InvoiceReminders": [{"Enabled": enabled}]})

    def _organisation(self, request: Request, org: Org) -> Response:
        body = {"OrganisationID": org.tenant_id, "Name": org.name, "BaseCurrency": "USD", **(org.organisation or {})}
        return self._envelope("Organisations", [body])

    def _reference(self, name: str) -> Callable[[Request, Org], Response]:
        """A read-only reference list, with If-Modified-Since, where and order like the other lists."""

        def answer(request: Request, org: Org) -> Response:
            selected, extra = self._select(request, org.reference[name], {})
            return self._envelope(name, selected, extra)

        return answer

    def _unsupported(self, request: Request, org: Org) -> Response:
        return self._not_found()

    # -------------------------------------------------------------------------------- identity

    def _connections(self, request: Request) -> Response:
        try:
            grant = self._grant_for(request)
        except _Answer as answer:
            return answer.response
        # Real Xero writes these without an offset ("2019-07-09T23:40:30.1833130"), which the official spec's
        # `format: date-time` refuses; the emulator follows the spec (UTC, "Z").
        stamp = (grant.created or self.ctx.now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return Response.json(
            200,
            [
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, grant.auth_event_id + org.tenant_id)),
                    "authEventId": grant.auth_event_id,
                    "tenantId": org.tenant_id,
                    "tenantType": "ORGANISATION",
                    "tenantName": org.name,
                    "createdDateUtc": stamp,
                    "updatedDateUtc": stamp,
                }
                for org in self.orgs.values()
            ],
        )

    def _authorize(self, request: Request) -> Response:
        """Sandbox only: consents at once and redirects back with a code."""
        asked = consent(request)
        if isinstance(asked, Response):
            return asked
        method = request.arg("code_challenge_method") or "plain"
        if request.arg("code_challenge") and method != "S256":
            return oauth_error(400, "invalid_request", "code_challenge_method must be S256")
        code = secrets.token_urlsafe(32)
        self.tokens.codes[code] = _Code(
            asked.client_id,
            asked.redirect_uri,
            asked.scope,
            self.ctx.now() + timedelta(seconds=self.settings.auth_code_ttl),
            request.arg("code_challenge") or "",
        )
        return asked.redirect(code)

    def _token(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        client_id = oauth_client_id(request, form, form_needs_secret=False)
        if client_id is None:
            return oauth_error(400, "invalid_client")
        grant_type = (form.get("grant_type") or [""])[0]
        now = self.ctx.now()
        if grant_type == "authorization_code":
            code = self.tokens.codes.pop((form.get("code") or [""])[0], None)
            if code is None or now >= code.expires or code.client_id != client_id:
                return oauth_error(400, "invalid_grant")
            if (form.get("redirect_uri") or [""])[0] != code.redirect_uri:
                return oauth_error(400, "invalid_grant")
            verifier = (form.get("code_verifier") or [""])[0]
            if code.challenge and pkce_challenge(verifier) != code.challenge:
                return oauth_error(400, "invalid_grant", "code_verifier does not match the code_challenge")
            grant = _Grant(client_id, code.scope, "", now, created=now)
            return self._issue(grant, now, rotate=True)
        if grant_type == "refresh_token":
            given = (form.get("refresh_token") or [""])[0]
            found = self.tokens.by_refresh.get(given)
            if found is None or found.client_id != client_id:
                return oauth_error(400, "invalid_grant")
            grant = found
            if given == grant.refresh_token:
                if now >= grant.refresh_expires:
                    return oauth_error(400, "invalid_grant")
                return self._issue(grant, now, rotate=True)
            # The previous refresh token: accepted again within the grace window only.
            if given != grant.previous_refresh or grant.previous_until is None or now >= grant.previous_until:
                return oauth_error(400, "invalid_grant")
            return self._issue(grant, now, rotate=not self.settings.grace_returns_current)
        return oauth_error(400, "unsupported_grant_type")

    def _issue(self, grant: _Grant, now: datetime, *, rotate: bool) -> Response:
        if rotate:
            if grant.previous_refresh:
                self.tokens.by_refresh.pop(grant.previous_refresh, None)
            if grant.refresh_token:
                grant.previous_refresh = grant.refresh_token
                grant.previous_until = now + timedelta(seconds=self.settings.refresh_grace_seconds)
            grant.refresh_token = secrets.token_urlsafe(32)
            grant.refresh_expires = now + timedelta(seconds=self.settings.refresh_token_ttl)
            self.tokens.by_refresh[grant.refresh_token] = grant
        access = "eyJ" + secrets.token_urlsafe(96)
        self.tokens.by_access[access] = (grant, now + timedelta(seconds=self.settings.access_token_ttl))
        body: Obj = {
            "access_token": access,
            "expires_in": self.settings.access_token_ttl,
            "token_type": "Bearer",
            "scope": grant.scope,
        }
        if "offline_access" in grant.scope.split():
            body["refresh_token"] = grant.refresh_token
        return Response.json(200, body)

    def _revoke(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0]
        grant = self.tokens.by_refresh.pop(token, None)
        if grant is not None:
            self.tokens.by_refresh.pop(grant.refresh_token, None)
            self.tokens.by_refresh.pop(grant.previous_refresh, None)
            for access, (owner, _exp) in list(self.tokens.by_access.items()):
                if owner is grant:
                    del self.tokens.by_access[access]
        return Response(200)


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _get_path(obj: Obj, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
