"""The FreshBooks emulator: OAuth 2 (`/oauth/authorize`, `/auth/oauth/token`), the identity endpoint and the
accounting resources under `/accounting/account/{account_id}/…`, in FreshBooks' own wire formats.

Seed section (docs/interfaces.md): `{"account_id", "invoices", "payments", "clients"}` as the API returns them
(invoices with their `lines`), plus optional `business` (`{"id", "name"}`) and `estimates` (read only: `id` and
`estimateid`, `estimate_number`, `customerid`, `amount` as money, `ui_status` such as draft, sent, accepted or
invoiced, `accepted`/`invoiced` flags, `updated`, `vis_state`; an invoice made from one carries its `estimateid`);
a list of such objects emulates several businesses reached by one token (the identity lists one membership per
account).

Rules kept (docs/providers.md, FreshBooks): the `{"response": {"result": …}}` envelope and the error envelope with
`errno`; money as `{"amount": "12.00", "code": "USD"}` strings; `updated` as US/Eastern wall time without an
offset; `search[updated_min]` with day granularity; `include[]=lines`; `page`/`per_page` (capped at 100);
`sort`; deleted objects (`vis_state` 1) left out of lists unless asked for; the update phases (a PUT with
`vis_state` or an action such as `action_email` does only that and drops the rest of the data silently);
`outstanding`/`paid`/`payment_status`/`v3_status`/`status`/`date_paid` kept consistent when payments are added;
409 on invoice-number collisions; single-use refresh tokens; token JSON with `created_at` and `expires_in`.
Behaviour we could not confirm is a `FreshBooksSettings` field (`Sandbox(options={"freshbooks": {...}})`).

Test hands (not part of the API): `provider.collide_next_creates` answers the next N invoice creations with
the 409 of a concurrent number collision; `provider.fail_next_emails_after_sending` sends the next N e-mails
and then answers 500, as a provider that did the work and lost the answer.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

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
    oauth_error,
    pdf_response,
    register_provider,
    route,
    settings_from,
)

Obj = dict[str, Any]

EASTERN = ZoneInfo("America/New_York")
DEFAULT_ACCOUNT_ID = "kX7mQ2"
MINUTE = 60.0
_CENT = Decimal("0.01")
V3_STATUS = {
    0: "disputed",
    1: "draft",
    2: "sent",
    3: "viewed",
    4: "paid",
    5: "auto-paid",
    6: "retry",
    7: "failed",
    8: "partial",
}
# Update phases in order of precedence: the first present is the only one carried out.
ACTIONS = ("action_email", "action_mark_as_sent")


@dataclass(frozen=True)
class FreshBooksSettings:
    """Emulator behaviour; defaults follow FreshBooks' documentation where there is one."""

    access_token_ttl: int = 43_200  # 12 hours
    auth_code_ttl: int = 600
    minute_limit: int = 600  # unsure: FreshBooks publishes no rate limit; 429 beyond this per account
    per_page_default: int = 15
    per_page_max: int = 100
    # unsure: whether a PUT's `lines` replaces the collection (lines left out are dropped) or merges
    put_lines_replace: bool = True
    # unsure: `search[updated_min]` compares the day of `updated` in US/Eastern (True) or in UTC (False)
    updated_min_eastern: bool = True
    email_subject: str = "{business} sent you an invoice ({number})"
    email_body: str = "Hi {client},\n\n{business} sent you invoice {number} for {amount} {currency}.\n"
    default_account_id: str = DEFAULT_ACCOUNT_ID
    default_business_name: str = "Demo Business"

    @classmethod
    def from_options(cls, options: Mapping[str, Json]) -> FreshBooksSettings:
        """Settings from `Sandbox(options={"freshbooks": {...}})`; unknown keys are refused."""
        return settings_from(cls, "freshbooks", options)


class FBError(Exception):
    """An error answer in FreshBooks' envelope."""

    def __init__(self, status: int, message: str, errno: int = 1001, field_name: str = "", value: Any = "") -> None:
        super().__init__(message)
        self.status = status
        self.errno = errno
        self.field = field_name
        self.value = value

    def response(self, obj: str = "") -> Response:
        """The error envelope."""
        error: Obj = {"errno": self.errno, "field": self.field, "message": str(self), "object": obj}
        error["value"] = "" if self.value is None else str(self.value)
        return Response.json(self.status, {"response": {"errors": [error]}})


def stamp(moment: datetime) -> str:
    """`updated` as FreshBooks writes it: US/Eastern wall time, no offset."""
    return moment.astimezone(EASTERN).strftime("%Y-%m-%d %H:%M:%S")


def _dec(value: Any, what: str) -> Decimal:
    if isinstance(value, Mapping):
        value = value.get("amount")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise FBError(400, f"{what} must be an amount (a string)", 2001, what, value)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise FBError(400, f"{what} must be an amount", 2001, what, value) from None
    if not amount.is_finite():
        raise FBError(400, f"{what} must be an amount", 2001, what, value)
    return amount


def _money(amount: Decimal, code: str) -> Obj:
    return {"amount": str(amount.quantize(_CENT, rounding=ROUND_HALF_UP)), "code": code}


def _day(value: Any, what: str) -> str:
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise FBError(400, f"{what} must be a date (YYYY-MM-DD)", 2002, what, value) from None


# ---------------------------------------------------------------------------------------------------- one account


class Account:
    """One FreshBooks business (account): clients, invoices, payments and the write rules."""

    def __init__(self, section: Mapping[str, Any], settings: FreshBooksSettings, index: int) -> None:
        self.settings = settings
        self.section_keys = list(section)
        self.account_id = str(section.get("account_id") or settings.default_account_id)
        self.business: Obj | None = section.get("business")
        self.index = index
        self.clients: dict[int, Obj] = {int(c["id"]): c for c in section.get("clients") or []}
        self.invoices: dict[int, Obj] = {int(i["id"]): i for i in section.get("invoices") or []}
        self.payments: dict[int, Obj] = {int(p["id"]): p for p in section.get("payments") or []}
        self.estimates: dict[int, Obj] = {int(e["id"]): e for e in section.get("estimates") or []}

    @property
    def name(self) -> str:
        """The business name (signs e-mails)."""
        return str((self.business or {}).get("name") or self.settings.default_business_name)

    @property
    def business_id(self) -> int:
        """The business id of the identity's membership."""
        return int((self.business or {}).get("id") or 4400 + self.index)

    def dump(self) -> Obj:
        """The seed section as the data stands now (shares stored objects)."""
        out: Obj = {"account_id": self.account_id}
        if self.business is not None:
            out["business"] = self.business
        out["invoices"] = list(self.invoices.values())
        out["payments"] = list(self.payments.values())
        out["clients"] = list(self.clients.values())
        if self.estimates or "estimates" in self.section_keys:
            out["estimates"] = list(self.estimates.values())
        order = {key: i for i, key in enumerate(self.section_keys)}
        return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))

    def _next_id(self, objs: Mapping[int, Obj], floor: int) -> int:
        return max([floor, *objs]) + 1

    def next_number(self) -> str:
        """The next free invoice number (FreshBooks numbers are zero-padded digits)."""
        top = 0
        for inv in self.invoices.values():
            number = str(inv.get("invoice_number") or "")
            if number.isdigit():
                top = max(top, int(number))
        return f"{top + 1:07d}"

    # -------------------------------------------------------------------------------- invoices

    def _lines(self, given: Any, previous: Sequence[Obj], code: str, invoice_id: int, now: datetime) -> list[Obj]:
        if not isinstance(given, list):
            raise FBError(400, "lines must be a list", 2003, "lines")
        by_id = {int(line["lineid"]): line for line in previous if "lineid" in line}
        next_id = max([0, *by_id]) + 1
        out: list[Obj] = []
        for index, entry in enumerate(given):
            if not isinstance(entry, Mapping):
                raise FBError(400, "a line must be an object", 2003, f"lines[{index}]")
            base: Obj = {}
            line_id = entry.get("lineid")
            if line_id is not None:
                try:
                    base = dict(by_id[int(line_id)])
                except (KeyError, ValueError):
                    raise FBError(400, f"line {line_id} is not on this invoice", 2003, "lineid", line_id) from None
            line = {**base, **{k: v for k, v in entry.items() if v is not None}}
            changed = line != base
            if not str(line.get("name") or "").strip() and not str(line.get("description") or "").strip():
                raise FBError(400, "a line needs a name or a description", 2003, f"lines[{index}].name")
            qty = _dec(line.get("qty", "1"), f"lines[{index}].qty")
            unit = _dec(line.get("unit_cost", {"amount": "0"}), f"lines[{index}].unit_cost")
            if "lineid" not in line:
                line["lineid"] = next_id
                next_id += 1
            line.update(
                invoiceid=invoice_id,
                qty=str(qty),
                unit_cost=_money(unit, code),
                amount=_money(qty * unit, code),
                type=int(line.get("type") or 0),
                name=str(line.get("name") or ""),
                description=str(line.get("description") or ""),
                updated=stamp(now) if changed else base.get("updated", stamp(now)),
            )
            out.append(line)
        return out

    def recompute(self, invoice: Obj) -> None:
        """Amount from the lines; paid, outstanding and the statuses from the payments."""
        code = str(invoice.get("currency_code") or "USD")
        lines = invoice.get("lines") or []
        total = sum((_dec(line.get("amount"), "amount") for line in lines), Decimal(0))
        live = [p for p in self.payments.values() if p.get("invoiceid") == invoice["id"] and p.get("vis_state") != 1]
        paid = sum((_dec(p.get("amount"), "amount") for p in live), Decimal(0))
        outstanding = max(total - paid, Decimal(0))
        invoice.update(amount=_money(total, code), paid=_money(paid, code), outstanding=_money(outstanding, code))
        status = int(invoice.get("status") or 0)
        if status == 1 and paid == 0:
            payment_status = "unpaid"
        elif outstanding == 0 and total > 0:
            status, payment_status = (5 if status == 5 else 4), "paid"
        elif paid > 0:
            status, payment_status = (0 if status == 0 else 8), "partial"
        else:
            status, payment_status = (status if status in (0, 2, 3, 6, 7) else 2), "unpaid"
        invoice.update(status=status, v3_status=V3_STATUS[status], payment_status=payment_status)
        invoice["display_status"] = invoice["v3_status"]
        last_paid = max((str(p.get("date")) for p in live), default=None)
        invoice["date_paid"] = last_paid if payment_status == "paid" else None

    def create_invoice(self, body: Obj, now: datetime, collide: bool) -> Obj:
        """POST …/invoices/invoices."""
        customer = body.get("customerid")
        try:
            client = self.clients[int(str(customer))]
        except (KeyError, TypeError, ValueError):
            raise FBError(400, "customerid must name a client of this account", 1012, "customerid", customer) from None
        number = body.get("invoice_number")
        if collide or (number and any(i.get("invoice_number") == number for i in self.invoices.values())):
            raise FBError(409, "Invoice number already exists", 2008, "invoice_number", number or self.next_number())
        code = str(body.get("currency_code") or client.get("currency_code") or "USD")
        invoice_id = self._next_id(self.invoices, 100)
        create_date = _day(body.get("create_date") or stamp(now)[:10], "create_date")
        if body.get("due_date"):
            due = _day(body["due_date"], "due_date")
            offset = (date.fromisoformat(due) - date.fromisoformat(create_date)).days
        else:
            offset = int(body.get("due_offset_days") or 0)
            due = (date.fromisoformat(create_date) + timedelta(days=offset)).isoformat()
        status = int(body.get("status") or 1)
        if status not in (1, 2):
            raise FBError(400, "a new invoice is a draft (1) or sent (2)", 2004, "status", status)
        invoice: Obj = {
            "id": invoice_id,
            "invoiceid": invoice_id,
            "accountid": self.account_id,
            "invoice_number": str(number or self.next_number()),
            "customerid": int(client["id"]),
            "organization": client.get("organization") or "",
            "fname": client.get("fname") or "",
            "lname": client.get("lname") or "",
            "create_date": create_date,
            "due_date": due,
            "due_offset_days": offset,
            "currency_code": code,
            "status": status,
            "vis_state": 0,
            "notes": str(body.get("notes") or ""),
            "terms": str(body.get("terms") or ""),
            "po_number": body.get("po_number"),
            "auto_bill": False,
            "created_at": stamp(now),
        }
        invoice["lines"] = self._lines(body.get("lines") or [], [], code, invoice_id, now)
        self.recompute(invoice)
        invoice["updated"] = stamp(now)
        self.invoices[invoice_id] = invoice
        return invoice

    def update_invoice(self, previous: Obj, body: Obj, now: datetime) -> tuple[Obj, str]:
        """PUT …/invoices/invoices/{id}: one phase only (vis_state, an action, or the data); returns the phase."""
        invoice = dict(previous)
        if "vis_state" in body:
            state = int(body["vis_state"])
            if state not in (0, 1, 2):
                raise FBError(400, "vis_state must be 0, 1 or 2", 2005, "vis_state", state)
            invoice["vis_state"] = state
            phase = "vis_state"
        elif any(body.get(a) for a in ACTIONS):
            phase = next(a for a in ACTIONS if body.get(a))
            if previous.get("vis_state") == 1:
                raise FBError(400, "a deleted invoice cannot be sent", 2006, phase)
            if int(invoice.get("status") or 0) == 1:
                invoice["status"] = 2
            self.recompute(invoice)
        else:
            phase = "data"
            if previous.get("vis_state") == 1:
                raise FBError(404, "Invoice not found.", 1012, "invoiceid", previous["id"])
            code = str(invoice.get("currency_code") or "USD")
            if "lines" in body and body["lines"] is not None:
                given = body["lines"]
                if not self.settings.put_lines_replace and isinstance(given, list):
                    named = {int(x["lineid"]) for x in given if isinstance(x, Mapping) and x.get("lineid") is not None}
                    kept = [{"lineid": x["lineid"]} for x in previous.get("lines") or [] if x["lineid"] not in named]
                    given = [*kept, *given]
                invoice["lines"] = self._lines(given, previous.get("lines") or [], code, int(previous["id"]), now)
            if body.get("due_date"):
                invoice["due_date"] = _day(body["due_date"], "due_date")
                delta = date.fromisoformat(invoice["due_date"]) - date.fromisoformat(str(invoice["create_date"]))
                invoice["due_offset_days"] = delta.days
            for key in ("notes", "terms", "po_number", "create_date"):
                if key in body and body[key] is not None:
                    invoice[key] = body[key]
            if "invoice_number" in body and body["invoice_number"] != previous.get("invoice_number"):
                number = body["invoice_number"]
                if any(i.get("invoice_number") == number for i in self.invoices.values()):
                    raise FBError(409, "Invoice number already exists", 2008, "invoice_number", number)
                invoice["invoice_number"] = number
            if "status" in body and int(body["status"]) == 0:
                invoice["status"] = 0  # the client disputes the invoice
            self.recompute(invoice)
        if invoice != previous:
            invoice["updated"] = stamp(now)
        self.invoices[int(invoice["id"])] = invoice
        return invoice, phase

    # -------------------------------------------------------------------------------- payments

    def create_payment(self, body: Obj, now: datetime) -> Obj:
        """POST …/payments/payments: applies to one invoice; the invoice's amounts and statuses follow."""
        try:
            invoice = self.invoices[int(body.get("invoiceid"))]  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            raise FBError(400, "invoiceid must name an invoice", 1012, "invoiceid", body.get("invoiceid")) from None
        if invoice.get("vis_state") == 1:
            raise FBError(400, "a deleted invoice cannot be paid", 2006, "invoiceid", invoice["id"])
        amount = _dec(body.get("amount"), "amount")
        if amount <= 0:
            raise FBError(400, "amount must be greater than zero", 2001, "amount", amount)
        if amount > _dec(invoice["outstanding"], "outstanding"):
            raise FBError(400, "amount is more than the invoice's outstanding amount", 2001, "amount", amount)
        payment_id = self._next_id(self.payments, 5000)
        code = str(invoice.get("currency_code") or "USD")
        payment: Obj = {
            "id": payment_id,
            "logid": payment_id,
            "invoiceid": invoice["id"],
            "clientid": invoice["customerid"],
            "accounting_systemid": self.account_id,
            "amount": _money(amount, code),
            "date": _day(body.get("date") or stamp(now)[:10], "date"),
            "type": str(body.get("type") or "Check"),
            "note": str(body.get("note") or ""),
            "vis_state": 0,
            "updated": stamp(now),
        }
        self.payments[payment_id] = payment
        updated = dict(invoice)
        self.recompute(updated)
        updated["updated"] = stamp(now)
        self.invoices[int(updated["id"])] = updated
        return payment

    def update_payment(self, previous: Obj, body: Obj, now: datetime) -> Obj:
        """PUT …/payments/payments/{id}: delete or restore (`vis_state`), or change the date, note or amount."""
        payment = dict(previous)
        if "vis_state" in body:
            payment["vis_state"] = int(body["vis_state"])
        else:
            code = str((previous.get("amount") or {}).get("code") or "USD")
            if "amount" in body:
                payment["amount"] = _money(_dec(body["amount"], "amount"), code)
            if "date" in body:
                payment["date"] = _day(body["date"], "date")
            if "note" in body:
                payment["note"] = str(body["note"] or "")
        payment["updated"] = stamp(now)
        self.payments[int(payment["id"])] = payment
        invoice = self.invoices.get(int(payment.get("invoiceid") or 0))
        if invoice is not None:  # the invoice's paid, outstanding and statuses follow its payments
            updated = dict(invoice)
            self.recompute(updated)
            updated["updated"] = stamp(now)
            self.invoices[int(updated["id"])] = updated
        return payment


# ---------------------------------------------------------------------------------------------------- OAuth state


@dataclass
class _Grant:
    client_id: str
    scope: str
    refresh_token: str = ""


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scope: str
    expires: datetime


@dataclass
class _Tokens:
    codes: dict[str, _Code] = field(default_factory=dict)
    by_refresh: dict[str, _Grant] = field(default_factory=dict)
    by_access: dict[str, tuple[_Grant, datetime]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- the provider


@register_provider
class FreshBooksProvider(Provider):
    """The FreshBooks emulator."""

    name = "freshbooks"
    default_rate_limits = (RateLimit(600, MINUTE),)

    def __init__(self, ctx: SandboxContext, options: Mapping[str, Json] | None = None) -> None:
        super().__init__(ctx, options)
        self.settings = FreshBooksSettings.from_options(self.options)
        self.__dict__["default_rate_limits"] = (RateLimit(self.settings.minute_limit, MINUTE),)
        self.accounts: dict[str, Account] = {}
        self._as_list = False
        self.tokens = _Tokens()  # not part of the seed: a reset keeps linked connections working
        self.collide_next_creates = 0
        self.fail_next_emails_after_sending = 0
        # Webhook callbacks per account (not part of the seed, like tokens): id → callback, with its verifier.
        self.callbacks: dict[str, dict[int, Obj]] = {}

    # -------------------------------------------------------------------------------- Provider

    def load(self, seed: Json | None) -> None:
        """Load the `freshbooks` seed section (an object, or a list of them for several businesses)."""
        sections: list[Any]
        if seed is None:
            sections, self._as_list = [{"account_id": self.settings.default_account_id}], False
        elif isinstance(seed, list):
            sections, self._as_list = seed, True
        else:
            sections, self._as_list = [seed], False
        accounts = [Account(s, self.settings, i) for i, s in enumerate(sections)]
        self.accounts = {a.account_id: a for a in accounts}
        self.collide_next_creates = 0
        self.fail_next_emails_after_sending = 0

    def dump(self) -> Json:
        """The `freshbooks` seed section as the data stands now."""
        dumped = [a.dump() for a in self.accounts.values()]
        return dumped if self._as_list else dumped[0]

    def describe(self, base_url: str) -> dict[str, str]:
        """Where freshbooks-sdk should point (`FRESHBOOKS_API_URL` / `FRESHBOOKS_AUTH_URL`)."""
        return {
            "api": base_url,
            "token": f"{base_url}/auth/oauth/token",
            "authorize": f"{base_url}/oauth/authorize",
            "accounts": ",".join(self.accounts),
        }

    def tenant_of(self, request: Request) -> str | None:
        """Rate limits are per account (the `account` path group; None on OAuth and identity routes)."""
        return request.params.get("account")

    def routes(self) -> Sequence[Route]:
        """OAuth, identity and accounting routes."""
        acct = r"/accounting/account/(?P<account>[^/]+)"
        inv, pay, cli = acct + r"/invoices/invoices", acct + r"/payments/payments", acct + r"/users/clients"
        est = acct + r"/estimates/estimates"
        one = r"/(?P<id>[^/]+)/?"
        events = r"/events/account/(?P<account>[^/]+)/events/callbacks"
        return [
            route("GET", r"/(?:service/auth/)?oauth/authorize/?", self._authorize, api=False),
            route("POST", r"/auth/oauth/token/?", self._token, api=False),
            route("GET", r"/auth/api/v1/users/me/?", self._me, api=False, name="me"),
            route("GET", inv + r"/?", self._api(self._list_invoices), name="invoices"),
            route("POST", inv + r"/?", self._api(self._create_invoice), name="invoices.create"),
            route("GET", inv + r"/(?P<id>[^/]+)/pdf/?", self._api(self._invoice_pdf), name="invoice.pdf"),
            route("GET", inv + r"/(?P<id>[^/]+)/share_link/?", self._api(self._share_link), name="invoice.share_link"),
            route("GET", inv + one, self._api(self._get_invoice), name="invoice"),
            route("PUT", inv + one, self._api(self._put_invoice), name="invoice.update"),
            route("DELETE", inv + one, self._api(self._delete_invoice), name="invoice.delete"),
            route("GET", pay + r"/?", self._api(self._list_payments), name="payments"),
            route("POST", pay + r"/?", self._api(self._create_payment), name="payments.create"),
            route("GET", pay + one, self._api(self._get_payment), name="payment"),
            route("PUT", pay + one, self._api(self._put_payment), name="payment.update"),
            route("GET", cli + r"/?", self._api(self._list_clients), name="clients"),
            route("GET", est + r"/?", self._api(self._list_estimates), name="estimates"),
            route("GET", est + one, self._api(self._get_estimate), name="estimate"),
            route("GET", cli + one, self._api(self._get_client), name="client"),
            route("PUT", cli + one, self._api(self._put_client), name="client.update"),
            route("*", acct + r"(?:/.*)?", self._api(self._unsupported), name="unsupported"),
            route("POST", events + r"/?", self._api(self._create_callback), name="callbacks.create"),
            route("GET", events + r"/?", self._api(self._list_callbacks), name="callbacks"),
            route("PUT", events + one, self._api(self._verify_callback), name="callback.verify"),
        ]

    def fault_response(self, kind: str, retry_after: int | None) -> Response:
        """Injected faults in FreshBooks' shapes."""
        if kind == "429":
            return self._throttled(retry_after)
        if kind == "expired_token":
            return self._unauthorized("The access token expired (injected fault)")
        status = 503 if kind == "503" else 500
        return FBError(status, "An unexpected error occurred", 1000 + status).response()

    def throttle_response(self, limit: RateLimit, retry_after: int) -> Response:
        """The configured rate limit was exceeded (FreshBooks publishes none)."""
        return self._throttled(retry_after)

    # -------------------------------------------------------------------------------- answers

    @staticmethod
    def _throttled(retry_after: int | None) -> Response:
        response = FBError(429, "Too many requests: slow down", 1429).response()
        if retry_after is not None:
            response.headers.append(("Retry-After", str(retry_after)))
        return response

    @staticmethod
    def _unauthorized(detail: str) -> Response:
        response = FBError(401, detail, 1003).response()
        response.headers.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
        return response

    @staticmethod
    def _result(value: Obj) -> Response:
        return Response.json(200, {"response": {"result": value}})

    # -------------------------------------------------------------------------------- plumbing

    def _grant_for(self, request: Request) -> _Grant | Response:
        header = request.header("Authorization") or ""
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        found = self.tokens.by_access.get(token) if token else None
        if found is None:
            return self._unauthorized("The server could not verify that you are authorized to access the URL")
        grant, expires = found
        if self.ctx.now() >= expires:
            return self._unauthorized("The access token expired")
        return grant

    def _api(self, fn: Callable[[Request, Account], Response]) -> Callable[[Request], Response]:
        """Auth, account and error rendering around a handler."""

        def handle(request: Request) -> Response:
            grant = self._grant_for(request)
            if isinstance(grant, Response):
                return grant
            account = self.accounts.get(request.params.get("account", ""))
            if account is None:
                return FBError(403, "You do not have access to this account", 1002, "account_id").response()
            try:
                return fn(request, account)
            except FBError as exc:
                return exc.response()

        return handle

    @staticmethod
    def _body(request: Request, key: str) -> Obj:
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise FBError(400, f"the request body is not valid JSON: {exc}", 2000) from None
        inner = body.get(key) if isinstance(body, Mapping) else None
        if not isinstance(inner, Mapping):
            raise FBError(400, f'the request body must be {{"{key}": {{…}}}}', 2000, key)
        return dict(inner)

    def _list(self, request: Request, objs: list[Obj], key: str, ids: Mapping[str, str]) -> Response:
        """search[…] filters, vis_state, sort and paging over stored objects."""
        search: dict[str, list[str]] = {}
        for name, values in request.query.items():
            if name.startswith("search["):
                inner = name[len("search[") :].split("]", 1)[0]
                search.setdefault(inner, []).extend(values)
        wanted_states = {0, 2}
        if "vis_state" in search:
            try:
                wanted_states = {int(v) for v in search.pop("vis_state")}
            except ValueError:
                raise FBError(400, "vis_state must be 0, 1 or 2", 2005, "vis_state") from None
        objs = [o for o in objs if int(o.get("vis_state") or 0) in wanted_states]
        for name, values in search.items():
            if name in ("updated_min", "updated_max"):
                day = _day(values[0], name)

                def day_of(obj: Obj) -> str:
                    text = str(obj.get("updated") or "")
                    if self.settings.updated_min_eastern or len(text) < 19:
                        return text[:10]
                    local = datetime.fromisoformat(text[:19]).replace(tzinfo=EASTERN)
                    return local.astimezone(ZoneInfo("UTC")).date().isoformat()

                if name == "updated_min":
                    objs = [o for o in objs if day_of(o) >= day]
                else:
                    objs = [o for o in objs if day_of(o) <= day]
            elif name in ids:
                field_name = ids[name]
                allowed = {str(v) for v in values}
                objs = [o for o in objs if str(o.get(field_name)) in allowed]
            else:
                objs = [o for o in objs if str(o.get(name)) == values[0]]
        sort = request.arg("sort")
        if sort:
            field_name, _, direction = sort.rpartition("_")
            if direction not in ("asc", "desc") or not field_name:
                raise FBError(400, f"sort {sort!r} must be FIELD_asc or FIELD_desc", 2007, "sort", sort)
            objs = sorted(objs, key=lambda o: (str(o.get(field_name) or ""), int(o["id"])))
            if direction == "desc":
                objs.reverse()
        try:
            page = max(1, int(request.arg("page") or 1))
            per_page = int(request.arg("per_page") or self.settings.per_page_default)
        except ValueError:
            raise FBError(400, "page and per_page must be integers", 2007, "page") from None
        per_page = max(1, min(per_page, self.settings.per_page_max))
        total = len(objs)
        chosen = objs[(page - 1) * per_page : page * per_page]
        # Lines and a client's contacts come only when asked for (`include[]=lines`, `include[]=contacts`).
        optional = {"invoices": "lines", "clients": "contacts"}.get(key)
        if optional is not None and optional not in request.query.get("include[]", []):
            chosen = [{k: v for k, v in o.items() if k != optional} for o in chosen]
        result = {key: chosen, "page": page, "pages": max(1, -(-total // per_page)), "per_page": per_page}
        result["total"] = total
        return self._result(result)

    @staticmethod
    def _find(objs: Mapping[int, Obj], request: Request, what: str) -> Obj:
        try:
            return objs[int(request.params["id"])]
        except (KeyError, ValueError):
            raise FBError(404, f"{what} not found.", 1012, f"{what.lower()}id", request.params.get("id")) from None

    def _invoice_out(self, request: Request, invoice: Obj) -> Obj:
        if "lines" in request.query.get("include[]", []):
            return invoice
        return {k: v for k, v in invoice.items() if k != "lines"}

    # -------------------------------------------------------------------------------- accounting

    def _list_invoices(self, request: Request, account: Account) -> Response:
        ids = {"invoiceids": "id", "customerids": "customerid", "invoice_numbers": "invoice_number"}
        return self._list(request, list(account.invoices.values()), "invoices", ids)

    def _get_invoice(self, request: Request, account: Account) -> Response:
        invoice = self._find(account.invoices, request, "Invoice")
        return self._result({"invoice": self._invoice_out(request, invoice)})

    def _invoice_pdf(self, request: Request, account: Account) -> Response:
        invoice = self._find(account.invoices, request, "Invoice")
        outstanding = invoice.get("outstanding") or {}
        return pdf_response(
            invoice_pdf(
                f"Invoice {invoice.get('invoice_number', '')}",
                f"Outstanding {outstanding.get('amount', '')} {outstanding.get('code', '')}",
            )
        )

    def _share_link(self, request: Request, account: Account) -> Response:
        """The client's link to the invoice; FreshBooks answers 422 for an invoice not sent yet (a draft)."""
        invoice = self._find(account.invoices, request, "Invoice")
        if invoice.get("status") == 1:
            raise FBError(
                422, "The invoice must be sent before it can be shared.", 7001, "invoiceid", str(invoice["id"])
            )
        link = {
            "clientid": invoice.get("customerid"),
            "resource_type": "invoice",
            "resourceid": str(invoice["id"]),
            "share_link": f"{self.ctx.base_url}/_sandbox/pay/freshbooks/{invoice['id']}",
            "share_method": request.arg("share_method") or "share_link",
        }
        return self._result({"share_link": link})

    def _create_invoice(self, request: Request, account: Account) -> Response:
        body = self._body(request, "invoice")
        collide = self.collide_next_creates > 0
        if collide:
            self.collide_next_creates -= 1
        invoice = account.create_invoice(body, self.ctx.now(), collide)
        return self._result({"invoice": self._invoice_out(request, invoice)})

    def _put_invoice(self, request: Request, account: Account) -> Response:
        previous = self._find(account.invoices, request, "Invoice")
        body = self._body(request, "invoice")
        invoice, phase = account.update_invoice(previous, body, self.ctx.now())
        if phase == "action_email":
            self._send_email(account, invoice, body)
            if self.fail_next_emails_after_sending > 0:
                self.fail_next_emails_after_sending -= 1
                return FBError(500, "An unexpected error occurred", 1500).response()
        return self._result({"invoice": self._invoice_out(request, invoice)})

    def _send_email(self, account: Account, invoice: Obj, body: Obj) -> None:
        client = account.clients.get(int(invoice.get("customerid") or 0)) or {}
        recipients = body.get("email_recipients") or ([client["email"]] if client.get("email") else [])
        if not isinstance(recipients, list) or not all(isinstance(r, str) and "@" in r for r in recipients):
            raise FBError(400, "email_recipients must be a list of e-mail addresses", 2009, "email_recipients")
        if not recipients:
            raise FBError(400, "the client has no e-mail address", 2009, "email_recipients")
        custom = body.get("invoice_customized_email")
        custom = custom if isinstance(custom, Mapping) else {}
        values = {
            "business": account.name,
            "number": invoice.get("invoice_number", ""),
            "client": client.get("organization") or f"{client.get('fname', '')} {client.get('lname', '')}".strip(),
            "amount": (invoice.get("outstanding") or {}).get("amount", ""),
            "currency": invoice.get("currency_code", ""),
        }
        self.ctx.record_email(
            provider=self.name,
            tenant=account.account_id,
            invoice_id=str(invoice["id"]),
            to=", ".join(recipients),
            subject=str(custom.get("subject") or self.settings.email_subject.format(**values)),
            body=str(custom.get("body") or self.settings.email_body.format(**values)),
        )

    def _delete_invoice(self, request: Request, account: Account) -> Response:
        previous = self._find(account.invoices, request, "Invoice")
        invoice, _ = account.update_invoice(previous, {"vis_state": 1}, self.ctx.now())
        return self._result({"invoice": self._invoice_out(request, invoice)})

    def _list_payments(self, request: Request, account: Account) -> Response:
        ids = {"invoiceids": "invoiceid", "clientids": "clientid", "paymentids": "id"}
        return self._list(request, list(account.payments.values()), "payments", ids)

    def _get_payment(self, request: Request, account: Account) -> Response:
        return self._result({"payment": self._find(account.payments, request, "Payment")})

    def _create_payment(self, request: Request, account: Account) -> Response:
        payment = account.create_payment(self._body(request, "payment"), self.ctx.now())
        return self._result({"payment": payment})

    def _put_payment(self, request: Request, account: Account) -> Response:
        payment = account.update_payment(
            self._find(account.payments, request, "Payment"), self._body(request, "payment"), self.ctx.now()
        )
        return self._result({"payment": payment})

    def _list_estimates(self, request: Request, account: Account) -> Response:
        """Estimates (read only), listed like the other resources (`search[updated_min]`, vis_state, sort, pages)."""
        ids = {"estimateids": "id", "customerids": "customerid"}
        return self._list(request, list(account.estimates.values()), "estimates", ids)

    def _get_estimate(self, request: Request, account: Account) -> Response:
        return self._result({"estimate": self._find(account.estimates, request, "Estimate")})

    def _list_clients(self, request: Request, account: Account) -> Response:
        ids = {"userids": "id", "clientids": "id"}
        return self._list(request, list(account.clients.values()), "clients", ids)

    def _get_client(self, request: Request, account: Account) -> Response:
        return self._result({"client": self._find(account.clients, request, "Client")})

    def _put_client(self, request: Request, account: Account) -> Response:
        client = dict(self._find(account.clients, request, "Client"))
        body = self._body(request, "client")
        for key in ("email", "organization", "fname", "lname", "allow_late_fees", "allow_late_notifications"):
            if key in body:
                client[key] = body[key]
        if "vis_state" in body:
            client["vis_state"] = int(body["vis_state"])
        client["updated"] = stamp(self.ctx.now())
        account.clients[int(client["id"])] = client
        return self._result({"client": client})

    def _unsupported(self, request: Request, account: Account) -> Response:
        return FBError(404, "The requested resource was not found.", 1012).response()

    # -------------------------------------------------------------------------------- OAuth and identity

    def _authorize(self, request: Request) -> Response:
        """Sandbox only: consents at once and redirects back with a code."""
        asked = consent(request)
        if isinstance(asked, Response):
            return asked
        code = secrets.token_urlsafe(24)
        expires = self.ctx.now() + timedelta(seconds=self.settings.auth_code_ttl)
        self.tokens.codes[code] = _Code(asked.client_id, asked.redirect_uri, asked.scope, expires)
        return asked.redirect(code)

    def _token(self, request: Request) -> Response:
        """Form or JSON body with client_id, client_secret, grant_type, redirect_uri and a code or refresh token."""
        form: dict[str, str]
        if (request.header("Content-Type") or "").startswith("application/json"):
            try:
                body = request.json()
            except (ValueError, UnicodeDecodeError):
                return oauth_error(400, "invalid_request", "the body is not JSON")
            form = {str(k): str(v) for k, v in (body or {}).items()} if isinstance(body, Mapping) else {}
        else:
            parsed = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
            form = {k: v[0] for k, v in parsed.items()}
        client_id = form.get("client_id", "")
        if not client_id or not form.get("client_secret"):
            return oauth_error(401, "invalid_client", "client_id and client_secret are required")
        now = self.ctx.now()
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            code = self.tokens.codes.pop(form.get("code", ""), None)
            if code is None or now >= code.expires or code.client_id != client_id:
                return oauth_error(400, "invalid_grant", "The provided authorization grant is invalid or expired")
            if form.get("redirect_uri") != code.redirect_uri:
                return oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request")
            return self._issue(_Grant(client_id, code.scope or "user:profile:read"), now)
        if grant_type == "refresh_token":
            grant = self.tokens.by_refresh.pop(form.get("refresh_token", ""), None)  # single use
            if grant is None or grant.client_id != client_id:
                return oauth_error(400, "invalid_grant", "The refresh token is invalid, used or revoked")
            return self._issue(grant, now)
        return oauth_error(400, "unsupported_grant_type")

    def _issue(self, grant: _Grant, now: datetime) -> Response:
        grant.refresh_token = secrets.token_urlsafe(32)
        self.tokens.by_refresh[grant.refresh_token] = grant
        access = secrets.token_urlsafe(48)
        self.tokens.by_access[access] = (grant, now + timedelta(seconds=self.settings.access_token_ttl))
        body: Obj = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_ttl,
            "refresh_token": grant.refresh_token,
            "scope": grant.scope,
            "created_at": int(now.timestamp()),
            "direct_buy_tokens": {},
        }
        return Response.json(200, body)

    # -------------------------------------------------------------------------------- webhook callbacks

    def webhook_targets(self, change: Any) -> list[tuple[str, str]]:
        """Verified callbacks of the change's account whose event names it (`invoice.update`, or `invoice`)."""
        wanted = {change.entity, f"{change.entity}.{change.operation}"}
        return [
            (str(cb["uri"]), str(cb["_verifier"]))
            for cb in self.callbacks.get(change.tenant, {}).values()
            if cb["verified"] and cb["event"] in wanted
        ]

    @staticmethod
    def _callback_json(cb: Obj) -> Obj:
        return {k: v for k, v in cb.items() if not k.startswith("_")}

    def _create_callback(self, request: Request, account: Account) -> Response:
        """Register a callback; FreshBooks then POSTs a verifier to its address, to be sent back (PUT)."""
        body = self._body(request, "callback")
        event, uri = body.get("event"), body.get("uri")
        if not isinstance(event, str) or not event or not isinstance(uri, str) or not uri.startswith("http"):
            raise FBError(400, "a callback needs an event and an http(s) uri", 2001, "callback")
        mine = self.callbacks.setdefault(account.account_id, {})
        callback_id = max((*mine, 2000)) + 1
        cb: Obj = {
            "callbackid": callback_id,
            "id": callback_id,
            "event": event,
            "uri": uri,
            "verified": False,
            "_verifier": secrets.token_urlsafe(24),
        }
        mine[callback_id] = cb
        self._send_verifier(account, cb)
        return self._result({"callback": self._callback_json(cb)})

    def _send_verifier(self, account: Account, cb: Obj) -> None:
        fields = [
            ("name", "callback.verify"),
            ("object_id", str(cb["callbackid"])),
            ("account_id", account.account_id),
            ("verifier", str(cb["_verifier"])),
        ]
        self.ctx.deliver_form(self.name, str(cb["uri"]), fields)

    def _list_callbacks(self, request: Request, account: Account) -> Response:
        found = [self._callback_json(cb) for cb in self.callbacks.get(account.account_id, {}).values()]
        return self._result({"callbacks": found, "page": 1, "pages": 1, "per_page": 100, "total": len(found)})

    def _verify_callback(self, request: Request, account: Account) -> Response:
        """`{"callback": {"verifier": ...}}` confirms it; `{"callback": {"resend": true}}` sends the verifier again."""
        body = self._body(request, "callback")
        try:
            cb = self.callbacks.get(account.account_id, {})[int(request.params["id"])]
        except (KeyError, ValueError):
            raise FBError(404, "Callback not found", 1012, "callback") from None
        if body.get("resend") is True:
            self._send_verifier(account, cb)
        elif body.get("verifier") == cb["_verifier"]:
            cb["verified"] = True
        else:
            raise FBError(400, "The verifier is not the one sent to the callback's uri", 2002, "verifier")
        return self._result({"callback": self._callback_json(cb)})

    def _me(self, request: Request) -> Response:
        grant = self._grant_for(request)
        if isinstance(grant, Response):
            return grant
        memberships = [
            {
                "id": 9000 + account.index,
                "role": "owner",
                "business": {
                    "id": account.business_id,
                    "name": account.name,
                    "account_id": account.account_id,
                    "date_format": "mm/dd/yyyy",
                },
            }
            for account in self.accounts.values()
        ]
        me = {
            "id": 7001,
            "identity_id": 7001,
            "first_name": "Sandbox",
            "last_name": "Owner",
            "email": "owner@sandbox.example",
            "business_memberships": memberships,
            "roles": [
                {"id": 8000 + a.index, "role": "admin", "accountid": a.account_id} for a in self.accounts.values()
            ],
        }
        return Response.json(200, {"response": me})
