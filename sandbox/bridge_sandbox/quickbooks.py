"""QuickBooks Online emulator: OAuth 2.0 (as intuit-oauth drives it) and the v3 Accounting API
(as python-quickbooks drives it), on the real paths and wire formats.

OAuth (any client id / secret is accepted; the consent page consents at once):

    GET  /.well-known/openid_configuration       discovery document (intuitlib reads it when
                                                 `environment` is a URL)
    GET  /connect/oauth2                         302 → redirect_uri?code=…&state=…&realmId=…
    POST /oauth2/v1/tokens/bearer                authorization_code / refresh_token grants (HTTP Basic)
    POST /v2/oauth2/tokens/revoke                revoke a refresh or access token
    GET  /v1/openid_connect/userinfo, /oauth2/v1/certs

API under /v3/company/{realmId}/: query (GET ?query= or POST application/text), cdc, batch,
{invoice,payment,customer,item,estimate} read / create / update (sparse or full) / delete, invoice void,
invoice send, invoice pdf, companyinfo. Every rule the service enforces that a connector can
trip over is kept: SyncToken (5010), requestid replay, MAXRESULTS ≤ 1000, CDC 30-day window
and 1,000-per-entity cap, batch ≤ 30 items, 401/3200 and 403/3100 bodies, 429/3001 throttling.

Behaviour that could not be confirmed against the live service is a `QuickBooksSettings`
field (pass `Sandbox(options={"quickbooks": {...}})`).

Seed section (`"quickbooks"`): `{"realm_id", "CompanyInfo"?, "Customer": [...], "Item": [...],
"Invoice": [...], "Payment": [...], "Estimate"?: [...], "Deleted"?: [{"type": "Invoice", "Id": "…", "MetaData":
{"LastUpdatedTime": "…"}}]}`, or a list of such sections for several companies. Objects are
stored as given; `Deleted` holds tombstones (what `/cdc` reports as `status: "Deleted"`). An Estimate has
`TotalAmt` and `TxnStatus` (Pending, Accepted, Closed once invoiced, Rejected); an invoice made from one carries
`LinkedTxn: [{"TxnId": "<estimate Id>", "TxnType": "Estimate"}]` (Intuit's "Manage linked transactions" guide).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
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
    clone,
    consent,
    invoice_pdf,
    loads,
    oauth_client_id,
    oauth_error,
    pdf_response,
    register_provider,
    route,
    settings_from,
)
from bridge_sandbox.quickbooks_query import QueryError, as_instant, parse_query, project, run_query

Obj = dict[str, Any]

DEFAULT_REALM_ID = "9341453215647712"
ENTITIES: tuple[str, ...] = ("Customer", "Item", "Invoice", "Payment", "Estimate")
TXN_ENTITIES = ("Invoice", "Payment", "Estimate")  # transactions share one id sequence here
NAME_ENTITIES = frozenset({"Customer", "Item"})
_ENTITY_BY_LOWER = {e.lower(): e for e in ENTITIES}
_CENT = Decimal("0.01")
_NUMERIC_KEYS = frozenset(
    {
        "Amount",
        "UnitPrice",
        "Qty",
        "TotalAmt",
        "Balance",
        "UnappliedAmt",
        "TotalTax",
        "DiscountPercent",
        "TaxInclusiveAmt",
        "ExchangeRate",
        "Deposit",
        "HomeBalance",
        "HomeTotalAmt",
        "BalanceWithJobs",
    }
)
# Fields the service computes: whatever a client sends for them is ignored.
_SYSTEM_KEYS = frozenset({"Id", "SyncToken", "sparse", "domain", "MetaData", "status"})
_COMPUTED_KEYS: dict[str, frozenset[str]] = {
    "Invoice": frozenset({"TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt"}),
    "Payment": frozenset({"UnappliedAmt"}),
    "Estimate": frozenset({"TotalAmt"}),
    "Customer": frozenset({"FullyQualifiedName", "Level"}),
    "Item": frozenset({"FullyQualifiedName", "Level"}),
}

# Fault codes. Those marked "unsure" could not be confirmed against the live service.
CODE_AUTH = 3200
CODE_FORBIDDEN = 3100
CODE_THROTTLE = 3001
CODE_NOT_FOUND = 610
CODE_STALE = 5010
CODE_REQUIRED = 2020
CODE_INVALID_REF = 2500
CODE_QUERY_PARSE = 4000
CODE_QUERY_INVALID = 4001
CODE_UNSUPPORTED = 500
CODE_DUPLICATE_NAME = 6240
CODE_BUSINESS = 6000
CODE_INVALID_REQUEST = 2010  # unsure: malformed body, batch over 30 items, CDC older than 30 days, long requestid
CODE_SYSTEM = 10000


@dataclass(frozen=True)
class QuickBooksSettings:
    """Emulator behaviour; the defaults follow the published documentation where there is one."""

    access_token_ttl: int = 3600
    refresh_token_ttl: int = 8_726_400  # x_refresh_token_expires_in as the service reports it (~101 days)
    # x_refresh_token_hard_expires_in, sent when the token call asks for it: five years from consent (2025 policy)
    refresh_token_hard_ttl: int = 157_680_000
    rotate_refresh_tokens: bool = True  # unsure: the real service may hand back the same value within ~24 h
    auth_code_ttl: int = 600
    auth_fault_style: str = "lowercase"  # "lowercase" (the gateway's {"fault":{"error":[…]}}) or "Fault"
    company_name: str = ""  # overrides CompanyInfo.CompanyName in e-mails
    company_timezone: str = "America/Los_Angeles"  # offsets in MetaData timestamps (QBO reports Pacific time)
    cdc_lookback_days: int = 30
    cdc_max_per_entity: int = 1000
    cdc_newest_first: bool = False  # unsure: which 1,000 objects CDC keeps when more changed
    query_max_results: int = 1000
    query_default_max_results: int = 100
    batch_max_items: int = 30
    # Intuit's published throttles, per realm: 500 requests a minute, 10 in flight at once, and 40 batch
    # requests a minute (developer.intuit.com, "API call limits and throttles").
    minute_limit: int = 500
    concurrent_limit: int = 10
    batch_minute_limit: int = 40
    requestid_max_length: int = 50  # unsure: whether the service refuses or ignores longer ids
    replay_faults: bool = False  # unsure: whether a Fault answer is replayed for a repeated requestid
    payment_bumps_invoice: bool = True  # unsure: whether applying a payment bumps the invoice's SyncToken
    send_updates_bill_email: bool = True  # /send?sendTo= also sets BillEmail.Address (as documented)
    default_terms_days: int = 30
    hide_inactive_names: bool = True  # Customer/Item queries skip Active=false unless the query names Active
    default_realm_id: str = DEFAULT_REALM_ID

    @classmethod
    def from_options(cls, options: Mapping[str, Json]) -> QuickBooksSettings:
        """Settings from `Sandbox(options={"quickbooks": {...}})`; unknown keys are refused."""
        return settings_from(cls, "quickbooks", options)


class QboFault(Exception):
    """A Fault answer of the v3 API."""

    def __init__(
        self,
        code: int,
        message: str,
        detail: str,
        *,
        status: int = 400,
        element: str = "",
        fault_type: str = "ValidationFault",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code, self.message, self.detail = code, message, detail
        self.status, self.element, self.fault_type = status, element, fault_type

    def fault(self) -> Obj:
        """The `Fault` object."""
        error = {"Message": self.message, "Detail": self.detail, "code": str(self.code), "element": self.element}
        return {"Error": [error], "type": self.fault_type}


class _Answer(Exception):
    """Stop handling and answer this (auth failures, malformed requests)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def not_found(entity: str, obj_id: str) -> QboFault:
    """Fault 610 as the service answers a read or write of a missing (or deleted) object."""
    return QboFault(
        CODE_NOT_FOUND,
        "Object Not Found",
        "Object Not Found : Something you're trying to use has been made inactive. Check the fields "
        "with accounts, customers, items, vendors or employees.",
        element=f"{entity} Id={obj_id}",
    )


def stale(entity: str, obj_id: str) -> QboFault:
    """Fault 5010: the SyncToken sent is not the current one."""
    return QboFault(
        CODE_STALE,
        "Stale Object Error",
        f"Stale Object Error : You and another user were working on this {entity} ({obj_id}) at the "
        "same time. The other user finished before you did, so your work was not saved.",
    )


def required(param: str) -> QboFault:
    """Fault 2020: a required field is missing."""
    return QboFault(
        CODE_REQUIRED,
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {param} is missing in the request",
        element=param,
    )


def invalid_ref(entity: str, value: Any) -> QboFault:
    """Fault 2500: a reference to an object that does not exist."""
    return QboFault(
        CODE_INVALID_REF,
        "Invalid Reference Id",
        f"Invalid Reference Id : {entity} assigned to this transaction has been deleted or does not "
        f"exist (Id={value}).",
        element=f"{entity}Ref",
    )


def invalid_request(detail: str) -> QboFault:
    """A malformed request (code 2010)."""
    return QboFault(CODE_INVALID_REQUEST, "Request has invalid or unsupported property", detail)


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise invalid_request(f"expected a number, got {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise invalid_request(f"expected a number, got {value!r}") from exc


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _clean(value: Any) -> Any:
    """Drop nulls, empty strings and empty lists (the SDK sends its defaults), and read numbers as Decimal."""
    if isinstance(value, dict):
        out: Obj = {}
        for key, item in value.items():
            if item is None or item == "" or item == []:
                continue
            if key in _NUMERIC_KEYS and isinstance(item, str | float | int) and not isinstance(item, bool):
                item = _dec(item)
            out[key] = _clean(item)
        return out
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _id_key(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.isdigit() else (1, value)


# ---------------------------------------------------------------------------------------------------- one company


class Company:
    """One QuickBooks company (realm): its objects, tombstones and requestid cache."""

    def __init__(self, section: Mapping[str, Any], settings: QuickBooksSettings, tz: tzinfo) -> None:
        if not isinstance(section, Mapping):
            raise TypeError("expected an object with realm_id, Invoice, Payment, Customer, Item")
        self.settings = settings
        self.tz = tz
        self.realm_id = str(section.get("realm_id") or settings.default_realm_id)
        self.company_info: Obj | None = section.get("CompanyInfo")
        self.section_keys = set(section)
        self.objects: dict[str, dict[str, Obj]] = {entity: {} for entity in ENTITIES}
        for entity in ENTITIES:
            for obj in section.get(entity) or []:
                if not isinstance(obj, dict) or "Id" not in obj:
                    raise ValueError(f"{entity}: every object needs an Id")
                self.objects[entity][str(obj["Id"])] = obj
        self.deleted: list[Obj] = list(section.get("Deleted") or [])
        self.extra = {k: v for k, v in section.items() if k not in {"realm_id", "CompanyInfo", "Deleted", *ENTITIES}}
        self.replay: dict[str, Response] = {}
        self.links: dict[str, dict[str, Decimal]] = {}
        for payment in self.objects["Payment"].values():
            for invoice_id, amount in self._payment_links(payment).items():
                self.links.setdefault(invoice_id, {})[str(payment["Id"])] = amount
        self._next: dict[str, int] = {}
        for seq, entities in (("txn", TXN_ENTITIES), ("Customer", ("Customer",)), ("Item", ("Item",))):
            ids = [i for e in entities for i in self.objects[e]]
            ids += [str(t.get("Id")) for t in self.deleted if t.get("type") in entities]
            self._next[seq] = max([int(i) for i in ids if i.isdigit()], default=0) + 1

    # -------------------------------------------------------------------------------- seed

    def dump(self) -> Obj:
        """This company in the seed file's shape."""
        out: Obj = {"realm_id": self.realm_id}
        if self.company_info is not None:
            out["CompanyInfo"] = self.company_info
        for entity in ENTITIES:
            if entity != "Estimate" or self.objects[entity] or entity in self.section_keys:
                out[entity] = list(self.objects[entity].values())
        out["Deleted"] = list(self.deleted)
        out.update(self.extra)
        return out

    @property
    def company_name(self) -> str:
        """The name used in e-mails."""
        if self.settings.company_name:
            return self.settings.company_name
        info = self.company_info or {}
        return str(info.get("CompanyName") or "Sandbox Company")

    # -------------------------------------------------------------------------------- time

    def stamp(self, now: datetime) -> str:
        """A MetaData timestamp: seconds, the company's local offset (e.g. 2026-10-20T09:15:32-07:00)."""
        return now.astimezone(self.tz).isoformat(timespec="seconds")

    def local_date(self, now: datetime) -> date:
        """Today in the company's time zone."""
        return now.astimezone(self.tz).date()

    def parse_instant(self, text: str) -> datetime:
        """An ISO timestamp; without an offset it is read in the company's time zone."""
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=self.tz)

    def _updated(self, obj: Obj) -> float:
        """`MetaData.LastUpdatedTime` as POSIX seconds (cached parse; -inf when missing)."""
        stamp = as_instant((obj.get("MetaData") or {}).get("LastUpdatedTime"), self.tz)
        return -math.inf if stamp is None else stamp

    # -------------------------------------------------------------------------------- reads

    def get(self, entity: str, obj_id: Any) -> Obj:
        """The live object, or fault 610."""
        found = self.objects[entity].get(str(obj_id))
        if found is None:
            raise not_found(entity, str(obj_id))
        return found

    def query(self, text: str) -> Obj:
        """Run a query; the `QueryResponse` object."""
        try:
            query = parse_query(text)
        except QueryError as exc:
            raise QboFault(CODE_QUERY_PARSE, "Error parsing query", exc.detail) from exc
        entity = _ENTITY_BY_LOWER.get(query.entity.lower())
        objects: list[Obj]
        if entity is None and query.entity.lower() == "companyinfo":
            entity, objects = "CompanyInfo", [self.company_info] if self.company_info else []
        elif entity is None:
            raise QboFault(
                CODE_QUERY_INVALID,
                "Invalid query",
                f"QueryValidationError: Entity {query.entity} is not supported by this emulator "
                f"(known: {', '.join(ENTITIES)}, CompanyInfo)",
            )
        else:
            objects = list(self.objects[entity].values())
        max_results = query.max_results
        if max_results is None:
            max_results = self.settings.query_default_max_results
        if max_results > self.settings.query_max_results:
            raise QboFault(
                CODE_QUERY_INVALID,
                "Invalid query",
                f"QueryValidationError: value {max_results} is too large. Max allowed value is "
                f"{self.settings.query_max_results}",
                element="MAXRESULTS",
            )
        if (
            entity in NAME_ENTITIES
            and self.settings.hide_inactive_names
            and not any(c.path[-1].lower() == "active" for c in query.where)
        ):
            objects = [o for o in objects if o.get("Active", True) is not False]
        try:
            selected = run_query(query, objects, self.tz)
        except (ValueError, TypeError) as exc:
            raise QboFault(CODE_QUERY_INVALID, "Invalid query", f"QueryValidationError: {exc}") from exc
        if query.count:
            return {"totalCount": len(selected)}
        start = max(1, query.start_position)
        page = selected[start - 1 : start - 1 + max_results]
        if not page:
            return {}
        return {entity: [project(o, query.fields) for o in page], "startPosition": start, "maxResults": len(page)}

    def cdc(self, entities_arg: str | None, since_arg: str | None, now: datetime) -> list[Obj]:
        """The `CDCResponse` list for `?entities=…&changedSince=…`."""
        if not entities_arg:
            raise required("entities")
        if not since_arg:
            raise required("changedSince")
        try:
            since_at = self.parse_instant(since_arg)
        except ValueError as exc:
            raise invalid_request(f"changedSince is not a date-time: {since_arg}") from exc
        oldest = now - timedelta(days=self.settings.cdc_lookback_days)
        since = since_at.timestamp()
        if since_at < oldest:
            raise invalid_request(
                f"changedSince {since_arg} is more than {self.settings.cdc_lookback_days} days "
                f"ago; the oldest allowed is {self.stamp(oldest)}"
            )
        responses: list[Obj] = []
        for name in (n.strip() for n in entities_arg.split(",") if n.strip()):
            entity = _ENTITY_BY_LOWER.get(name.lower())
            if entity is None:
                raise invalid_request(f"entities: {name} is not supported by this emulator")
            changed = [(self._updated(o), o) for o in self.objects[entity].values() if self._updated(o) >= since]
            for tomb in self.deleted:
                if tomb.get("type") == entity and self._updated(tomb) >= since:
                    changed.append(
                        (
                            self._updated(tomb),
                            {
                                "domain": "QBO",
                                "status": "Deleted",
                                "Id": str(tomb["Id"]),
                                "MetaData": clone(tomb.get("MetaData") or {}),
                            },
                        )
                    )
            changed.sort(
                key=lambda pair: (pair[0], _id_key(str(pair[1]["Id"]))), reverse=self.settings.cdc_newest_first
            )
            kept = [obj for _, obj in changed[: self.settings.cdc_max_per_entity]]
            responses.append({entity: kept, "startPosition": 1, "maxResults": len(kept)} if kept else {})
        return [{"QueryResponse": responses}]

    # -------------------------------------------------------------------------------- writes

    def write(
        self, entity: str, body: Any, operation: str | None, include: str | None, now: datetime, stale_fault: bool
    ) -> Obj:
        """POST /{entity}[?operation=…]: create, update (sparse or full), delete or void."""
        if not isinstance(body, dict):
            raise invalid_request(f"the request body must be a {entity} object")
        op = (operation or "").lower()
        if op == "delete":
            return self.delete(entity, body, now, stale_fault)
        if op == "void" or (op == "update" and (include or "").lower() == "void"):
            return self.void(entity, body, now, stale_fault)
        if op not in ("", "create", "update"):
            raise QboFault(CODE_UNSUPPORTED, "Unsupported Operation", f"Operation {operation} is not supported.")
        if body.get("Id") not in (None, "", 0, "0"):
            return self.update(entity, body, now, stale_fault)
        return self.create(entity, body, now)

    def create(self, entity: str, body: Obj, now: datetime) -> Obj:
        """Create an object; returns it as stored."""
        obj = self._writable(entity, body)
        seq = "txn" if entity in TXN_ENTITIES else entity
        obj_id = str(self._next[seq])
        return self._commit(entity, obj_id, obj, None, now)

    def update(self, entity: str, body: Obj, now: datetime, stale_fault: bool) -> Obj:
        """Update: sparse when `sparse` is true (a given `Line` replaces every line), full otherwise."""
        current = self._current(entity, body, stale_fault)
        given = self._writable(entity, body)
        if body.get("sparse") is True or str(body.get("sparse")).lower() == "true":
            obj = clone(current)
            for key in _COMPUTED_KEYS.get(entity, frozenset()):
                obj.pop(key, None)
            obj.update(given)
        else:
            obj = given
            # A full update from the SDK omits what it never read; keep what the service owns.
            for key in ("DocNumber", "EmailStatus", "DeliveryInfo"):
                if key not in obj and key in current:
                    obj[key] = clone(current[key])
        return self._commit(entity, str(current["Id"]), obj, current, now)

    def delete(self, entity: str, body: Obj, now: datetime, stale_fault: bool) -> Obj:
        """Delete a transaction (names cannot be deleted, only made inactive)."""
        if entity in NAME_ENTITIES:
            raise QboFault(
                CODE_UNSUPPORTED,
                "Unsupported Operation",
                f"Operation Delete is not supported for {entity}; set Active to false instead.",
            )
        current = self._current(entity, body, stale_fault)
        obj_id = str(current["Id"])
        if entity == "Invoice":
            self._unlink_invoice(obj_id, now)
        del self.objects[entity][obj_id]
        if entity == "Payment":
            self._relink(obj_id, self._payment_links(current), {}, now)
        self.deleted.append(
            {
                "type": entity,
                "Id": obj_id,
                "DocNumber": current.get("DocNumber"),
                "MetaData": {
                    "CreateTime": (current.get("MetaData") or {}).get("CreateTime"),
                    "LastUpdatedTime": self.stamp(now),
                },
            }
        )
        self.deleted[-1] = _clean(self.deleted[-1])
        return {"status": "Deleted", "domain": "QBO", "Id": obj_id}

    def void(self, entity: str, body: Obj, now: datetime, stale_fault: bool) -> Obj:
        """Void an invoice or payment: it stays, with zero amounts and PrivateNote "Voided"."""
        if entity not in ("Invoice", "Payment"):
            raise QboFault(CODE_UNSUPPORTED, "Unsupported Operation", f"Operation Void is not supported for {entity}.")
        current = self._current(entity, body, stale_fault)
        obj_id = str(current["Id"])
        obj = clone(current)
        if entity == "Invoice":
            self._unlink_invoice(obj_id, now)
        for line in obj.get("Line") or []:
            if "Amount" in line:
                line["Amount"] = Decimal("0.00")
        obj["PrivateNote"] = "Voided"
        if entity == "Payment":
            obj["TotalAmt"] = Decimal("0.00")
        return self._commit(entity, obj_id, obj, current, now)

    def send(self, invoice_id: str, send_to: str | None, now: datetime) -> tuple[Obj, str]:
        """Mark an invoice e-mailed; returns it and the address it went to."""
        current = self.get("Invoice", invoice_id)
        address = send_to or str((current.get("BillEmail") or {}).get("Address") or "")
        if not address or "@" not in address:
            raise QboFault(
                CODE_BUSINESS,
                "A business validation error has occurred while processing your request",
                "Business Validation Error: Invalid email address or no email address found for the "
                "invoice: supply BillEmail or sendTo.",
                element="BillEmail",
            )
        obj = clone(current)
        if send_to and self.settings.send_updates_bill_email:
            obj["BillEmail"] = {"Address": send_to}
        obj["EmailStatus"] = "EmailSent"
        obj["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": self.stamp(now)}
        self._bump(obj, current, now)
        self.objects["Invoice"][invoice_id] = obj
        return obj, address

    # -------------------------------------------------------------------------------- write internals

    def _current(self, entity: str, body: Obj, stale_fault: bool) -> Obj:
        if body.get("Id") in (None, ""):
            raise required("Id")
        current = self.get(entity, body["Id"])
        if body.get("SyncToken") in (None, ""):
            raise required("SyncToken")
        if str(body["SyncToken"]) != str(current.get("SyncToken")) or stale_fault:
            raise stale(entity, str(current["Id"]))
        return current

    @staticmethod
    def _writable(entity: str, body: Obj) -> Obj:
        skip = _SYSTEM_KEYS | _COMPUTED_KEYS.get(entity, frozenset())
        # _clean builds new containers all the way down, so the result shares nothing with the request.
        given = {k: v for k, v in body.items() if k not in skip}
        cleaned: Obj = _clean(given)
        if "Line" in given and "Line" not in cleaned:
            cleaned["Line"] = []  # an explicit empty Line removes every line
        return cleaned

    def _bump(self, obj: Obj, previous: Obj | None, now: datetime) -> None:
        meta = dict((previous or {}).get("MetaData") or {})
        meta.setdefault("CreateTime", self.stamp(now))
        meta["LastUpdatedTime"] = self.stamp(now)
        obj["MetaData"] = meta
        obj["SyncToken"] = "0" if previous is None else str(int(previous.get("SyncToken") or 0) + 1)

    def _commit(self, entity: str, obj_id: str, obj: Obj, previous: Obj | None, now: datetime) -> Obj:
        obj["Id"] = obj_id
        obj["domain"] = "QBO"
        obj["sparse"] = False
        if entity == "Invoice":
            self._finish_invoice(obj, previous, now)
        elif entity == "Payment":
            self._finish_payment(obj, now)
        elif entity == "Estimate":
            self._finish_estimate(obj, previous, now)
        elif entity == "Customer":
            self._finish_customer(obj)
        else:
            self._finish_item(obj)
        # Every check passed: from here on the write happens.
        self._bump(obj, previous, now)
        if previous is None:
            seq = "txn" if entity in TXN_ENTITIES else entity
            self._next[seq] += 1
        self.objects[entity][obj_id] = obj
        if entity == "Payment":
            old = self._payment_links(previous) if previous else {}
            self._relink(obj_id, old, self._payment_links(obj), now)
        return obj

    def _ref(self, obj: Obj, key: str, entity: str, name_field: str, *, needed: bool) -> Obj | None:
        ref = obj.get(key)
        if not isinstance(ref, dict) or not ref.get("value"):
            if needed:
                raise required(key)
            return None
        ref["value"] = str(ref["value"])
        target = self.objects[entity].get(ref["value"])
        if target is None:
            raise invalid_ref(entity, ref["value"])
        ref["name"] = target.get(name_field, ref.get("name"))
        ref.pop("type", None)
        return target

    def _finish_invoice(self, inv: Obj, previous: Obj | None, now: datetime) -> None:
        customer = self._ref(inv, "CustomerRef", "Customer", "DisplayName", needed=True)
        if "Line" not in inv or not inv["Line"]:
            raise required("Line")
        inv["Line"] = self._invoice_lines(inv["Line"], (previous or {}).get("Line") or [])
        if "TxnDate" not in inv:
            inv["TxnDate"] = self.local_date(now).isoformat()
        if "DueDate" not in inv:
            due = date.fromisoformat(str(inv["TxnDate"])) + timedelta(days=self.settings.default_terms_days)
            inv["DueDate"] = due.isoformat()
        if "DocNumber" not in inv:
            inv["DocNumber"] = self._next_doc_number()
        inv.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})
        email = ((customer or {}).get("PrimaryEmailAddr") or {}).get("Address")
        if "BillEmail" not in inv and email:
            inv["BillEmail"] = {"Address": email}
        inv.setdefault("EmailStatus", "NotSet")
        inv.setdefault("PrintStatus", "NotSet")
        self._recompute_invoice(inv)

    def _finish_estimate(self, est: Obj, previous: Obj | None, now: datetime) -> None:
        """An Estimate: a customer and lines like an invoice, `TotalAmt` their sum, `TxnStatus` Pending until the
        client accepts (Accepted), rejects (Rejected) or it is made into an invoice (Closed)."""
        self._ref(est, "CustomerRef", "Customer", "DisplayName", needed=True)
        if "Line" not in est or not est["Line"]:
            raise required("Line")
        lines = self._invoice_lines(est["Line"], (previous or {}).get("Line") or [])
        est["Line"] = lines
        est["TotalAmt"] = _money(
            sum(
                (_dec(line.get("Amount")) for line in lines if line.get("DetailType") == "SalesItemLineDetail"),
                Decimal(0),
            )
        )
        est.setdefault("TxnDate", self.local_date(now).isoformat())
        est.setdefault("TxnStatus", "Pending")
        est.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})

    def _next_doc_number(self) -> str:
        numbers = [
            int(str(i.get("DocNumber")))
            for i in self.objects["Invoice"].values()
            if str(i.get("DocNumber", "")).isdigit()
        ]
        numbers += [int(str(t.get("DocNumber"))) for t in self.deleted if str(t.get("DocNumber", "")).isdigit()]
        return str(max(numbers, default=1000) + 1)

    def _invoice_lines(self, lines: Any, previous: Sequence[Obj]) -> list[Obj]:
        if not isinstance(lines, list):
            raise invalid_request("Line must be a list")
        taken = {str(line.get("Id")) for line in [*previous, *lines] if isinstance(line, dict) and line.get("Id")}
        next_id = max([int(i) for i in taken if i.isdigit()], default=0) + 1
        out: list[Obj] = []
        for line in lines:
            if not isinstance(line, dict):
                raise invalid_request("every Line must be an object")
            detail_type = line.get("DetailType") or next(
                (k for k in line if k.endswith("LineDetail") or k == "DescriptionOnly"), ""
            )
            if detail_type in ("SubTotalLineDetail", "SubtotalLineDetail"):
                continue  # the service writes its own subtotal line
            if not detail_type:
                raise required("Line.DetailType")
            line["DetailType"] = detail_type
            if line.get("Id"):
                line["Id"] = str(line["Id"])
            else:
                line["Id"] = str(next_id)
                next_id += 1
            line["LineNum"] = len(out) + 1
            if detail_type == "SalesItemLineDetail":
                detail = line.setdefault("SalesItemLineDetail", {})
                if isinstance(detail.get("ItemRef"), dict) and detail["ItemRef"].get("value"):
                    self._ref(detail, "ItemRef", "Item", "Name", needed=False)
                if "Amount" not in line:
                    line["Amount"] = _money(_dec(detail.get("Qty", 1)) * _dec(detail.get("UnitPrice", 0)))
            if "Amount" in line:
                line["Amount"] = _dec(line["Amount"])
            out.append(line)
        return out

    def _recompute_invoice(self, inv: Obj) -> None:
        lines = [line for line in inv.get("Line") or [] if line.get("DetailType") != "SubTotalLineDetail"]
        subtotal = sum(
            (
                _dec(line.get("Amount"))
                for line in lines
                if line.get("DetailType") in ("SalesItemLineDetail", "GroupLineDetail")
            ),
            Decimal(0),
        )
        discount = sum(
            (_dec(line.get("Amount")) for line in lines if line.get("DetailType") == "DiscountLineDetail"), Decimal(0)
        )
        tax = _dec((inv.get("TxnTaxDetail") or {}).get("TotalTax"))
        lines.append({"Amount": _money(subtotal), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        inv["Line"] = lines
        total = _money(subtotal - discount + tax)
        paid = sum(self.links.get(str(inv["Id"]), {}).values(), Decimal(0))
        inv["TotalAmt"] = total
        inv["Balance"] = _money(total - paid)
        others = [t for t in inv.get("LinkedTxn") or [] if t.get("TxnType") != "Payment"]
        payments = [
            {"TxnId": pid, "TxnType": "Payment"} for pid in sorted(self.links.get(str(inv["Id"]), {}), key=_id_key)
        ]
        if others or payments:
            inv["LinkedTxn"] = others + payments
        else:
            inv.pop("LinkedTxn", None)

    @staticmethod
    def _payment_links(payment: Obj | None) -> dict[str, Decimal]:
        links: dict[str, Decimal] = {}
        for line in (payment or {}).get("Line") or []:
            for txn in line.get("LinkedTxn") or []:
                if txn.get("TxnType") == "Invoice":
                    key = str(txn.get("TxnId"))
                    links[key] = links.get(key, Decimal(0)) + _dec(line.get("Amount"))
        return links

    def _finish_payment(self, payment: Obj, now: datetime) -> None:
        self._ref(payment, "CustomerRef", "Customer", "DisplayName", needed=True)
        applied = Decimal(0)
        for line in payment.get("Line") or []:
            line["Amount"] = _dec(line.get("Amount"))
            for txn in line.get("LinkedTxn") or []:
                txn["TxnId"] = str(txn.get("TxnId"))
                txn.pop("TxnLineId", None)
                if txn.get("TxnType") == "Invoice" and txn["TxnId"] not in self.objects["Invoice"]:
                    raise invalid_ref("Invoice", txn["TxnId"])
            applied += line["Amount"]
        total = _dec(payment["TotalAmt"]) if "TotalAmt" in payment else applied
        if applied > total:
            raise QboFault(
                CODE_BUSINESS,
                "A business validation error has occurred while processing your request",
                f"Business Validation Error: the amounts applied ({applied}) exceed the payment total ({total}).",
                element="Line.Amount",
            )
        payment["TotalAmt"] = _money(total)
        payment["UnappliedAmt"] = _money(total - applied)
        payment.setdefault("TxnDate", self.local_date(now).isoformat())
        payment.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})

    def _relink(self, payment_id: str, old: Mapping[str, Decimal], new: Mapping[str, Decimal], now: datetime) -> None:
        for invoice_id in set(old) | set(new):
            bucket = self.links.setdefault(invoice_id, {})
            if invoice_id in new:
                bucket[payment_id] = new[invoice_id]
            else:
                bucket.pop(payment_id, None)
            stored = self.objects["Invoice"].get(invoice_id)
            if stored is None:
                continue
            invoice = clone(stored)  # copy-on-write: stored objects may be shared with the seed
            self._recompute_invoice(invoice)
            changed = any(stored.get(key) != invoice.get(key) for key in ("Balance", "LinkedTxn"))
            if changed and self.settings.payment_bumps_invoice:
                self._bump(invoice, stored, now)
            self.objects["Invoice"][invoice_id] = invoice

    def _unlink_invoice(self, invoice_id: str, now: datetime) -> None:
        """Payments applied to a deleted or voided invoice become unapplied credit, as in QBO."""
        for payment_id in list(self.links.get(invoice_id, {})):
            payment = self.objects["Payment"].get(payment_id)
            if payment is None:
                continue
            updated = clone(payment)
            kept = []
            for line in updated.get("Line") or []:
                txns = [
                    t
                    for t in line.get("LinkedTxn") or []
                    if not (t.get("TxnType") == "Invoice" and str(t.get("TxnId")) == invoice_id)
                ]
                if txns:
                    kept.append({**line, "LinkedTxn": txns})
            updated["Line"] = kept
            applied = sum((_dec(line.get("Amount")) for line in kept), Decimal(0))
            updated["UnappliedAmt"] = _money(_dec(updated.get("TotalAmt")) - applied)
            self._bump(updated, payment, now)
            self.objects["Payment"][payment_id] = updated
        self.links.pop(invoice_id, None)

    def _finish_customer(self, customer: Obj) -> None:
        if not customer.get("DisplayName"):
            parts = [customer.get(k) for k in ("GivenName", "MiddleName", "FamilyName")]
            name = " ".join(str(p) for p in parts if p) or customer.get("CompanyName")
            if not name:
                raise QboFault(
                    6080,
                    "No Name Provided",
                    "Title, GivenName, MiddleName, FamilyName, DisplayName, Suffix - one of these must be non-empty",
                    element="DisplayName",
                )
            customer["DisplayName"] = name
        self._unique_name("Customer", customer, "DisplayName")
        customer.setdefault("Active", True)
        parent = self._ref(customer, "ParentRef", "Customer", "DisplayName", needed=False)
        if parent is not None:
            customer.setdefault("Job", True)
            customer["Level"] = int(parent.get("Level") or 0) + 1
            parent_name = parent.get("FullyQualifiedName") or parent.get("DisplayName")
            customer["FullyQualifiedName"] = f"{parent_name}:{customer['DisplayName']}"
        else:
            customer.setdefault("Job", False)
            customer["FullyQualifiedName"] = customer["DisplayName"]

    def _finish_item(self, item: Obj) -> None:
        if not item.get("Name"):
            raise required("Name")
        self._unique_name("Item", item, "Name")
        item.setdefault("Active", True)
        item.setdefault("Type", "Service")
        item["FullyQualifiedName"] = item["Name"]

    def _unique_name(self, entity: str, obj: Obj, key: str) -> None:
        wanted = str(obj[key]).casefold()
        for other in self.objects[entity].values():
            if str(other.get("Id")) != str(obj.get("Id")) and str(other.get(key, "")).casefold() == wanted:
                raise QboFault(
                    CODE_DUPLICATE_NAME,
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Another {entity.lower()} is already using this "
                    f"name. Please use a different name. (Id={other.get('Id')})",
                    element=key,
                )

    # -------------------------------------------------------------------------------- batch

    def batch(self, body: Any, now: datetime, stale_fault: bool) -> list[Obj]:
        """POST /batch: each item answered on its own (a Fault for one does not stop the others)."""
        items = body.get("BatchItemRequest") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise required("BatchItemRequest")
        if len(items) > self.settings.batch_max_items:
            raise invalid_request(
                f"BatchItemRequest holds {len(items)} items; at most "
                f"{self.settings.batch_max_items} are allowed in one batch"
            )
        out: list[Obj] = []
        for item in items:
            answer: Obj
            try:
                answer = self._batch_item(item, now, stale_fault)
            except QboFault as fault:
                answer = {"Fault": fault.fault()}
            answer["bId"] = item.get("bId") if isinstance(item, dict) else None
            out.append(answer)
        return out

    def _batch_item(self, item: Any, now: datetime, stale_fault: bool) -> Obj:
        if not isinstance(item, dict):
            raise invalid_request("every BatchItemRequest must be an object")
        if "Query" in item:
            return {"QueryResponse": self.query(str(item["Query"]))}
        entity = next((e for e in ENTITIES if e in item), None)
        if entity is None:
            raise invalid_request(
                "the batch item names no supported entity (Invoice, Payment, Customer, Item, Estimate)"
            )
        body = item[entity]
        if not isinstance(body, dict):
            raise invalid_request(f"the batch item's {entity} must be an object")
        operation = str(item.get("operation") or "create").lower()
        if operation == "create":
            return {entity: self.create(entity, body, now)}  # create ignores any Id sent
        if operation == "update":
            return {entity: self.update(entity, body, now, stale_fault)}
        if operation == "delete":
            return {entity: self.delete(entity, body, now, stale_fault)}
        raise QboFault(CODE_UNSUPPORTED, "Unsupported Operation", f"Operation {operation} is not supported in batch.")


# ---------------------------------------------------------------------------------------------------- OAuth state


@dataclass
class _Grant:
    realm_id: str
    client_id: str
    scope: str
    refresh_token: str
    refresh_expires: datetime
    revoked: bool = False
    hard_expires: datetime | None = None  # the refresh token ends for good then, whatever it rolls to


@dataclass
class _Code:
    realm_id: str
    client_id: str
    redirect_uri: str
    scope: str
    expires: datetime


@dataclass
class _Tokens:
    codes: dict[str, _Code] = field(default_factory=dict)
    grants: list[_Grant] = field(default_factory=list)
    by_refresh: dict[str, _Grant] = field(default_factory=dict)
    by_access: dict[str, tuple[_Grant, datetime]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- the provider


def _asks_hard_expiry(request: Request) -> bool:
    return (request.header("x-include-refresh-token-hard-expires-in") or "").lower() == "true"


@register_provider
class QuickBooksProvider(Provider):
    """The QuickBooks Online emulator."""

    name = "quickbooks"
    # The published limits per realm: 500 requests a minute and 40 batch requests a minute; the third,
    # 10 requests in flight at once, is `concurrent_limit` (a sequential client is never refused for speed).
    default_rate_limits = (RateLimit(500, 60.0), RateLimit(40, 60.0, bucket="batch"))

    def __init__(self, ctx: SandboxContext, options: Mapping[str, Json] | None = None) -> None:
        super().__init__(ctx, options)
        self.settings = QuickBooksSettings.from_options(self.options)
        # The server reads the instance's limits, so the settings decide them.
        limits = (
            RateLimit(self.settings.minute_limit, 60.0),
            RateLimit(self.settings.batch_minute_limit, 60.0, bucket="batch"),
        )
        self.__dict__["default_rate_limits"] = limits
        self.tz = ZoneInfo(self.settings.company_timezone)
        self.companies: dict[str, Company] = {}
        self._as_list = False
        # Tokens are not part of the seed: a reset keeps linked connections working.
        self.tokens = _Tokens()

    # -------------------------------------------------------------------------------- Provider

    def load(self, seed: Json | None) -> None:
        """Load the `quickbooks` seed section (an object, or a list of them for several realms)."""
        sections: list[Any]
        if seed is None:
            sections, self._as_list = [{"realm_id": self.settings.default_realm_id}], False
        elif isinstance(seed, list):
            sections, self._as_list = seed, True
        else:
            sections, self._as_list = [seed], False
        companies = [Company(s, self.settings, self.tz) for s in sections]
        self.companies = {c.realm_id: c for c in companies}

    def dump(self) -> Json:
        """The `quickbooks` seed section as the data stands now."""
        dumped = [c.dump() for c in self.companies.values()]
        return dumped if self._as_list else dumped[0]

    def describe(self, base_url: str) -> dict[str, str]:
        """Where the SDKs should point."""
        return {
            "discovery": f"{base_url}/.well-known/openid_configuration",
            "api": f"{base_url}/v3",
            "realms": ",".join(self.companies),
        }

    def routes(self) -> Sequence[Route]:
        """OAuth and v3 API routes."""
        api = r"/v3/company/(?P<tenant>[^/]+)"
        entity = r"(?P<entity>invoice|payment|customer|item|estimate)"
        return [
            route("GET", r"/\.well-known/openid_(?:sandbox_)?configuration/?", self._discovery, api=False),
            route("GET", r"/connect/oauth2/?", self._authorize, api=False),
            route("POST", r"/oauth2/v1/tokens/bearer/?", self._token, api=False),
            route("POST", r"/v2/oauth2/tokens/revoke/?", self._revoke, api=False),
            route("GET", r"/v1/openid_connect/userinfo/?", self._userinfo, api=False),
            route("GET", r"/oauth2/v1/certs/?", lambda _r: Response.json(200, {"keys": []}), api=False),
            route("GET", api + r"/query/?", self._api(self._query), name="query"),
            route("POST", api + r"/query/?", self._api(self._query), name="query"),
            route("GET", api + r"/cdc/?", self._api(self._cdc), name="cdc"),
            route("POST", api + r"/batch/?", self._api(self._batch), buckets=("api", "batch"), name="batch"),
            route("POST", api + r"/invoice/(?P<id>[^/]+)/send/?", self._api(self._send), name="send"),
            route("GET", api + r"/invoice/(?P<id>[^/]+)/pdf/?", self._api(self._pdf), name="pdf"),
            route("GET", api + r"/companyinfo/(?P<id>[^/]+)/?", self._api(self._company_info), name="companyinfo"),
            route("GET", api + "/" + entity + r"/(?P<id>[^/]+)/?", self._api(self._read), name="read"),
            route("POST", api + "/" + entity + r"/?", self._api(self._write), name="write"),
            route("*", api + r"(?:/.*)?", self._api(self._unsupported), name="unsupported"),
        ]

    def fault_response(self, kind: str, retry_after: int | None) -> Response:
        """Injected faults in QBO's shapes."""
        if kind == "429":
            return self._throttled(retry_after)
        if kind == "expired_token":
            return self._auth_failure("Token expired: the access token has expired (injected fault)")
        if kind == "503":
            # The gateway, not the API, answers 503: an HTML page, which the SDK cannot parse as JSON.
            page = (
                "<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1>"
                "</body></html>"
            )
            return Response.text(503, page, "text/html; charset=utf-8")
        fault = QboFault(
            CODE_SYSTEM,
            "An application error has occurred while processing your request",
            "System Failure Error: An unexpected error occurred while accessing or saving your data. "
            "Please wait a few minutes and try again.",
            status=500,
            fault_type="SystemFault",
        )
        return self._fault_response(fault)

    def throttle_response(self, limit: RateLimit, retry_after: int) -> Response:
        """A published rate limit was exceeded."""
        return self._throttled(retry_after)

    def concurrent_limit(self) -> int | None:
        """Intuit throttles a realm beyond 10 requests in flight at once."""
        return self.settings.concurrent_limit

    def concurrency_response(self) -> Response:
        """The same ThrottleExceeded fault as the per-minute limit, retried a second later."""
        return self._throttled(1)

    # -------------------------------------------------------------------------------- helpers

    def time_now(self) -> str:
        """The `time` field of every API answer."""
        return self.ctx.now().astimezone(self.tz).isoformat(timespec="milliseconds")

    def _ok(self, payload: Obj) -> Response:
        payload["time"] = self.time_now()
        return Response.json(200, payload, [("intuit_tid", secrets.token_hex(16))])

    def _fault_response(self, fault: QboFault) -> Response:
        return Response.json(
            fault.status, {"Fault": fault.fault(), "time": self.time_now()}, [("intuit_tid", secrets.token_hex(16))]
        )

    def _throttled(self, retry_after: int | None) -> Response:
        fault = QboFault(
            CODE_THROTTLE,
            "message=ThrottleExceeded; errorCode=003001; statusCode=429",
            "The request limit was reached.  Try again later",
            status=429,
            fault_type="SERVICE",
        )
        response = self._fault_response(fault)
        if retry_after is not None:
            response.headers.append(("Retry-After", str(retry_after)))
        return response

    def _gateway_fault(self, status: int, code: int, message: str, detail: str | None, fault_type: str) -> Response:
        if self.settings.auth_fault_style == "Fault":
            fault = QboFault(code, message, detail or "", status=status, fault_type=fault_type)
            return self._fault_response(fault)
        epoch_ms = int(self.ctx.now().timestamp() * 1000)
        body: Obj = {
            "warnings": None,
            "intuitObject": None,
            "fault": {
                "error": [{"message": message, "detail": detail, "code": str(code), "element": None}],
                "type": fault_type,
            },
            "report": None,
            "queryResponse": None,
            "batchItemResponse": [],
            "attachableResponse": [],
            "syncErrorResponse": None,
            "requestId": None,
            "time": epoch_ms,
            "status": None,
            "cdcresponse": [],
        }
        return Response.json(status, body, [("intuit_tid", secrets.token_hex(16))])

    def _auth_failure(self, detail: str) -> Response:
        response = self._gateway_fault(
            401, CODE_AUTH, "message=AuthenticationFailed; errorCode=003200; statusCode=401", detail, "AUTHENTICATION"
        )
        response.headers.append(("WWW-Authenticate", 'Bearer realm="Intuit", error="invalid_token"'))
        return response

    def _company(self, request: Request) -> Company:
        """Check the bearer token against the realm in the path; the company, or an _Answer."""
        now = self.ctx.now()
        header = request.header("Authorization") or ""
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise _Answer(self._auth_failure("Authorization header missing or not a Bearer token"))
        token = header[7:].strip()
        found = self.tokens.by_access.get(token)
        if found is None:
            raise _Answer(self._auth_failure("Token invalid: the bearer token is not recognised"))
        grant, expires = found
        if grant.revoked:
            raise _Answer(self._auth_failure("Token revoked"))
        if now >= expires:
            raise _Answer(self._auth_failure(f"Token expired: {token[:12]}…"))
        realm = request.params["tenant"]
        company = self.companies.get(realm)
        if grant.realm_id != realm or company is None:
            raise _Answer(
                self._gateway_fault(
                    403,
                    CODE_FORBIDDEN,
                    "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                    None,
                    "SERVICE",
                )
            )
        return company

    def _api(self, fn: Callable[[Request, Company], Response]) -> Callable[[Request], Response]:
        """Auth, requestid replay and Fault rendering around an API handler."""

        def handle(request: Request) -> Response:
            try:
                company = self._company(request)
                request_id = request.arg("requestid") if request.method == "POST" else None
                if request_id is not None:
                    if len(request_id) > self.settings.requestid_max_length:
                        raise invalid_request(
                            f"requestid is {len(request_id)} characters long; at most "
                            f"{self.settings.requestid_max_length} are allowed"
                        )
                    cached = company.replay.get(request_id)
                    if cached is not None:
                        return Response(cached.status, cached.body, list(cached.headers), {"replayed": True})
                try:
                    response = fn(request, company)
                except QboFault as fault:
                    response = self._fault_response(fault)
                if request_id is not None and (response.status < 400 or self.settings.replay_faults):
                    company.replay[request_id] = response
                return response
            except _Answer as answer:
                return answer.response
            except QboFault as fault:
                return self._fault_response(fault)

        return handle

    @staticmethod
    def _body(request: Request) -> Any:
        try:
            return request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid_request(f"the request body is not valid JSON: {exc}") from exc

    # -------------------------------------------------------------------------------- API handlers

    def _query(self, request: Request, company: Company) -> Response:
        text = request.arg("query") if request.method == "GET" else request.body.decode("utf-8", "replace")
        if not text or not text.strip():
            raise QboFault(CODE_QUERY_PARSE, "Error parsing query", "QueryParserError: the query is empty")
        return self._ok({"QueryResponse": company.query(text)})

    def _cdc(self, request: Request, company: Company) -> Response:
        return self._ok(
            {"CDCResponse": company.cdc(request.arg("entities"), request.arg("changedSince"), self.ctx.now())}
        )

    def _batch(self, request: Request, company: Company) -> Response:
        answers = company.batch(self._body(request), self.ctx.now(), "stale_synctoken" in request.flags)
        return self._ok({"BatchItemResponse": answers})

    def _read(self, request: Request, company: Company) -> Response:
        entity = _ENTITY_BY_LOWER[request.params["entity"].lower()]
        found = company.get(entity, request.params["id"])
        if entity == "Invoice" and request.arg("include") == "invoiceLink" and _dec(found.get("Balance")) > 0:
            # Present only while something is owed (as with online payment on): the customer's pay page.
            found = {**found, "InvoiceLink": f"{self.ctx.base_url}/_sandbox/pay/quickbooks/{found.get('Id')}"}
        return self._ok({entity: found})

    def _write(self, request: Request, company: Company) -> Response:
        entity = _ENTITY_BY_LOWER[request.params["entity"].lower()]
        obj = company.write(
            entity,
            self._body(request),
            request.arg("operation"),
            request.arg("include"),
            self.ctx.now(),
            "stale_synctoken" in request.flags,
        )
        return self._ok({entity: obj})

    def _send(self, request: Request, company: Company) -> Response:
        invoice_id = request.params["id"]
        invoice, address = company.send(invoice_id, request.arg("sendTo"), self.ctx.now())
        customer = (invoice.get("CustomerRef") or {}).get("name") or "customer"
        number = invoice.get("DocNumber") or invoice_id
        balance = _dec(invoice.get("Balance"))
        body = (
            f"Dear {customer},\n\nHere's your invoice! We appreciate your prompt payment.\n\n"
            f"Invoice {number}\nDue date: {invoice.get('DueDate', '')}\nBalance due: ${balance:,.2f}\n\n"
            f"Thanks for your business!\n{company.company_name}"
        )
        self.ctx.record_email(
            provider=self.name,
            tenant=company.realm_id,
            invoice_id=str(invoice["Id"]),
            to=address,
            subject=f"Invoice {number} from {company.company_name}",
            body=body,
            # The invoice's copy addresses go with every send (Intuit: BillEmailCc/Bcc are where the invoice is
            # "sent" as a copy); sendTo replaces BillEmail only.
            cc=_addresses(invoice, "BillEmailCc"),
            bcc=_addresses(invoice, "BillEmailBcc"),
        )
        return self._ok({"Invoice": invoice})

    def _pdf(self, request: Request, company: Company) -> Response:
        invoice = company.get("Invoice", request.params["id"])
        return pdf_response(
            invoice_pdf(
                f"{company.company_name}: invoice {invoice.get('DocNumber', '')}",
                f"Due {invoice.get('DueDate', '')}, balance {invoice.get('Balance', '')}",
            )
        )

    def _company_info(self, request: Request, company: Company) -> Response:
        if request.params["id"] != company.realm_id or company.company_info is None:
            raise not_found("CompanyInfo", request.params["id"])
        return self._ok({"CompanyInfo": company.company_info})

    def _unsupported(self, request: Request, company: Company) -> Response:
        raise QboFault(
            CODE_UNSUPPORTED, "Unsupported Operation", f"Operation {request.method} {request.path} is not supported."
        )

    # -------------------------------------------------------------------------------- OAuth handlers

    def _discovery(self, request: Request) -> Response:
        base = self.ctx.base_url
        return Response.json(
            200,
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/connect/oauth2",
                "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
                "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
                "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
                "jwks_uri": f"{base}/oauth2/v1/certs",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": [
                    "openid",
                    "email",
                    "profile",
                    "address",
                    "phone",
                    "com.intuit.quickbooks.accounting",
                    "com.intuit.quickbooks.payment",
                ],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
            },
        )

    def _authorize(self, request: Request) -> Response:
        asked = consent(request)
        if isinstance(asked, Response):
            return asked
        # Not part of Intuit's API: `realm_id` picks the company when the seed holds several.
        realm = request.arg("realm_id") or next(iter(self.companies))
        if realm not in self.companies:
            return Response.text(400, f"unknown realm_id {realm}")
        code = "AB11" + secrets.token_urlsafe(24)
        self.tokens.codes[code] = _Code(
            realm,
            asked.client_id,
            asked.redirect_uri,
            asked.scope,
            self.ctx.now() + timedelta(seconds=self.settings.auth_code_ttl),
        )
        return asked.redirect(code, realmId=realm)

    def _token(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        client_id = oauth_client_id(request, form, form_needs_secret=True)
        if client_id is None:
            return oauth_error(401, "invalid_client", "HTTP Basic client authentication is required")
        grant_type = (form.get("grant_type") or [""])[0]
        now = self.ctx.now()
        if grant_type == "authorization_code":
            code = self.tokens.codes.pop((form.get("code") or [""])[0], None)
            if code is None or now >= code.expires:
                return oauth_error(400, "invalid_grant", "the authorization code is unknown, used or expired")
            if (form.get("redirect_uri") or [""])[0] != code.redirect_uri:
                return oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization")
            hard = now + timedelta(seconds=self.settings.refresh_token_hard_ttl)
            grant = _Grant(code.realm_id, client_id, code.scope, "", now, hard_expires=hard)
            self.tokens.grants.append(grant)
            return self._issue(grant, now, rotate=True, hard=_asks_hard_expiry(request))
        if grant_type == "refresh_token":
            old = (form.get("refresh_token") or [""])[0]
            found = self.tokens.by_refresh.get(old)
            if found is None or found.revoked or now >= found.refresh_expires:
                return oauth_error(400, "invalid_grant", "the refresh token is invalid, expired or used")
            if found.hard_expires is not None and now >= found.hard_expires:
                return oauth_error(400, "invalid_grant", "the refresh token has reached its maximum lifetime")
            return self._issue(found, now, rotate=self.settings.rotate_refresh_tokens, hard=_asks_hard_expiry(request))
        return oauth_error(400, "unsupported_grant_type")

    def _issue(self, grant: _Grant, now: datetime, *, rotate: bool, hard: bool = False) -> Response:
        if rotate:
            # The previous refresh token stops working the moment a new one is issued.
            self.tokens.by_refresh.pop(grant.refresh_token, None)
            grant.refresh_token = "AB11" + secrets.token_urlsafe(36)
            grant.refresh_expires = now + timedelta(seconds=self.settings.refresh_token_ttl)
            self.tokens.by_refresh[grant.refresh_token] = grant
        access = "eyJ" + secrets.token_urlsafe(96)
        self.tokens.by_access[access] = (grant, now + timedelta(seconds=self.settings.access_token_ttl))
        remaining = max(0, int((grant.refresh_expires - now).total_seconds()))
        body: Obj = {
            "token_type": "bearer",
            "expires_in": self.settings.access_token_ttl,
            "refresh_token": grant.refresh_token,
            "x_refresh_token_expires_in": remaining,
            "access_token": access,
        }
        if hard and grant.hard_expires is not None:
            body["x_refresh_token_hard_expires_in"] = max(0, int((grant.hard_expires - now).total_seconds()))
        return Response.json(200, body)

    def _revoke(self, request: Request) -> Response:
        token = ""
        try:
            body = loads(request.body.decode("utf-8") or "{}")
            token = str(body.get("token") or "") if isinstance(body, dict) else ""
        except ValueError:
            token = (parse_qs(request.body.decode("utf-8", "replace")).get("token") or [""])[0]
        if not token:
            return oauth_error(400, "invalid_request", "token is required")
        grant = self.tokens.by_refresh.get(token) or (self.tokens.by_access.get(token) or (None, None))[0]
        if grant is not None:
            grant.revoked = True
            self.tokens.by_refresh.pop(grant.refresh_token, None)
        return Response(200)

    def _userinfo(self, request: Request) -> Response:
        header = request.header("Authorization") or ""
        found = self.tokens.by_access.get(header[7:].strip()) if header.lower().startswith("bearer ") else None
        if found is None or found[0].revoked or self.ctx.now() >= found[1]:
            return oauth_error(401, "invalid_token")
        return Response.json(
            200,
            {
                "sub": f"sandbox-user-{found[0].realm_id}",
                "email": "owner@example.com",
                "emailVerified": True,
                "givenName": "Sandbox",
                "familyName": "Owner",
            },
        )


def _addresses(invoice: Obj, key: str) -> list[str]:
    """The addresses of an invoice's `BillEmailCc` / `BillEmailBcc` (one field; QuickBooks takes commas in it)."""
    value = (invoice.get(key) or {}).get("Address") if isinstance(invoice.get(key), Mapping) else None
    return [a.strip() for a in str(value or "").split(",") if "@" in a]
