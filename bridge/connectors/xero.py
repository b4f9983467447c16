"""Xero connector on xero-python (wire and token refresh), with our transport underneath.

xero-python builds every URL, query and header (tenant, If-Modified-Since,
Idempotency-Key) and runs the token refresh, handing each refreshed token to
`oauth2_token_saver`, which stores it before anything uses it. Its HTTP layer is
replaced by ours: the rate limiter, the one retry policy (the SDK's own silent
GET retries never run), the vault's refresh lock, and exact amounts both ways:
responses are parsed with `Decimal`, and request bodies are encoded by us
because the SDK's serializer turns every Decimal into a binary float.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
import simplejson
from xero_python.accounting import AccountingApi  # type: ignore[import-untyped]
from xero_python.accounting.models import RequestEmpty  # type: ignore[import-untyped]
from xero_python.api_client import ApiClient, Configuration  # type: ignore[import-untyped]
from xero_python.api_client.oauth2 import OAuth2Token  # type: ignore[import-untyped]
from xero_python.api_client.serializer import serialize  # type: ignore[import-untyped]

from bridge import clock, killpoints
from bridge.auth.vault import TokenSet
from bridge.auth.xero import PRODUCTION_API, PRODUCTION_IDENTITY, sdk_token, token_url, tokens_from
from bridge.connectors.base import (
    Applied,
    BaseConnector,
    Build,
    Evidence,
    PageGuard,
    PullResult,
    Raw,
    keyset,
    paged,
    position_of,
    take,
)
from bridge.connectors.http import RETRIABLE_STATUS
from bridge.errors import AuthError, ProviderError, QuotaExhausted, TransportError, XeroHTTPError
from bridge.mapping import xero as xm
from bridge.mapping.common import idempotency_key
from bridge.plan import Action, Warning
from bridge.providers.xero import PROVIDER
from bridge.store import ESTIMATES, Cursor

PAGE = 1000
QUOTES_PAGE = 100  # what one page of GET /Quotes holds
# Xero allows an app 60 calls a minute per organisation (and at most 5 at once: the connector makes one at a
# time), counted when each call arrives; the bridge counts when it leaves, in one window for every process on the
# machine. Two are kept back for the difference (a call held up on the way lands in a later minute at Xero).
CALLS_PER_MINUTE = 58
# Calls kept back from the daily limit (5,000 a day): when fewer remain, writes wait for the next run.
DAILY_RESERVE = 50
KEY_LIMIT = 128  # Xero's Idempotency-Key
# Invoices one POST /Invoices writes fee lines on (Xero takes up to 50 elements a call, and a body up to 3.5 MB).
WRITE_BATCH = 50
# A stream's listing: the AccountingApi method, its `where` (sales only) and the answer's key.
_LISTS: dict[str, tuple[str, str | None, str]] = {
    "invoices": ("get_invoices", 'Type=="ACCREC"', "Invoices"),
    "payments": ("get_payments", 'PaymentType=="ACCRECPAYMENT"', "Payments"),
    # GET /Quotes takes If-Modified-Since and order but no where or pageSize: 100 a page (Xero's OpenAPI spec)
    ESTIMATES: ("get_quotes", None, "Quotes"),
}


class RawJSON(str):
    """A request body we encoded ourselves (exact amounts); xero-python passes it through untouched."""

    def __new__(cls, body: Any) -> RawJSON:
        return super().__new__(cls, simplejson.dumps(body, use_decimal=True))


serialize.register("RawJSON")(lambda value, explicit_type=None: value)


class _Reply:
    """What xero-python expects back from its HTTP layer (status, data, headers)."""

    def __init__(self, response: requests.Response) -> None:
        self.status = response.status_code
        self.reason = response.reason
        self.data = response.content
        self._headers = response.headers

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")

    def getheaders(self) -> Mapping[str, str]:
        return self._headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self._headers.get(name, default)


def _naive_utc(ms: int) -> datetime:
    """If-Modified-Since for a keyset watermark: Xero reads it to the second, so the second it falls in."""
    return datetime.fromtimestamp(ms // 1000, UTC).replace(tzinfo=None)


class XeroConnector(BaseConnector):
    """One linked Xero organisation (tenant)."""

    descriptor = PROVIDER
    # invoices/payments: keyset watermarks (ms of UpdatedDateUTC); reminders: the organisation's own reminder setting
    streams = ("invoices", "payments", "reminders")
    mapping = xm
    production_api, api_path = PRODUCTION_API, "/api.xro/2.0"
    pace_per_minute = CALLS_PER_MINUTE
    # The PDF is the invoice itself asked for as `application/pdf`; the online invoice holds the pay link.
    invoice_path, pdf, link = "/Invoices/{id}", ("", {}), ("/OnlineInvoice", {})
    keeps_history = True  # a note in the invoice's history for every action, and every e-mail sent by SMTP
    daily_reserve = DAILY_RESERVE
    write_batch = WRITE_BATCH  # line fees on this many invoices in one POST /Invoices (`apply_together`)

    @classmethod
    def options(cls, connection: Any) -> dict[str, Any]:
        return {"keeps_history": connection.history_notes}

    def _connect(self, timeout: float) -> None:
        self.tokens = self.session.tokens
        self.day_remaining: int | None = None
        self.note_failures: list[str] = []
        # Per invoice, in the order first noted: (action key, note) waiting for `flush`.
        self._notes: dict[str, list[tuple[str, str]]] = {}
        self._refreshing: TokenSet | None = None  # during a refresh: the tokens being refreshed
        self._refreshed: TokenSet | None = None  # during a refresh: what the saver stored
        # xero-python's Configuration() returns a copy of the first one ever made in the process and ignores
        # its arguments (its metaclass keeps a default). Build a fresh one past the metaclass, leaving that
        # default alone: otherwise every connector would share the first one's app credentials and token state.
        token = OAuth2Token(client_id=self.client_id, client_secret=self.client_secret)
        config = type.__call__(Configuration, oauth2_token=token)
        self.api_client = ApiClient(
            config, pool_threads=1, oauth2_token_getter=self._sdk_token, oauth2_token_saver=self._save_refreshed
        )
        self.api_client.rest_client.request = self._send  # the SDK's HTTP layer is ours (no urllib3 call is made)
        self.accounting = AccountingApi(self.api_client, base_url=self.api_base)

    # -- tokens ------------------------------------------------------------------------------

    def _sdk_token(self) -> dict[str, Any]:
        return sdk_token(self._refreshing or self.tokens.current())

    def _save_refreshed(self, token: dict[str, Any]) -> None:
        """xero-python's `oauth2_token_saver`: store the rotated tokens first (inside the vault's lock, so they
        are durable even if this process dies next), then use them."""
        new = tokens_from(token, self._refreshing or self.tokens.current())
        killpoints.reached("token-refreshed")
        self.vault.save(self.name, new)
        self._refreshed = new

    def _do_refresh(self, current: TokenSet) -> TokenSet:
        self._refreshing, self._refreshed = current, None
        try:
            self.api_client.refresh_oauth2_token()  # POST to the token URL; the saver stores the answer
        except XeroHTTPError as exc:
            raise AuthError(f"Xero refused to refresh the tokens of {self.name!r} ({exc}): re-link it") from None
        finally:
            self._refreshing = None
        if self._refreshed is None:
            raise AuthError(f"Xero did not hand back new tokens for {self.name!r}: re-link it")
        return self._refreshed

    # -- transport ---------------------------------------------------------------------------

    def _send(self, method: str, url: str, **options: Any) -> _Reply:
        """xero-python's `RESTClientObject.request(method, url, query_params=, headers=, body=, post_params=, ...)`."""
        query, headers = list(options.get("query_params") or []), dict(options.get("headers") or {})
        body, form = options.get("body"), list(options.get("post_params") or [])
        if self.emulator and url.startswith(PRODUCTION_IDENTITY):
            url = token_url(self.emulator)  # xero-python's token URL is a class constant: point it here
        api = url.startswith(self.api_base)
        if body is not None:  # ours come encoded already; the SDK's own (its models) are encoded here
            data: str | list[Any] | None = body if isinstance(body, RawJSON) else RawJSON(body)
        else:
            data = form or None
        if api and method != "GET":
            if "Idempotency-Key" not in headers:  # every write goes through `_write`, which gives it one
                raise ProviderError(f"a Xero write without an Idempotency-Key ({method} {url[:80]}): not sent")
            if self.day_remaining is not None and self.day_remaining <= self.daily_reserve:
                raise QuotaExhausted(
                    f"Xero's daily call limit for {self.name!r} is nearly used up ({self.day_remaining} calls left)"
                )
        # Every call is safe to repeat: reads, writes (each with an Idempotency-Key), and a token refresh
        # (a repeat is covered by Xero's grace period for the previous refresh token).
        response = self.session.send(
            method,
            url,
            safe_to_repeat=True,
            authorize=api,
            screen=functools.partial(self._screen, api=api),
            params=query,
            headers=headers,
            data=data,
        )
        return _Reply(response)

    def _screen(self, response: requests.Response, *, api: bool) -> None:
        """Xero's own answers: the calls left today, the daily limit, and a 4xx with its messages."""
        remaining = response.headers.get("X-DayLimit-Remaining")
        if api and remaining is not None and remaining.isdigit():
            self.day_remaining = int(remaining)
        if response.status_code == 429 and response.headers.get("X-Rate-Limit-Problem", "").lower() == "daily":
            self.day_remaining = 0
            raise QuotaExhausted(f"Xero's daily call limit for {self.name!r} is used up")
        if response.status_code >= 400 and response.status_code not in RETRIABLE_STATUS:
            raise self._http_error(response, api)

    def _http_error(self, response: requests.Response, api: bool) -> Exception:
        status = response.status_code
        if status == 401:
            return AuthError(f"Xero refused the credentials of {self.name!r}: re-link it")
        if status == 403 and api:
            return AuthError(f"Xero organisation {self.tenant_id} is not connected to {self.name!r}: re-link it")
        messages = xm.error_messages(response.content)
        detail = "; ".join(messages) or response.text[:200]
        return XeroHTTPError(f"Xero answered {status}: {detail}", status, messages)

    @staticmethod
    def _json(reply: _Reply) -> dict[str, Any]:
        if not reply.data:
            return {}
        try:
            parsed = json.loads(reply.data, parse_float=Decimal)
        except ValueError:
            raise ProviderError(f"Xero answered {reply.status} with a body that is not JSON") from None
        return parsed if isinstance(parsed, dict) else {}

    def _get(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._json(fn(self.tenant_id, *args, _preload_content=False, **kwargs))

    # -- reads -------------------------------------------------------------------------------

    def check(self) -> str:
        """One cheap authenticated call (the organisation)."""
        orgs = self._get(self.accounting.get_organisations).get("Organisations") or [{}]
        name = orgs[0].get("Name") if isinstance(orgs[0], Mapping) else None
        return f"Xero organisation {self.tenant_id}" + (f" ({name})" if name else "")

    def _changed(self, stream: str, since: Cursor | None, *, full: bool) -> tuple[list[Raw], Cursor | None]:
        """Everything modified since the cursor, oldest first (`keyset`: If-Modified-Since the last record's
        second, paged only within one second, the rest seen already left out)."""
        method, where, key = _LISTS[stream]
        fetch = getattr(self.accounting, method)
        filters = {"where": where, "page_size": PAGE} if where else {}
        size = PAGE if where else QUOTES_PAGE

        def order(row: Raw) -> tuple[int, str]:
            return xm.updated_ms(row), xm.record_id(row, stream)

        def read(watermark: int | None, page: int) -> list[Raw]:
            extra = {"if_modified_since": _naive_utc(watermark)} if watermark is not None else {}
            listed = self._get(fetch, order="UpdatedDateUTC ASC", page=page, **filters, **extra)
            return [r for r in listed.get(key) or [] if isinstance(r, Mapping)]

        rows = keyset(
            PageGuard("xero", key.lower()), read, order, page_size=size, same=_same_second, since=position_of(since)
        )
        return take(since, rows, order)

    def _estimates(self, since: Cursor | None, *, full: bool) -> tuple[list[Raw], Cursor | None]:
        """Quotes modified since the cursor, read as invoices are (`_changed`)."""
        return self._changed(ESTIMATES, since, full=full)

    def _customers(self, ids: list[str] | None) -> list[Raw]:
        """Contacts (all of them, or those with these ids), page by page."""

        def read(page: int) -> tuple[list[Raw], bool]:
            extra = {"i_ds": ids} if ids is not None else {}
            rows = self._get(self.accounting.get_contacts, page=page, page_size=PAGE, **extra).get("Contacts") or []
            return [r for r in rows if isinstance(r, Mapping)], len(rows) < PAGE

        return paged(PageGuard("xero", "contacts"), read, lambda r: str(r.get("ContactID")))

    def _notices(
        self, cursors: Mapping[str, Cursor], result: PullResult, customers: Mapping[str, Raw], now: datetime
    ) -> list[Warning]:
        """The organisation's own invoice reminders (read on a full pull, kept in the "reminders" cursor)."""
        reminders = cursors.get("reminders")
        if result.full or reminders is None:
            enabled = xm.reminders_enabled(self._get(self.accounting.get_invoice_reminders))
            reminders = result.cursors["reminders"] = Cursor("enabled" if enabled else "disabled", (), now)
        return [xm.reminders_warning(self.name)] if reminders.watermark == "enabled" else []

    def _read_raws(self, invoice_ids: list[str]) -> Mapping[str, Raw | None]:
        """Several invoices in one `GET /Invoices?IDs=` (asked for a page, so their lines come too)."""
        found = self._get(self.accounting.get_invoices, i_ds=invoice_ids, page=1, page_size=PAGE).get("Invoices")
        by_id = {str(r.get("InvoiceID")): r for r in found or [] if isinstance(r, Mapping)}
        return {invoice_id: by_id.get(invoice_id) for invoice_id in invoice_ids}

    def _read_raw(self, invoice_id: str) -> Mapping[str, Any] | None:
        try:
            found = self._get(self.accounting.get_invoice, invoice_id).get("Invoices") or []
        except XeroHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        return found[0] if found and isinstance(found[0], Mapping) else None

    # -- writes ------------------------------------------------------------------------------

    @staticmethod
    def _key(action_key: str, suffix: str = "") -> str:
        return idempotency_key(action_key + suffix, limit=KEY_LIMIT)

    def _write(self, fn: Callable[..., Any], *args: Any, key: str, **kwargs: Any) -> dict[str, Any]:
        return self._json(fn(self.tenant_id, *args, idempotency_key=key, _preload_content=False, **kwargs))

    def _write_invoice(self, invoice: Raw, fn: Callable[..., Any], *args: Any, key: str) -> dict[str, Any]:
        """Create or update one invoice (the body encoded by us: exact amounts); Xero's answer for it."""
        answer = self._write(fn, *args, RawJSON({"Invoices": [invoice]}), key=key)
        written: dict[str, Any] = (answer.get("Invoices") or [{}])[0]
        return written

    def _fee_invoice(self, action: Action, raw_invoice: Mapping[str, Any]) -> Applied:
        fee = xm.fee_invoice_create(raw_invoice, action, action.occurrence_date or clock.now_utc().date())
        created = self._write_invoice(fee, self.accounting.create_invoices, key=self._key(action.key, ":invoice"))
        return Applied(str(created.get("InvoiceID")), "invoice")

    def _add_fee(self, action: Action, raw_invoice: Raw) -> Applied:
        if action.form == "invoice" or _allocated(raw_invoice):
            return self._fee_invoice(action, raw_invoice)
        invoice_id, body = raw_invoice["InvoiceID"], xm.fee_line_update(raw_invoice, [action])
        try:
            invoice = self._write_invoice(body, self.accounting.update_invoice, invoice_id, key=self._key(action.key))
        except XeroHTTPError as exc:
            if exc.status == 400 and any(xm.NOT_EDITABLE in m for m in exc.messages):
                # A payment or credit was allocated since the invoice was read: the fee goes on its own invoice.
                return self._fee_invoice(action, raw_invoice)
            raise
        return Applied(xm.fee_line_id(invoice, action) or str(invoice.get("InvoiceID")), "line", invoice)

    def _note(self, invoice_id: str, action: Action, form: str | None) -> None:
        """Queue the action's note for the invoice's history; the notes of one invoice go in one call, written
        once notes wait for more invoices than one write carries (the fees of a group, then each invoice's other
        actions, share the call) or at `flush`."""
        if invoice_id not in self._notes and len(self._notes) >= self.write_batch:
            self._flush_notes(next(iter(self._notes)))
        self._notes.setdefault(invoice_id, []).append((action.key, xm.history_note(action, form)))

    def flush(self) -> None:
        """Write the queued history notes (one call per invoice). A failed note never undoes or fails an action."""
        for invoice_id in list(self._notes):
            self._flush_notes(invoice_id)

    def _flush_notes(self, invoice_id: str) -> None:
        notes = self._notes.pop(invoice_id)
        body = {"HistoryRecords": [{"Details": text} for _, text in notes]}
        key = self._key("notes:" + ",".join(k for k, _ in notes))
        try:
            self._write(self.accounting.create_invoice_history, invoice_id, RawJSON(body), key=key)
        except (ProviderError, AuthError, TransportError) as exc:
            self.note_failures += [f"{k}: {exc}" for k, _ in notes]

    def _void_fee_invoice(self, action: Action, raw_fee_invoice: Raw) -> Applied:
        return self._rewritten(action, raw_fee_invoice, xm.void_update, "invoice")

    def _rewrite(self, action: Action, invoice_id: str, raw: Raw, build: Build) -> Raw:
        """`POST /Invoices/{id}` of one update, keyed by the action."""
        return self._write_invoice(build(raw), self.accounting.update_invoice, invoice_id, key=self._key(action.key))

    def _send_reminder(self, action: Action, raw_invoice: Raw) -> Applied:
        # Xero sends its own invoice e-mail to the contact; the Idempotency-Key makes a repeat a replay.
        invoice_id = str(raw_invoice.get("InvoiceID") or action.invoice.id)
        self._write(self.accounting.email_invoice, invoice_id, RequestEmpty(), key=self._key(action.key))
        return Applied(f"{invoice_id}@email:{self._key(action.key)[:20]}")

    def apply(self, action: Action, raw_invoice: Mapping[str, Any]) -> Applied:
        """Carry out one action (every write with an Idempotency-Key derived from the action key), then queue its
        note for the invoice's history."""
        result = super().apply(action, raw_invoice)
        self._noted(action, raw_invoice, result)
        return result

    def _noted(self, action: Action, raw_invoice: Mapping[str, Any], result: Applied) -> None:
        if self.keeps_history and result.response_id != "recorded":
            self._note(str(raw_invoice.get("InvoiceID") or action.invoice.id), action, result.form)

    def apply_together(self, writes: list[tuple[Action, Raw]]) -> list[Applied | Exception]:
        """The fees written together (`_write_fees`), then each one written (or already there) has its note queued,
        as `apply` queues it."""
        results = super().apply_together(writes)
        for (action, raw), result in zip(writes, results, strict=True):
            if isinstance(result, Applied):
                self._noted(action, raw, result)
        return results

    def _write_fees(
        self, waiting: Mapping[str, list[Action]], raws: Mapping[str, Raw]
    ) -> dict[str, Applied | Exception]:
        """Line fees on up to `WRITE_BATCH` invoices in one `POST /Invoices?summarizeErrors=false` (each invoice
        answered on its own), keyed by its actions, each invoice's new fee lines in its one element. An invoice with
        a payment or credit allocated (as read, or as Xero says when refusing it) gets its fees as invoices of their
        own, as a single write does; any other refusal is its own actions' answer."""
        done: dict[str, Applied | Exception] = {}
        lines: dict[str, list[Action]] = {}  # by invoice id, the fees to write as lines
        for invoice_id, actions in waiting.items():
            for action in actions:
                if _allocated(raws[invoice_id]) or action.form == "invoice":
                    done[action.key] = self._alone(action, raws[invoice_id])
                else:
                    lines.setdefault(invoice_id, []).append(action)
        if lines:
            ids = list(lines)
            body = RawJSON({"Invoices": [xm.fee_line_update(raws[i], lines[i]) for i in ids]})
            key = self._key("fees:" + ",".join(a.key for i in ids for a in lines[i]))
            try:
                answer = self._write(self.accounting.update_or_create_invoices, body, key=key, summarize_errors=False)
            except Exception as exc:  # the call as a whole: every fee it carried has this answer
                done.update((a.key, exc) for i in ids for a in lines[i])
            else:
                found = xm.written_invoices(answer, ids)
                for invoice_id in ids:
                    got = found.get(invoice_id)
                    for action in lines[invoice_id]:
                        done[action.key] = self._answered(action, raws[invoice_id], got)
        return done

    def _answered(self, action: Action, raw: Raw, got: Mapping[str, Any] | list[str] | None) -> Applied | Exception:
        """One fee's outcome from its invoice's element of a `POST /Invoices` answer."""
        if got is None:
            return TransportError(f"Xero's answer holds no result for invoice {action.invoice.number}: outcome unknown")
        if isinstance(got, list):
            if any(xm.NOT_EDITABLE in m for m in got):
                # A payment or credit was allocated since the invoice was read: the fee goes on its own invoice.
                return self._alone(action, raw, fee_invoice=True)
            return XeroHTTPError(f"Xero refused invoice {action.invoice.number}: {'; '.join(got)}", 400, got)
        return Applied(xm.fee_line_id(got, action) or str(got.get("InvoiceID")), "line", got)

    def _alone(self, action: Action, raw: Raw, *, fee_invoice: bool = False) -> Applied | Exception:
        """A fee written on its own (`_add_fee`, or straight as a fee invoice): its result, or why it failed."""
        try:
            return self._fee_invoice(action, raw) if fee_invoice else self._add_fee(action, raw)
        except Exception as exc:
            return exc

    def note_sent(self, action: Action) -> None:
        """Queue the note of a reminder the firm's mailbox sent (written by `flush`, like every note)."""
        self._note(action.invoice.id, action, None)

    def _read_headers(self) -> dict[str, str]:
        return {"xero-tenant-id": self.tenant_id}

    def _fee_invoice_id(self, action: Action) -> str | None:
        found = self._get(self.accounting.get_invoices, invoice_numbers=[xm.fee_invoice_number(action)])
        live = [i for i in found.get("Invoices") or [] if isinstance(i, Mapping) and not xm.is_deleted(i)]
        return str(live[0].get("InvoiceID")) if live else None

    def _reminder_evidence(self, action: Action, raw: Raw, pending_since: str) -> Evidence:
        since = datetime.fromisoformat(pending_since)
        for record in self._get(self.accounting.get_invoice_history, action.invoice.id).get("HistoryRecords") or []:
            if isinstance(record, Mapping) and action.key in str(record.get("Details") or ""):
                when = xm.moment(record.get("DateUTC"), "DateUTC")
                if when >= since - timedelta(seconds=1):
                    return Evidence("applied", str(raw.get("InvoiceID")), "the invoice history shows the e-mail")
        return Evidence("unknown", detail="Xero shows no note of the e-mail since the attempt")


def _allocated(raw_invoice: Raw) -> bool:
    """A payment or credit is allocated to the invoice: Xero no longer lets its lines be edited."""
    return any(Decimal(str(raw_invoice.get(k) or 0)) > 0 for k in ("AmountPaid", "AmountCredited"))


def _same_second(a: int, b: int) -> bool:
    return a // 1000 == b // 1000


factory = XeroConnector.configured  # the entry point's connector factory
