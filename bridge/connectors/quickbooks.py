"""QuickBooks Online connector on python-quickbooks (wire) and intuit-oauth (tokens).

The SDK builds URLs, parses JSON with Decimal and turns Faults into exceptions;
its transport (`process_request`) is replaced by ours so every call goes
through the rate limiter, the one retry policy and the token vault.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from quickbooks import QuickBooks  # type: ignore[import-untyped]
from quickbooks.exceptions import AuthorizationException, QuickbooksException  # type: ignore[import-untyped]

from bridge import clock, killpoints
from bridge.auth.quickbooks import auth_client, tokens_from
from bridge.auth.vault import TokenSet
from bridge.connectors.base import Applied, BaseConnector, Build, Evidence, Keyset, Listing, PageGuard, PullResult, Raw
from bridge.connectors.http import Limiter, RateLimiter, WindowLimiter, shared_limiter
from bridge.errors import AuthError, ProviderError
from bridge.mapping import quickbooks as qbo
from bridge.mapping.common import idempotency_key
from bridge.mapping.quickbooks import PAGE, as_utc, decimal_json, query_string
from bridge.plan import Action
from bridge.providers.quickbooks import PROVIDER
from bridge.store import ESTIMATES, Cursor

PRODUCTION = "https://quickbooks.api.intuit.com"
SANDBOX = "https://sandbox-quickbooks.api.intuit.com"  # Intuit's development companies (environment = "sandbox")
MINOR_VERSION = 75
STALE_OBJECT = 5010
# Another writer changed the invoice between our read and our write: re-read and write again up to this often.
STALE_RETRIES = 4
BATCHES_PER_MINUTE = 38  # Intuit allows 40 batch calls a minute per company: a couple kept back
BATCH_ITEMS = 30  # the most operations Intuit takes in one /batch call: one invoice's fee lines are one
# QuickBooks allows 500 calls a minute and 10 a second per company: stay just under both. The
# burst is small because a token bucket lets `burst + rate` calls through in its first second.
RATE_PER_SECOND = 8.0
BURST = 2
# The window of an incremental pull stops a little before the run started, so a record
# written while we read is picked up next time instead of being skipped.
SETTLE = timedelta(seconds=5)
CDC_LIMIT = timedelta(days=29)
ENTITIES = ("Customer", "Invoice", "Payment")


class QuickBooksConnector(BaseConnector):
    """One linked QuickBooks company."""

    descriptor = PROVIDER
    sandbox_credentials = ("sandbox", "sandbox")
    streams = ("cdc",)  # one watermark for the change-data-capture reads of all entities
    mapping = qbo
    full_reconcile_every = timedelta(days=7)
    # The PDF (python-quickbooks' `download_pdf`), and `InvoiceLink`, present only when online payment is on.
    invoice_path = "/v3/company/{tenant}/invoice/{id}"
    pdf = ("/pdf", {"minorversion": str(MINOR_VERSION)})
    link = ("", {"include": "invoiceLink", "minorversion": str(MINOR_VERSION)})
    lists_estimates = True  # in the same CDC and /batch calls as the rest (policy.md §2.1)
    write_batch = BATCH_ITEMS  # line fees on this many invoices in one /batch call (`apply_together`)

    def _api_base(self, emulator: str | None) -> str:
        return emulator or (SANDBOX if self.environment == "sandbox" else PRODUCTION)

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
        # Intuit also counts /batch calls on their own (40 a minute per company), on top of every call's pace.
        self._batches = shared_limiter(("quickbooks-batch", self.api_base, self.tenant_id), self._batch_pace)

    @staticmethod
    def _batch_pace() -> Limiter:
        return WindowLimiter(BATCHES_PER_MINUTE, 60.0)

    # -- transport ---------------------------------------------------------------------------

    def _client(self, *, safe_to_repeat: bool) -> Any:
        """A python-quickbooks client whose transport is our session (limiter, retries, tokens)."""
        qb = QuickBooks(company_id=self.tenant_id, minorversion=MINOR_VERSION, use_decimal=True)
        qb.api_url_v3 = self.api_base + "/v3"
        qb.sandbox = False
        qb.session = self.http
        # python-quickbooks' `process_request(request_type, url, headers=, params=, data=)`.
        qb.process_request = functools.partial(self.session.send, safe_to_repeat=safe_to_repeat)
        return qb

    def _do_refresh(self, current: TokenSet) -> TokenSet:
        from intuitlib.exceptions import AuthClientError  # type: ignore[import-untyped]

        timeout, bound = self.session.refresh_timeout()
        # The session runs this only with both credentials set.
        app_id, secret = self.client_id or "", self.client_secret or ""
        redirect = "http://127.0.0.1/callback"
        auth = auth_client(self.emulator, app_id, secret, redirect, timeout, bound, environment=self.environment)
        try:
            auth.refresh(refresh_token=current.refresh_token)
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

    def _read_all(self, cap: str, entities: tuple[str, ...] = ENTITIES) -> dict[str, list[Raw]]:
        """Every record of `entities` (customers, invoices, payments; estimates when wanted) up to `cap`, each by a
        `Keyset` read (re-queried from the last timestamp seen, paged by position only within one timestamp); the
        next query of each entity still reading goes in one /batch call with the others' (never two pages of one
        entity at once: an offset page is safe only within one timestamp)."""
        reads = {
            entity: Keyset(PageGuard("quickbooks", f"{entity} records"), qbo.order, page_size=PAGE, same=_same_instant)
            for entity in entities
        }
        while pending := {entity: read for entity, read in reads.items() if not read.done}:
            queries = {entity: qbo.keyset_query(entity, cap, *read.next()) for entity, read in pending.items()}
            self._batches.acquire()
            answer = self._call(self.qb.batch_operation, decimal_json(qbo.batch_queries(queries)))
            for entity, rows in qbo.batch_query_rows(answer, queries).items():
                pending[entity].take(rows)
        return {entity: read.rows for entity, read in reads.items()}

    def _full_due(self, cursors: Mapping[str, Cursor], now: datetime) -> bool:
        """Also when the change-data-capture window no longer reaches back to the cursor."""
        cdc = cursors.get("cdc")
        return cdc is None or super()._full_due(cursors, now) or now - as_utc(cdc.watermark) >= CDC_LIMIT

    def _list(self, cursors: Mapping[str, Cursor], now: datetime, *, full: bool) -> Listing:
        """One CDC call for all three entities when recent; keyset queries of each otherwise (or when truncated)."""
        cap = (now - SETTLE).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        cdc = cursors.get("cdc")
        # Estimates, when wanted, ride in the same calls; once their cursor has caught up with the CDC one (before
        # that, all of them are read by query, in one more /batch call).
        wanted = ("Estimate",) if self.estimates_wanted else ()
        estimates = cursors.get(ESTIMATES)
        along = wanted if estimates is not None and cdc is not None and estimates.watermark == cdc.watermark else ()
        # Deletions come as tombstones in a change-data-capture answer, which the template sorts out.
        changes = (
            None
            if full or cdc is None
            else self._call(self.qb.change_data_capture, ",".join(ENTITIES + along), cdc.watermark)
        )
        found = None if changes is None else qbo.cdc_records(changes, ENTITIES + along)
        full_at = cdc.full_sync_at if cdc else None
        if found is None:  # a full read: every record up to the cap, by query
            found, full, full_at = self._read_all(cap, ENTITIES + wanted), True, now
        elif wanted and not along:
            found.update(self._read_all(cap, wanted))
        customers = [c for c in found["Customer"] if not qbo.is_deleted(c)]
        result = PullResult(customers=customers, cursors={"cdc": Cursor(cap, (), full_at)}, full=full)
        if wanted:
            result.estimate_rows, result.cursors[ESTIMATES] = found["Estimate"], Cursor(cap, (), full_at)
        return result, found["Invoice"], found["Payment"]

    def _read_raw(self, invoice_id: str) -> Mapping[str, Any] | None:
        try:
            data = self.qb.get_single_object("Invoice", invoice_id)
        except QuickbooksException as exc:
            if exc.error_code == 610:  # object not found
                return None
            raise self._error(exc) from exc
        invoice = data.get("Invoice") if isinstance(data, Mapping) else None
        return invoice if isinstance(invoice, Mapping) else None

    def _read_raws(self, invoice_ids: list[str]) -> Mapping[str, Raw | None]:
        """Several invoices in one query (`Id IN (...)`), at most a page of them."""
        assert len(invoice_ids) <= PAGE
        literals = ", ".join(query_string(i, "an invoice id") for i in invoice_ids)
        rows = self._query(f"SELECT * FROM Invoice WHERE Id IN ({literals}) MAXRESULTS {PAGE}").get("Invoice", [])
        found = {str(row.get("Id")): row for row in rows if isinstance(row, Mapping)}
        return {invoice_id: found.get(invoice_id) for invoice_id in invoice_ids}

    # -- writes ------------------------------------------------------------------------------

    def _write_fees(
        self, waiting: Mapping[str, list[Action]], raws: Mapping[str, Raw]
    ) -> dict[str, Applied | Exception]:
        """Line fees on up to `BATCH_ITEMS` invoices in one /batch call: one sparse update per invoice carrying all
        its new fee lines, the call keyed by its actions (`requestid`), counted against the batch pace as well as
        the call pace. An item refused for a stale SyncToken is read again and sent in a next batch (a few times),
        as a single write is; any other refusal is its own actions' answer. A call that fails answers every action
        still unwritten."""
        done: dict[str, Applied | Exception] = {}
        waiting, raws = dict(waiting), dict(raws)
        url = f"{self.qb.api_url}/company/{self.tenant_id}/batch"
        for attempt in range(STALE_RETRIES + 1):
            if not waiting:
                break
            keys = ",".join(a.key for actions in waiting.values() for a in actions)
            # A request id is bound to its first answer: a batch sent again after a stale item needs its own.
            key = idempotency_key(f"batch:{keys}" + (f":stale-retry-{attempt}" if attempt else ""))
            try:
                bodies = {
                    invoice_id: qbo.fee_line_update(
                        raws[invoice_id], [(a, self._fee_item(a.item or "Late Fee")) for a in actions]
                    )
                    for invoice_id, actions in waiting.items()
                }
                self._batches.acquire()
                answer = self._call(self.qb.post, url, decimal_json(qbo.batch_updates(bodies)), request_id=key)
                stale: dict[str, list[Action]] = {}
                for invoice_id, got in qbo.batch_invoices(answer, list(bodies)).items():
                    if isinstance(got, qbo.BatchItemRefused) and str(STALE_OBJECT) in got.codes:
                        stale[invoice_id] = waiting[invoice_id]
                        continue
                    for action in waiting[invoice_id]:
                        done[action.key] = (
                            got
                            if isinstance(got, Exception)
                            else Applied(qbo.fee_line_id(got, action) or invoice_id, "line", got)
                        )
                if stale and attempt < STALE_RETRIES:
                    self.stats.note_retry("stale SyncToken")
                    fresh = self._read_raws(list(stale))
                    for invoice_id, again in fresh.items():
                        if again is None:
                            gone = ProviderError(f"invoice {invoice_id} disappeared during the update")
                            done.update((a.key, gone) for a in stale.pop(invoice_id))
                        else:
                            raws[invoice_id] = again
                else:
                    for invoice_id, actions in stale.items():
                        refused = ProviderError(
                            f"invoice {invoice_id} kept changing: its SyncToken was stale {attempt + 1} times"
                        )
                        done.update((a.key, refused) for a in actions)
                    stale = {}
                waiting = stale
            except Exception as exc:  # the call as a whole: every fee still waiting has this answer
                done.update((a.key, exc) for actions in waiting.values() for a in actions)
                break
        return done

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
                    self.qb.create_object, "Item", decimal_json(body), request_id=idempotency_key(f"item:{name}")
                )
                self._fee_items[name] = created["Item"]
        return self._fee_items[name]

    def _rewrite(self, action: Action, invoice_id: str, raw: Raw, build: Build, void: bool = False) -> Raw:
        """Sparse update (or a void) with the current SyncToken; on a stale token re-read and try again (a few
        times)."""
        key, params = idempotency_key(action.key), {"operation": "void"} if void else {}
        for attempt in range(1, STALE_RETRIES + 2):
            try:
                body = decimal_json(build(raw))
                result = self._call(self.qb.update_object, "Invoice", body, request_id=key, params=params)
                break
            except ProviderError as exc:
                if getattr(exc.__cause__, "error_code", None) != STALE_OBJECT or attempt > STALE_RETRIES:
                    raise
            fresh = self._read_raw(invoice_id)
            if fresh is None:
                raise ProviderError(f"invoice {action.invoice.number} disappeared during the update") from None
            raw = fresh
            self.stats.note_retry("stale SyncToken")
            # A request id is bound to its first answer (here the stale one): each try needs its own.
            key = idempotency_key(f"{action.key}:stale-retry" + (f"-{attempt}" if attempt > 1 else ""))
        invoice: Mapping[str, Any] = result["Invoice"]
        return invoice

    def _add_fee(self, action: Action, raw_invoice: Raw) -> Applied:
        item = self._fee_item(action.item or "Late Fee")
        if action.form == "invoice":
            body = qbo.fee_invoice_create(raw_invoice, action, item, action.occurrence_date or clock.now_utc().date())
            created = self._call(
                self.qb.create_object, "Invoice", decimal_json(body), request_id=idempotency_key(action.key)
            )
            return Applied(str(created["Invoice"]["Id"]), "invoice")
        updated = self._rewrite(
            action, raw_invoice["Id"], raw_invoice, lambda r: qbo.fee_line_update(r, [(action, item)])
        )
        return Applied(qbo.fee_line_id(updated, action) or str(updated["Id"]), "line", updated)

    def _void_fee_invoice(self, action: Action, raw_fee_invoice: Raw) -> Applied:
        voided = self._rewrite(action, raw_fee_invoice["Id"], raw_fee_invoice, qbo.void_body, void=True)
        return Applied(str(voided["Id"]), "invoice", voided)

    def _send_reminder(self, action: Action, raw_invoice: Raw) -> Applied:
        # The SDK's send() takes no request id; the endpoint does, so a replayed send is answered, not re-sent.
        target = f"invoice/{raw_invoice['Id']}/send?requestid={idempotency_key(action.key)}"
        if action.to:
            target += f"&sendTo={quote(action.to)}"
        sent = self._call(self.qb_once.misc_operation, target, None, "application/octet-stream")
        invoice = sent.get("Invoice") or {}
        return Applied(f"{raw_invoice['Id']}@{qbo.delivery_time(invoice) or ''}", None, invoice or None)

    def _fee_invoice_id(self, action: Action) -> str | None:
        literal = query_string(qbo.fee_invoice_number(action), "the fee invoice number")
        found = self._query(f"SELECT * FROM Invoice WHERE DocNumber = {literal}").get("Invoice", [])
        return str(found[0]["Id"]) if found else None

    def _reminder_evidence(self, action: Action, raw: Raw, pending_since: str) -> Evidence:
        delivered = qbo.delivery_time(raw)
        if delivered and as_utc(delivered) >= as_utc(pending_since) - timedelta(seconds=1):
            return Evidence("applied", f"{raw['Id']}@{delivered}", "QuickBooks shows the e-mail was sent")
        return Evidence("unknown", detail="QuickBooks shows no delivery since the attempt")


def _same_instant(a: tuple[datetime, str], b: tuple[datetime, str]) -> bool:
    return a[0] == b[0]


factory = QuickBooksConnector.configured  # the entry point's connector factory
