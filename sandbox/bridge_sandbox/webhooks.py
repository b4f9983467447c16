"""The emulators send webhooks: every change to their books, signed, in each provider's own format.

    Sandbox(webhooks=WebhookSettings("http://127.0.0.1:8720/webhooks", key="K"))

After each API write that succeeded (the bridge's included), the server asks `changes_of` what it changed
and hands the changes to a `WebhookSender`, which batches them for a moment and POSTs them, signed, to
`{url}/{provider}` (and to any FreshBooks callback registered and verified through the API, signed with its
verifier) from a thread of its own (never under the sandbox lock):

- QuickBooks: a JSON array of CloudEvents (`type` "qbo.invoice.updated.v1", `intuitaccountid` the realm id),
  header `intuit-signature` = base64(HMAC-SHA256(key, body)).
- Xero: `{"events": [...], "firstEventSequence", "lastEventSequence", "entropy"}`; a payment is an INVOICE
  UPDATE of the invoice it pays; header `x-xero-signature` = base64(HMAC-SHA256(key, body)).
- FreshBooks: one form-encoded POST per change (`name, object_id, account_id, business_id, identity_id,
  user_id`), header `X-FreshBooks-Hmac-SHA256` = base64(HMAC-SHA256(key, json.dumps(the fields))).

A delivery that fails is tried again a few times (1 s, 2 s, 4 s), then given up. `deliveries()` lists every
attempt (`GET /_sandbox/webhooks`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import secrets
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from bridge_sandbox.core import Json, Request, Response, loads

BATCH_SECONDS = 0.2  # changes within this are sent together (Xero and QuickBooks batch them too)
RETRY_SECONDS = (1.0, 2.0, 4.0)


@dataclass(frozen=True)
class WebhookSettings:
    """Where webhooks go (`{url}/{provider}`) and the key that signs them (per provider, else `key`)."""

    url: str
    key: str
    keys: tuple[tuple[str, str], ...] = ()

    def key_for(self, provider: str) -> str:
        """The signing key of one provider."""
        return dict(self.keys).get(provider, self.key)


@dataclass(frozen=True)
class Change:
    """One object changed at one provider: what it is, which tenant, and how."""

    provider: str
    tenant: str
    entity: str  # "invoice" or "payment"
    object_id: str
    operation: str  # "create", "update", "delete", "void", "emailed"
    at: datetime


def sign(key: str, message: bytes) -> str:
    """base64(HMAC-SHA256(key, message))."""
    return base64.b64encode(hmac.new(key.encode("utf-8"), message, hashlib.sha256).digest()).decode("ascii")


def changes_of(
    provider: str, route: str, request: Request, response: Response, tenant: str, at: datetime
) -> list[Change]:
    """What a successful API write changed, read from the route and the provider's own answer."""
    try:
        body: Any = loads(response.body) if response.body else {}
    except ValueError:
        return []
    finder = _FINDERS.get(provider)
    if finder is None:
        return []
    return [Change(provider, tenant, entity, oid, op, at) for entity, oid, op in finder(route, request, body)]


def _quickbooks(route: str, request: Request, body: Any) -> Iterable[tuple[str, str, str]]:
    if route == "send":
        yield "invoice", request.params.get("id", ""), "emailed"
        return
    if route == "batch":
        for item in (body.get("BatchItemResponse") or []) if isinstance(body, dict) else []:
            for entity in ("Invoice", "Payment"):
                if isinstance(item, dict) and isinstance(item.get(entity), dict):
                    yield entity.lower(), str(item[entity].get("Id", "")), "update"
        return
    if route != "write" or not isinstance(body, dict):
        return
    operation = (request.arg("operation") or "").lower()
    for entity in ("Invoice", "Payment"):
        obj = body.get(entity)
        if isinstance(obj, dict):
            op = operation or ("create" if str(obj.get("SyncToken")) == "0" else "update")
            yield entity.lower(), str(obj.get("Id", "")), "void" if op == "void" else op
    if body.get("status") == "Deleted":
        yield request.params.get("entity", "invoice").lower(), str(body.get("Id", "")), "delete"


def _xero(route: str, request: Request, body: Any) -> Iterable[tuple[str, str, str]]:
    if not isinstance(body, dict):
        return
    if route in ("invoices.create", "invoices.update", "invoice.update"):
        for inv in body.get("Invoices") or []:
            if isinstance(inv, dict) and inv.get("InvoiceID") and not inv.get("ValidationErrors"):
                yield "invoice", str(inv["InvoiceID"]), "create" if route == "invoices.create" else "update"
    elif route == "payments.create":
        for pay in body.get("Payments") or []:
            invoice = pay.get("Invoice") if isinstance(pay, dict) else None
            if isinstance(invoice, dict) and invoice.get("InvoiceID") and not pay.get("ValidationErrors"):
                yield "invoice", str(invoice["InvoiceID"]), "update"  # Xero has no payment category
    elif route == "invoice.email":
        yield "invoice", request.params.get("id", ""), "update"


def _freshbooks(route: str, request: Request, body: Any) -> Iterable[tuple[str, str, str]]:
    result = ((body.get("response") or {}).get("result") or {}) if isinstance(body, dict) else {}
    kinds = {
        "invoices.create": ("invoice", "create"),
        "invoice.update": ("invoice", "update"),
        "invoice.delete": ("invoice", "delete"),
        "payments.create": ("payment", "create"),
        "payment.update": ("payment", "update"),
    }
    if route not in kinds:
        return
    entity, op = kinds[route]
    obj = result.get(entity) if isinstance(result, dict) else None
    oid = (obj or {}).get("id") if isinstance(obj, dict) else None
    yield entity, str(oid or request.params.get("id", "")), op


_FINDERS: dict[str, Callable[[str, Request, Any], Iterable[tuple[str, str, str]]]] = {
    "quickbooks": _quickbooks,
    "xero": _xero,
    "freshbooks": _freshbooks,
}


# ---------------------------------------------------------------------------------------------------- formats


def quickbooks_body(changes: list[Change]) -> bytes:
    """CloudEvents, as QuickBooks sends them since 2026: a JSON array, ids only."""
    past = {"create": "created", "update": "updated", "delete": "deleted", "void": "voided", "emailed": "emailed"}
    events = [
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "intuit.sandbox",
            "type": f"qbo.{c.entity}.{past.get(c.operation, 'updated')}.v1",
            "datacontenttype": "application/json",
            "time": c.at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "intuitentityid": c.object_id,
            "intuitaccountid": c.tenant,
            "data": {},
        }
        for c in changes
    ]
    return json.dumps(events).encode("utf-8")


class _XeroSequence:
    def __init__(self) -> None:
        self.next = 1
        self.lock = threading.Lock()

    def take(self, n: int) -> tuple[int, int]:
        with self.lock:
            first, self.next = self.next, self.next + n
        return first, first + n - 1


def xero_body(changes: list[Change], sequence: tuple[int, int]) -> bytes:
    """A Xero webhook batch (the schema of Xero's own xero-webhooks.yaml)."""
    events = [
        {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{c.object_id}",
            "resourceId": c.object_id,
            # RFC 3339 with its "Z", as the schema's date-time format asks (Xero's own examples leave it out).
            "eventDateUtc": c.at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "eventType": "CREATE" if c.operation == "create" else "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": c.tenant,
            "tenantType": "ORGANISATION",
        }
        for c in changes
    ]
    body = {
        "events": events,
        "firstEventSequence": sequence[0],
        "lastEventSequence": sequence[1],
        "entropy": secrets.token_hex(10).upper(),
    }
    return json.dumps(body).encode("utf-8")


def freshbooks_fields(change: Change) -> list[tuple[str, str]]:
    """The form fields of one FreshBooks webhook, in the order FreshBooks sends them."""
    return [
        ("name", f"{change.entity}.{change.operation}"),
        ("object_id", change.object_id),
        ("account_id", change.tenant),
        ("business_id", "1"),
        ("identity_id", "1"),
        ("user_id", "1"),
    ]


def freshbooks_signature(key: str, fields: list[tuple[str, str]]) -> str:
    """FreshBooks' recipe: the HMAC of `json.dumps` of the form fields (as its Python SDK's docs show)."""
    return sign(key, json.dumps(dict(fields)).encode("utf-8"))


# ---------------------------------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class _Delivery:
    """A change on its way to one address, signed with one key; or a ready form (FreshBooks' verifier)."""

    provider: str
    url: str
    key: str
    change: Change | None = None
    form: tuple[tuple[str, str], ...] = ()


class WebhookSender:
    """Batches changes for `BATCH_SECONDS` and POSTs them from its own thread (see the module)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[_Delivery | None] = queue.Queue()
        self._log: list[dict[str, Json]] = []
        self._lock = threading.Lock()
        self._xero = _XeroSequence()
        self._closing = threading.Event()  # set by close(): what is queued goes out once, without retries
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def add(self, change: Change, url: str, key: str) -> None:
        """Send this change to `url`, signed with `key` (soon, batched with others to the same place)."""
        self._queue.put(_Delivery(change.provider, url, key, change))

    def add_form(self, provider: str, url: str, fields: Iterable[tuple[str, str]]) -> None:
        """POST these form fields to `url` unsigned (FreshBooks' registration message, carrying the verifier)."""
        self._queue.put(_Delivery(provider, url, "", form=tuple(fields)))

    def deliveries(self) -> list[dict[str, Json]]:
        """Every delivery attempt so far: provider, url, status (None: no answer), attempt, body."""
        with self._lock:
            return [dict(d) for d in self._log]

    def close(self) -> None:
        """Send what is queued (once each, no retries), then stop."""
        self._closing.set()
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            deadline = threading.Event()
            timer = threading.Timer(BATCH_SECONDS, deadline.set)
            timer.start()
            while not deadline.is_set():
                try:
                    item = self._queue.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is None:
                    stop = True
                    break
                batch.append(item)
            timer.cancel()
            self._send(batch)
            if stop:
                return

    def _send(self, batch: list[_Delivery]) -> None:
        groups: dict[tuple[str, str, str, str], list[Change]] = {}
        for item in batch:
            if item.change is None:
                form = "application/x-www-form-urlencoded"
                self._post(item.provider, item.url, urlencode(item.form).encode("ascii"), form, {})
                continue
            groups.setdefault((item.provider, item.change.tenant, item.url, item.key), []).append(item.change)
        for (provider, _tenant, url, key), changes in groups.items():
            if provider == "quickbooks":
                body = quickbooks_body(changes)
                self._post(provider, url, body, "application/json", {"intuit-signature": sign(key, body)})
            elif provider == "xero":
                body = xero_body(changes, self._xero.take(len(changes)))
                self._post(provider, url, body, "application/json", {"x-xero-signature": sign(key, body)})
            else:
                for change in changes:
                    fields = freshbooks_fields(change)
                    signature = freshbooks_signature(key, fields)
                    body = urlencode(fields).encode("ascii")
                    form = "application/x-www-form-urlencoded"
                    self._post(provider, url, body, form, {"X-FreshBooks-Hmac-SHA256": signature})

    def _post(self, provider: str, url: str, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        for attempt, pause in enumerate((0.0, *RETRY_SECONDS), start=1):
            if pause and self._closing.wait(pause):
                return  # closing: no more tries
            request = urllib.request.Request(url, data=body, method="POST")
            request.add_header("Content-Type", content_type)
            for name, value in headers.items():
                request.add_header(name, value)
            status: int | None
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    status = answer.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = None
            with self._lock:
                self._log.append(
                    {"provider": provider, "url": url, "status": status, "attempt": attempt, "body": body.decode()}
                )
            if status is not None and status < 500 and status != 429:
                return
