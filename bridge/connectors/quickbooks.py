"""QuickBooks Online connector on python-quickbooks (wire) and intuit-oauth (tokens).

The SDK builds URLs, parses JSON with Decimal and turns Faults into exceptions;
its transport (`process_request`) is replaced by ours so every call goes
through the rate limiter, the one retry policy and the token vault.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests
from quickbooks import QuickBooks  # type: ignore[import-untyped]
from quickbooks.exceptions import AuthorizationException, QuickbooksException  # type: ignore[import-untyped]

from bridge import clock, killpoints
from bridge.auth.quickbooks import auth_client, tokens_from
from bridge.auth.vault import TokenSet, TokenVault
from bridge.connectors.base import Applied, BaseConnector, Evidence, PageGuard, PullResult
from bridge.connectors.http import Limiter, RateLimiter
from bridge.errors import AuthError, DataError, ProviderError, TransportError
from bridge.incremental import Position, advance, reconcile_due
from bridge.mapping import quickbooks as qbo
from bridge.mapping.common import idempotency_key
from bridge.model import Invoice, Payment
from bridge.plan import Action, ActionKind
from bridge.store import Cursor

PRODUCTION = "https://quickbooks.api.intuit.com"
MINOR_VERSION = 75
PAGE = 1000
STALE_OBJECT = 5010
# Another writer changed the invoice between our read and our write: re-read and write again up to this often.
STALE_RETRIES = 4
# QuickBooks allows 500 calls a minute and 10 a second per company: stay just under both. The
# burst is small because a token bucket lets `burst + rate` calls through in its first second.
RATE_PER_SECOND = 8.0
BURST = 2
# The window of an incremental pull stops a little before the run started, so a record
# written while we read is picked up next time instead of being skipped.
SETTLE = timedelta(seconds=5)
CDC_LIMIT = timedelta(days=29)
FULL_RECONCILE_EVERY = timedelta(days=7)
ENTITIES = ("Invoice", "Payment", "Customer")


def _decimal_json(obj: Any) -> str:
    # Like the SDK's own encoder: amounts go out as exact strings, never through float.
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


def _updated(raw: Mapping[str, Any]) -> str:
    meta = raw.get("MetaData")
    return str(meta.get("LastUpdatedTime", "")) if isinstance(meta, Mapping) else ""


def _stamp_literal(stamp: str) -> str:
    """A last-updated time as a query literal; anything that is not an ISO 8601 timestamp is refused."""
    try:
        datetime.fromisoformat(stamp)
    except ValueError:
        raise ProviderError(f"QuickBooks gave a last-updated time that is not a timestamp: {stamp[:80]!r}") from None
    return query_string(stamp, "a last-updated time")


def _as_utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).astimezone(UTC)


def _order(raw: Mapping[str, Any]) -> tuple[tuple[datetime, str], str]:
    """A record's place in a keyset read: its last-updated instant (with the provider's text of it, which the
    next query starts from) and its id."""
    stamp = _updated(raw)
    try:
        instant = _as_utc(stamp)
    except ValueError:
        instant = datetime.min.replace(tzinfo=UTC)
    return (instant, stamp), str(raw.get("Id"))


class QuickBooksConnector(BaseConnector):
    """One linked QuickBooks company."""

    provider = "quickbooks"
    label = "QuickBooks"
    tenant_what = "realm id"
    sandbox_credentials = ("sandbox", "sandbox")
    streams = ("cdc",)  # one watermark for the change-data-capture reads of all entities

    def _api_base(self, emulator: str | None) -> str:
        return emulator or PRODUCTION

    def _make_limiter(self) -> Limiter:
        return RateLimiter(RATE_PER_SECOND, BURST)  # per company (the session shares it)

    @classmethod
    def paced(cls, per_minute: int) -> Limiter:
        return RateLimiter(per_minute / 60, BURST)

    def _connect(self, timeout: float) -> None:
        self._fee_items: dict[str, Mapping[str, Any]] = {}
        if self.api_base.startswith("http://"):
            os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain http only ever reaches an emulator
        self.qb = self._client(safe_to_repeat=True)
        # The one call without an idempotency key QuickBooks honours in full (the invoice e-mail) goes through
        # this one: retried only when QuickBooks said it did not process it.
        self.qb_once = self._client(safe_to_repeat=False)

    # -- transport ---------------------------------------------------------------------------

    def _client(self, *, safe_to_repeat: bool) -> Any:
        """A python-quickbooks client whose transport is our session (limiter, retries, tokens)."""
        qb = QuickBooks(company_id=self.tenant_id, minorversion=MINOR_VERSION, use_decimal=True)
        qb.api_url_v3 = self.api_base + "/v3"
        qb.sandbox = False
        qb.session = self.http
        qb.process_request = functools.partial(self._send, safe_to_repeat=safe_to_repeat)
        return qb

    def _send(self, request_type: str, url: str, *, safe_to_repeat: bool, **kwargs: Any) -> requests.Response:
        """python-quickbooks' `process_request(request_type, url, headers=, params=, data=)`."""
        return self.session.send(request_type, url, safe_to_repeat=safe_to_repeat, **kwargs)

    def _do_refresh(self, current: TokenSet) -> TokenSet:
        from intuitlib.exceptions import AuthClientError  # type: ignore[import-untyped]

        emulator = None if self.api_base == PRODUCTION else self.api_base
        timeout, bound = self.session.refresh_timeout()
        # The session runs this only with both credentials set.
        app_id, secret = self.client_id or "", self.client_secret or ""
        auth = auth_client(emulator, app_id, secret, "http://127.0.0.1/callback", timeout, bound)
        try:
            auth.refresh(refresh_token=current.refresh_token)
        except TransportError as exc:
            raise self.wire.note(exc) from None  # the deadline's error then says what hung
        except AuthClientError as exc:
            raise AuthError(
                f"QuickBooks refused to refresh the tokens of {self.name!r} (status {exc.status_code}): re-link it"
            ) from None
        killpoints.reached("token-refreshed")
        fresh = tokens_from(auth)
        return dataclasses.replace(fresh, extra={**current.extra, **fresh.extra})

    def _error(self, exc: QuickbooksException) -> Exception:
        if isinstance(exc, AuthorizationException):
            return AuthError(f"QuickBooks refused the credentials of {self.name!r}: {exc.message}; re-link it")
        error = ProviderError(f"QuickBooks error {exc.error_code}: {exc.message} {exc.detail}".strip())
        error.__cause__ = exc
        return error

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run an SDK call, turning its exceptions into bridge errors."""
        try:
            return fn(*args, **kwargs)
        except QuickbooksException as exc:
            raise self._error(exc) from exc

    def _query(self, statement: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(self.qb.query, statement)
        return result.get("QueryResponse", {}) or {}

    # -- reads -------------------------------------------------------------------------------

    def check(self) -> str:
        """One cheap authenticated call (the company's info)."""
        info = self._call(self.qb.get_single_object, "CompanyInfo", self.tenant_id)
        name = (info.get("CompanyInfo") or {}).get("CompanyName") if isinstance(info, Mapping) else None
        return f"QuickBooks company {self.tenant_id}" + (f" ({name})" if name else "")

    def _keyset(self, entity: str, cap: str) -> Iterator[list[Mapping[str, Any]]]:
        """Pages of `entity` ordered by last update, re-querying from the last timestamp seen (never by offset)."""
        position: Position[tuple[datetime, str]] | None = None
        guard = PageGuard("quickbooks", f"{entity} records")
        while True:
            watermark = position.watermark[1] if position is not None else None
            where = [f"Metadata.LastUpdatedTime <= {_stamp_literal(cap)}"]
            if watermark:
                # The watermark is the provider's own text: checked to be a timestamp before it enters a query.
                where.append(f"Metadata.LastUpdatedTime >= {_stamp_literal(watermark)}")
            rows: list[Mapping[str, Any]] = []
            start = 1
            # Records sharing one timestamp beyond a page are paged by position within that timestamp.
            while True:
                page = self._query(
                    f"SELECT * FROM {entity} WHERE {' AND '.join(where)} "
                    f"ORDERBY Metadata.LastUpdatedTime STARTPOSITION {start} MAXRESULTS {PAGE}"
                ).get(entity, [])
                if not isinstance(page, list):
                    raise ProviderError(f"QuickBooks answered a {entity} query with {type(page).__name__}, not a list")
                guard.page((str(r.get("Id")) if isinstance(r, Mapping) else "" for r in page), watermark)
                rows.extend(page)
                if len(page) < PAGE or _updated(page[0]) != _updated(page[-1]):
                    break
                start += PAGE
            fresh, position = advance(position, rows, _order)
            yield fresh
            if len(page) < PAGE:
                return  # the last query came back short: nothing more up to the cap

    def _pull(
        self, cursors: Mapping[str, Cursor], customers: Mapping[str, Mapping[str, Any]], *, full: bool
    ) -> PullResult:
        """Changed records since the cursors: one CDC call when recent, keyset queries otherwise."""
        now = clock.now_utc()
        cap = (now - SETTLE).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        cdc = cursors.get("cdc")
        due = reconcile_due(cdc.full_sync_at if cdc else None, now, FULL_RECONCILE_EVERY)
        if not full and cdc is not None and not due and now - _as_utc(cdc.watermark) < CDC_LIMIT:
            changed = self._cdc(cdc.watermark)
            if changed is not None:
                raw_customers, raw_invoices, raw_payments, deleted = changed
                result = self._mapped(raw_customers, raw_invoices, raw_payments, customers, full=False)
                result.deleted_invoices = deleted.get("Invoice", [])
                result.deleted_payments = deleted.get("Payment", [])
                result.cursors["cdc"] = Cursor(cap, (), cdc.full_sync_at)
                return result
        pulled: dict[str, list[Mapping[str, Any]]] = {}
        for entity in ("Customer", "Invoice", "Payment"):
            pulled[entity] = [row for page in self._keyset(entity, cap) for row in page]
        result = self._mapped(pulled["Customer"], pulled["Invoice"], pulled["Payment"], customers, full=True)
        result.cursors["cdc"] = Cursor(cap, (), now)
        return result

    def _cdc(
        self, since: str
    ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]], list[Mapping[str, Any]], dict[str, list[str]]] | None:
        """One change-data-capture call for all three entities; None when it was truncated (then keyset reads)."""
        data = self._call(self.qb.change_data_capture, ",".join(ENTITIES), since)
        found: dict[str, list[Mapping[str, Any]]] = {e: [] for e in ENTITIES}
        deleted: dict[str, list[str]] = {e: [] for e in ENTITIES}
        for block in data.get("CDCResponse", []):
            for response in block.get("QueryResponse", []):
                for entity in ENTITIES:
                    rows = response.get(entity) or []
                    if len(rows) >= PAGE:
                        return None
                    for row in rows:
                        if row.get("status") == "Deleted":
                            deleted[entity].append(str(row.get("Id")))
                        else:
                            found[entity].append(row)
        return found["Customer"], found["Invoice"], found["Payment"], deleted

    def _map_invoice(self, raw: Mapping[str, Any], customers: Mapping[str, Mapping[str, Any]]) -> Invoice:
        return qbo.map_invoice(raw, self.name, customers)

    def _map_payment(self, raw: Mapping[str, Any]) -> Payment:
        return qbo.map_payment(raw, self.name)

    def _record_id(self, raw: Mapping[str, Any], stream: str) -> str:
        return str(raw.get("Id", "?"))

    def _read_raw(self, invoice_id: str) -> Mapping[str, Any] | None:
        try:
            data = self.qb.get_single_object("Invoice", invoice_id)
        except QuickbooksException as exc:
            if exc.error_code == 610:  # object not found
                return None
            raise self._error(exc) from exc
        invoice = data.get("Invoice") if isinstance(data, Mapping) else None
        return invoice if isinstance(invoice, Mapping) else None

    # -- writes ------------------------------------------------------------------------------

    def _fee_item(self, name: str) -> Mapping[str, Any]:
        """The Item fee lines refer to, created once if the company has none by that name."""
        if name not in self._fee_items:
            literal = query_string(name, "the late-fee item name")
            items = self._query(f"SELECT * FROM Item WHERE Name = {literal}").get("Item", [])
            if items:
                self._fee_items[name] = items[0]
            else:
                body = {"Name": name, "Type": "Service", "Description": "Late fee under the contract"}
                created = self._call(
                    self.qb.create_object, "Item", _decimal_json(body), request_id=idempotency_key(f"item:{name}")
                )
                self._fee_items[name] = created["Item"]
        return self._fee_items[name]

    def _update(self, raw: Mapping[str, Any], action: Action, build: Any) -> Mapping[str, Any]:
        """Sparse update with the current SyncToken; on a stale token re-read and try again (a few times)."""
        key = idempotency_key(action.key)
        for attempt in range(1, STALE_RETRIES + 2):
            try:
                result = self._call(self.qb.update_object, "Invoice", _decimal_json(build(raw)), request_id=key)
                break
            except ProviderError as exc:
                if getattr(exc.__cause__, "error_code", None) != STALE_OBJECT or attempt > STALE_RETRIES:
                    raise
            fresh = self._read_raw(str(raw["Id"]))
            if fresh is None:
                raise ProviderError(f"invoice {action.invoice.number} disappeared during the update") from None
            raw = fresh
            self.stats.note_retry("stale SyncToken")
            # A request id is bound to its first answer (here the stale one): each try needs its own.
            key = idempotency_key(f"{action.key}:stale-retry" + (f"-{attempt}" if attempt > 1 else ""))
        invoice: Mapping[str, Any] = result["Invoice"]
        return invoice

    def apply(self, action: Action, raw_invoice: Mapping[str, Any]) -> Applied:
        """Carry out one action; every write carries a `requestid` derived from the action key."""
        if action.kind is ActionKind.LATE_FEE:
            item = self._fee_item(action.item or "Late Fee")
            if action.form == "invoice":
                body = qbo.fee_invoice_create(
                    raw_invoice, action, item, action.occurrence_date or clock.now_utc().date()
                )
                created = self._call(
                    self.qb.create_object, "Invoice", _decimal_json(body), request_id=idempotency_key(action.key)
                )
                return Applied(str(created["Invoice"]["Id"]), "invoice")
            updated = self._update(raw_invoice, action, lambda raw: qbo.fee_line_update(raw, action, item))
            return Applied(qbo.fee_line_id(updated, action) or str(updated["Id"]), "line", updated)
        if action.kind is ActionKind.UPDATE_DUE_DATE:
            assert action.new_due_date is not None
            new_due = action.new_due_date
            updated = self._update(raw_invoice, action, lambda raw: qbo.due_date_update(raw, new_due))
            return Applied(f"{updated['Id']}@{updated.get('SyncToken')}", None, updated)
        if action.kind is ActionKind.REMINDER:
            if action.channel != "provider":
                raise ProviderError(f"reminder channel {action.channel!r} is not available for QuickBooks yet")
            # The SDK's send() takes no request id; the endpoint does, so a replayed send is answered, not re-sent.
            target = f"invoice/{raw_invoice['Id']}/send?requestid={idempotency_key(action.key)}"
            if action.to:
                target += f"&sendTo={quote(action.to)}"
            sent = self._call(self.qb_once.misc_operation, target, None, "application/octet-stream")
            invoice = sent.get("Invoice") or {}
            delivered = qbo.delivery_time(invoice) or ""
            return Applied(f"{raw_invoice['Id']}@{delivered}", None, invoice or None)
        # A refusal writes nothing at the provider: the ledger records it, the message goes to the accountant.
        return Applied("recorded")

    def evidence(self, action: Action, pending_since: str) -> Evidence:
        """Look at the provider for the trace of an action that was pending when a run stopped."""
        if action.kind is ActionKind.LATE_FEE and action.form == "invoice":
            try:
                literal = query_string(qbo.fee_invoice_number(action), "the fee invoice number")
            except DataError as exc:  # cannot be looked up: in doubt, never sent again blind
                return Evidence("unknown", detail=str(exc))
            found = self._query(f"SELECT * FROM Invoice WHERE DocNumber = {literal}").get("Invoice", [])
            if found:
                return Evidence("applied", str(found[0]["Id"]), "fee invoice found")
            return Evidence("absent", detail="no fee invoice with that number")
        raw = self._read_raw(action.invoice.id)
        if raw is None:
            return Evidence("unknown", detail="the invoice is gone")
        if action.kind is ActionKind.LATE_FEE:
            line = qbo.fee_line_id(raw, action)
            return Evidence("applied", line, "fee line found") if line else Evidence("absent", detail="no fee line")
        if action.kind is ActionKind.UPDATE_DUE_DATE:
            assert action.new_due_date is not None
            if raw.get("DueDate") == action.new_due_date.isoformat():
                return Evidence("applied", str(raw["Id"]), "due date already moved")
            return Evidence("absent", detail="due date unchanged")
        if action.kind is ActionKind.REMINDER:
            delivered = qbo.delivery_time(raw)
            if delivered and _as_utc(delivered) >= _as_utc(pending_since) - timedelta(seconds=1):
                return Evidence("applied", f"{raw['Id']}@{delivered}", "QuickBooks shows the e-mail was sent")
            return Evidence("unknown", detail="QuickBooks shows no delivery since the attempt")
        return Evidence("applied", "recorded")


def factory(connection: Any, vault: TokenVault, env: Mapping[str, str]) -> QuickBooksConnector:
    """Entry point `bridge.connectors:quickbooks`: a connector for one configured connection."""
    return QuickBooksConnector.configured(connection, vault, env)
