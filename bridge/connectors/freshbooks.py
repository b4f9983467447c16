"""FreshBooks connector on freshbooks-sdk (URLs, query builders, envelopes, token calls), with our transport
underneath.

The SDK's resources send through a `requests.Session`; each of ours gets `_Session`, which routes every call
through the connector: the rate limiter, the current access token (refreshed ahead of expiry and on a 401,
under the vault's lock), and 429/5xx turned into the errors the one retry policy understands. The SDK's own
retries are off (`auto_retry=False`): they would re-send an `action_email` PUT and e-mail a client again.
Responses are parsed by the SDK with `parse_float=Decimal`; FreshBooks sends money as strings anyway, and our
payloads carry amounts as strings, so no binary float ever touches an amount.

FreshBooks has no idempotency key. Before a retried write the connector looks at the invoice (is the fee line
there? does a fee invoice with our number and mark exist?), and an e-mail PUT is never repeated after an
answer that leaves its outcome unknown: the ledger records it `in_doubt` and the run reports it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

import requests
from freshbooks.api.accounting import AccountingResource
from freshbooks.api.auth import AuthResource
from freshbooks.api.events import EventsResource
from freshbooks.builders import Builder
from freshbooks.builders.filter import FilterBuilder
from freshbooks.builders.includes import IncludesBuilder
from freshbooks.builders.paginator import PaginateBuilder
from freshbooks.builders.sort import SortBuilder
from freshbooks.errors import FreshBooksError

from bridge import clock, killpoints
from bridge.auth.freshbooks import PRODUCTION_API, account_ids, sdk_client, tokens_from
from bridge.auth.vault import TokenSet
from bridge.connectors.base import Applied, BaseConnector, Build, Evidence, PageGuard, PullResult, Raw, paged, take
from bridge.errors import AuthError, FreshBooksHTTPError, NumberCollision, ProviderError
from bridge.mapping import freshbooks as fm
from bridge.plan import Action, Warning
from bridge.providers.freshbooks import PROVIDER
from bridge.store import ESTIMATES, Cursor

T = TypeVar("T")
PER_PAGE = 100  # FreshBooks' maximum page size
# FreshBooks publishes no rate limit: a steady pace well under what the API takes, in any 60-second window.
CALLS_PER_MINUTE = 300
OVERLAP = timedelta(days=1)  # `search[updated_min]` has day granularity (and its time zone is not documented)
MAX_PASSES = 3  # offset paging read again from page 1 when a record left the list while paging


class _Session(requests.Session):
    """The SDK resources' session: every request goes through the connector's `_send`."""

    def __init__(self, send: Callable[..., requests.Response]) -> None:
        super().__init__()
        self._route = send

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        return self._route(str(method.decode() if isinstance(method, bytes) else method), str(url), **kwargs)


class FreshBooksConnector(BaseConnector):
    """One linked FreshBooks business (account)."""

    descriptor = PROVIDER
    # invoices/payments: keyset watermarks (seconds of `updated`, UTC); late_fees: clients allowing FreshBooks' fees
    streams = ("invoices", "payments", "late_fees")
    mapping = fm
    payments_follow_invoices = True  # a payment always changes its invoice
    production_api = PRODUCTION_API
    pace_per_minute = CALLS_PER_MINUTE
    # The PDF, and the share link (FreshBooks answers 422 for an invoice not yet sent: then there is none).
    invoice_path = "/accounting/account/{tenant}/invoices/invoices/{id}"
    pdf, link, no_link_status = ("/pdf", {}), ("/share_link", {"share_method": "share_link"}), 422

    def _connect(self, timeout: float) -> None:
        self.sdk = sdk_client(self.emulator, self.client_id or "", self.client_secret, timeout=int(timeout))
        config = SimpleNamespace(
            access_token="",  # replaced on every call by the current token (see `_send`)
            base_url=self.api_base,
            user_agent=self.sdk.user_agent,
            auto_retry=False,
            timeout=timeout,
            api_version=None,
        )
        session = _Session(self._send)
        self.invoices = AccountingResource(config, "invoices/invoices", "invoice", "invoices", delete_via_update=False)
        self.payments = AccountingResource(config, "payments/payments", "payment", "payments")
        self.clients = AccountingResource(config, "users/clients", "client", "clients")
        self.estimates = AccountingResource(config, "estimates/estimates", "estimate", "estimates")
        self.identity = AuthResource(config)
        self.callbacks = EventsResource(config, "events/callbacks", "callback", "callbacks")
        for resource in (self.invoices, self.payments, self.clients, self.estimates, self.identity, self.callbacks):
            resource.session = session

    # -- tokens ------------------------------------------------------------------------------

    def _do_refresh(self, current: TokenSet) -> TokenSet:
        self.sdk.timeout = max(1, int(self.session.refresh_timeout()[0]))
        try:
            answer = self.sdk.refresh_access_token(current.refresh_token)
        except (FreshBooksError, ValueError, KeyError) as exc:
            raise AuthError(f"FreshBooks refused to refresh the tokens of {self.name!r} ({exc}): re-link it") from None
        # Stored by the vault (inside its lock) before the new access token is used.
        killpoints.reached("token-refreshed")
        return tokens_from(answer, current)

    # -- transport ---------------------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One call of the SDK, not retried here: every SDK call is retried as a whole by `_call` (the
        SDK turns a 4xx into its own error, which `_call` turns into ours)."""
        kwargs.pop("timeout", None)  # the wire bounds every call
        return self.session.request(method, url, **kwargs)

    def _error(self, exc: FreshBooksError) -> ProviderError:
        messages = fm.error_messages(exc.raw_response) or [str(exc)]
        errno = exc.error_code if isinstance(exc.error_code, int) else None
        if exc.status_code == 403:
            said = f"FreshBooks account {self.tenant_id} is not reachable with {self.name!r}'s tokens: re-link it"
        else:
            said = f"FreshBooks answered {exc.status_code}: {'; '.join(messages)}"
        return FreshBooksHTTPError(said, exc.status_code, errno, messages)

    def _call(self, fn: Callable[[], T], *, safe: bool = True) -> T:
        """One SDK call under the retry policy; the SDK's own error becomes ours."""

        def attempt() -> T:
            try:
                return fn()
            except FreshBooksError as exc:
                raise self._error(exc) from None

        return self.session.call(attempt, safe_to_repeat=safe)

    @staticmethod
    def _lines() -> IncludesBuilder:
        includes = IncludesBuilder()
        includes.include("lines")
        return includes

    # -- webhooks ----------------------------------------------------------------------------

    def confirm_webhook(self, callback_id: str, verifier: str) -> None:
        """Confirm a webhook callback with the verifier FreshBooks sent to its address (the registration's last
        step: FreshBooks sends events to it only once confirmed). Safe to repeat."""
        self._call(lambda: self.callbacks.verify(self.tenant_id or "", int(callback_id), verifier))

    # -- reads -------------------------------------------------------------------------------

    def check(self) -> str:
        """One cheap authenticated call (the identity and its businesses)."""
        identity = self._call(lambda: self.identity.me_endpoint()).data
        names = dict(account_ids(identity if isinstance(identity, Mapping) else {}))
        if self.tenant_id not in names:
            raise AuthError(f"FreshBooks account {self.tenant_id} is not linked to {self.name!r}: re-link it")
        business = names[self.tenant_id]
        return f"FreshBooks account {self.tenant_id}" + (f" ({business})" if business else "")

    def _pages(
        self,
        resource: AccountingResource,
        key: str,
        filters: list[Builder],
        older_than: int | None = None,
    ) -> list[Mapping[str, Any]]:
        """The pages of a list, newest `updated` first, until a page ends older than `older_than` (the rest is
        older still: already seen) or the list ends.

        Newest first, an edit while paging moves a record to the front (a row read twice, never one skipped;
        the edit itself is newer than the new watermark and comes next time). A record leaving the list (deleted)
        would shift the rest up and skip one: the list's `total` then differs between pages, and the pass is read
        again from page 1.
        """
        found: dict[str, Mapping[str, Any]] = {}
        for _ in range(MAX_PASSES):
            found, totals, page = {}, set(), 1
            guard = PageGuard("freshbooks", key)
            while True:
                sort = SortBuilder()
                sort.descending("updated")
                builders = [*filters, sort, PaginateBuilder(page, PER_PAGE)]
                data = self._call(lambda b=builders: resource.list(self.tenant_id, builders=b)).data  # type: ignore[misc]
                rows = [r for r in data.get(key) or [] if isinstance(r, Mapping)]
                guard.page(fm.record_id(r) for r in rows)
                for row in rows:
                    row_id = fm.record_id(row)
                    if row_id not in found or fm.updated_seconds(row) >= fm.updated_seconds(found[row_id]):
                        found[row_id] = row
                pages, total = guard.stated(data, page, len(rows), per_page=PER_PAGE)
                totals.add(total)
                if older_than is not None and rows and fm.updated_seconds(rows[-1]) < older_than:
                    break
                if page >= pages:
                    break
                page += 1
            if len(totals) == 1:
                break
        return sorted(found.values(), key=lambda r: (fm.updated_seconds(r), fm.record_id(r)))

    def _changed(self, stream: str, since: Cursor | None, *, full: bool) -> tuple[list[Raw], Cursor | None]:
        """Records updated since the cursor: `search[updated_min]` a day before the watermark's Eastern day (day
        granularity), then de-duplicated on `updated` (older than the watermark, or at it and seen: skipped).
        Deleted records are left out of lists unless asked for: an incremental read asks for them too (a full
        read needs no deleted list: what is missing from it is gone, and the sync removes it)."""
        watermark = int(since.watermark) if since else None
        resource = {"invoices": self.invoices, "payments": self.payments, ESTIMATES: self.estimates}[stream]

        def builders(vis_state: int | None) -> list[Builder]:
            search = FilterBuilder()
            if watermark is not None:
                search.between("updated_min", fm.eastern_day(watermark) - OVERLAP)
            if vis_state is not None:
                search.equals("vis_state", vis_state)
            return [search, self._lines()] if stream == "invoices" else [search]

        rows = self._pages(resource, stream, builders(None), watermark)
        if not full:
            rows += self._pages(resource, stream, builders(fm.DELETED), watermark)
        return take(since, rows, lambda r: (fm.updated_seconds(r), fm.record_id(r)))

    def _estimates(self, since: Cursor | None, *, full: bool) -> tuple[list[Raw], Cursor | None]:
        """Estimates updated since the cursor, read as invoices are (`_changed`)."""
        return self._changed(ESTIMATES, since, full=full)

    def _customers(self, ids: list[str] | None) -> list[Raw]:
        """Clients (all of them, or those with these ids), page by page."""
        guard = PageGuard("freshbooks", "clients")

        def read(page: int) -> tuple[list[Raw], bool]:
            contacts = IncludesBuilder()
            contacts.include("contacts")  # the client's other contacts, copied by escalating reminders
            builders: list[Builder] = [PaginateBuilder(page, PER_PAGE), contacts]
            if ids is not None:
                search = FilterBuilder()
                search.in_list("userids", ids)
                builders.insert(0, search)
            data = self._call(lambda: self.clients.list(self.tenant_id, builders=builders)).data
            rows = [r for r in data.get("clients") or [] if isinstance(r, Mapping)]
            return rows, page >= guard.stated(data, page, len(rows), per_page=PER_PAGE)[0]

        return paged(guard, read, fm.record_id)

    def _notices(
        self, cursors: Mapping[str, Cursor], result: PullResult, customers: Mapping[str, Raw], now: datetime
    ) -> list[Warning]:
        """The clients that let FreshBooks add its own late fees, kept in the "late_fees" cursor so that quiet
        pulls warn too."""
        flagged = cursors.get("late_fees") if not result.full else None
        ids = fm.late_fee_clients(flagged.ids_at_watermark if flagged else (), result.customers)
        if flagged is None or ids != flagged.ids_at_watermark or result.full:
            result.cursors["late_fees"] = Cursor("clients", ids, now if result.full else None)
        return fm.late_fee_warnings(self.name, ids, customers)

    def _read_raw(self, invoice_id: str) -> Mapping[str, Any] | None:
        try:
            found = self._call(lambda: self.invoices.get(self.tenant_id, int(invoice_id), includes=self._lines()))
        except FreshBooksHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        except ValueError:
            return None  # not a FreshBooks id
        return found.data if isinstance(found.data, Mapping) and found.data else None

    def _by_number(self, number: str) -> list[Mapping[str, Any]]:
        search = FilterBuilder()
        search.equals("invoice_number", number)
        builders: list[Builder] = [search, self._lines()]
        data = self._call(lambda: self.invoices.list(self.tenant_id, builders=builders)).data
        return [r for r in data.get("invoices") or [] if isinstance(r, Mapping)]

    # -- writes ------------------------------------------------------------------------------

    def _update(self, invoice_id: str, body: Mapping[str, Any], *, safe: bool) -> Mapping[str, Any]:
        result = self._call(
            lambda: self.invoices.update(self.tenant_id, int(invoice_id), dict(body), includes=self._lines()),
            safe=safe,
        )
        return result.data if isinstance(result.data, Mapping) else {}

    def _add_fee(self, action: Action, raw_invoice: Raw) -> Applied:
        if action.form == "invoice":
            return self._fee_invoice(action, raw_invoice)
        invoice_id = fm.record_id(raw_invoice)
        attempts = [0]

        def attempt() -> Mapping[str, Any]:
            current: Mapping[str, Any] | None = raw_invoice
            if attempts[0]:
                # No idempotency key at FreshBooks: before a retried write, is the fee line already there?
                current = self._read_raw(invoice_id)
                if current is not None and fm.fee_line_id(current, action):
                    return current
            attempts[0] += 1
            body = fm.fee_line_update(current or raw_invoice, action)
            try:
                answer = self.invoices.update(self.tenant_id, int(invoice_id), body, includes=self._lines())
                return dict(answer.data)
            except FreshBooksError as exc:
                raise self._error(exc) from None

        updated = self.session.call(attempt, safe_to_repeat=True)
        return Applied(fm.fee_line_id(updated, action) or invoice_id, "line", updated)

    def _fee_invoice(self, action: Action, raw_invoice: Mapping[str, Any]) -> Applied:
        body = fm.fee_invoice_create(raw_invoice, action, action.occurrence_date or clock.now_utc().date())
        number = body["invoice_number"]

        def attempt() -> Mapping[str, Any]:
            try:
                return dict(self.invoices.create(self.tenant_id, body, includes=self._lines()).data)
            except FreshBooksError as exc:
                if exc.status_code != 409:
                    raise self._error(exc) from None
            # 409: the number is taken. By an earlier attempt of ours whose answer was lost?
            existing = self._by_number(number)
            ours = [r for r in existing if fm.is_fee_invoice_for(r, action)]
            if ours:
                return ours[0]
            if existing:
                raise ProviderError(
                    f"FreshBooks invoice number {number} is taken by another invoice: the fee of {action.key} "
                    "was not written"
                )
            raise NumberCollision(f"FreshBooks answered 409 creating invoice {number} (a concurrent create)")

        created = self.session.call(attempt, safe_to_repeat=True)
        return Applied(fm.record_id(created), "invoice")

    def _void_fee_invoice(self, action: Action, raw_fee_invoice: Raw) -> Applied:
        # FreshBooks has no void: the fee invoice is deleted (`DELETE …/invoices/{id}`, a soft delete). Gone already
        # (a repeat whose first answer was lost): done.
        invoice_id = fm.record_id(raw_fee_invoice)
        try:
            self._call(lambda: self.invoices.delete(self.tenant_id, int(invoice_id)))
        except FreshBooksHTTPError as exc:
            if exc.status != 404:
                raise
        return Applied(invoice_id, "invoice")

    def _rewrite(self, action: Action, invoice_id: str, raw: Raw, build: Build) -> Raw:
        # A due date, or the remaining lines, whole: writing them twice leaves the same invoice (safe to repeat).
        return self._update(invoice_id, build(raw), safe=True)

    def _send_reminder(self, action: Action, raw_invoice: Raw) -> Applied:
        # No idempotency key at FreshBooks: retried only on a 429 (not processed); a 5xx or a timeout propagates
        # and the ledger marks it in doubt.
        invoice_id = fm.record_id(raw_invoice) if raw_invoice else action.invoice.id
        self._update(invoice_id, fm.email_update(action), safe=False)
        return Applied(f"{invoice_id}@email:{hashlib.sha256(action.key.encode()).hexdigest()[:16]}")

    def _fee_invoice_id(self, action: Action) -> str | None:
        ours = [r for r in self._by_number(fm.fee_invoice_number(action)) if fm.is_fee_invoice_for(r, action)]
        return fm.record_id(ours[0]) if ours else None

    def _reminder_evidence(self, action: Action, raw: Raw, pending_since: str) -> Evidence:
        # FreshBooks keeps no record of a sent e-mail that the API shows; the status of an invoice that was
        # sent already does not change. So the bridge cannot tell, and never guesses.
        return Evidence("unknown", detail="FreshBooks shows no record of e-mails sent through the API")


factory = FreshBooksConnector.configured  # the entry point's connector factory
