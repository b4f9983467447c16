"""What every connector provides, and the records it hands to the sync.

A connector moves data; it never decides policy. It pulls incrementally
(a cursor per stream, saved with the records in one transaction), reads one
invoice fresh before a write, carries out one planned action with an
idempotency key derived from the action key, and finds the evidence of an
action whose outcome was not recorded (for the ledger's reconciliation).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Generic, Literal, Protocol, Self, TypeVar, cast
from urllib.parse import quote

from bridge import clock
from bridge.auth.vault import TokenSet, TokenVault
from bridge.connectors.http import CallStats, Limiter, RetryPolicy, WindowLimiter, shared_limiter
from bridge.connectors.session import ProviderSession
from bridge.errors import ConfigError, DataError, ProviderError, StalledPull
from bridge.incremental import Position, S, advance, reconcile_due
from bridge.model import EstimateRecord, Invoice, InvoiceStatus, Payment
from bridge.plan import Action, ActionKind, Warning
from bridge.providers import Provider
from bridge.store import ESTIMATES, Cursor, Quarantined

R = TypeVar("R")
Raw = Mapping[str, Any]  # a record as the provider sends it
Cursors = Mapping[str, Cursor]  # a connection's cursors, by stream
Records = Mapping[str, Raw]  # raw records by their provider id
Build = Callable[[Raw], Raw]  # an update of one invoice, made from the invoice as read
Found = tuple[Invoice, Raw] | None  # an invoice read again: mapped, with its raw payload (None: it is gone)

# The most records one listing of a pull may bring (a real book has far fewer): more stops the pull, so a provider
# inventing new records on every page cannot fill the memory before the pull's deadline.
MAX_LISTED = 500_000


class PageGuard:
    """Bounds one paged listing: a page must bring new ids unless it was asked for from a cursor the previous
    page was not (a keyset read restarting at a newer watermark repeats the rows at it), and the listing stops
    past `MAX_LISTED` records. Keeps the ids seen, not the rows."""

    def __init__(self, provider: str, what: str, *, max_listed: int = MAX_LISTED) -> None:
        self.provider = provider
        self.what = what
        self.max_listed = max_listed
        self.pages = 0
        self._seen: set[str] = set()
        self._cursor: object = None

    def page(self, ids: Iterable[str], cursor: object = None) -> None:
        """Count one page: the ids it brought and the cursor it was asked for from; `StalledPull` when it
        brought rows but nothing new from the same cursor (the next page would not either)."""
        self.pages += 1
        before = len(self._seen)
        got = list(ids)
        self._seen.update(got)
        moved = cursor != self._cursor
        self._cursor = cursor
        # An empty page ends a listing (the caller checks a stated page count that says otherwise).
        if self.pages > 1 and got and len(self._seen) == before and not moved:
            raise StalledPull(
                f"{self.provider} page {self.pages} brought no new {self.what} and did not advance the cursor: stopped"
            )
        if len(self._seen) > self.max_listed:
            raise StalledPull(f"{self.provider} listed more than {self.max_listed:,} {self.what} in one pull: stopped")

    def stated(self, answer: Mapping[str, Any], page: int, rows: int, *, per_page: int) -> tuple[int, int]:
        """(pages, total) of a listing whose answer states them, checked against each other and the page size: a
        count that is not a whole number, more pages than the stated total fills (a provider saying `"pages":
        1000000000` would otherwise be read for ever), or an empty page before the last is refused."""
        where = f"{self.provider} answered {self.what} page {page} with"
        stated = {"pages": 1, "total": 0, "per_page": per_page}
        for name, default in stated.items():
            value = default if answer.get(name) is None else answer.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ProviderError(f"{where} {name} = {str(value)[:40]!r}, not a whole number: stopped")
            stated[name] = value
        pages, total, per_page = stated["pages"], stated["total"], stated["per_page"]
        if per_page < 1 or pages > max(1, -(-total // per_page)):
            raise ProviderError(
                f"{where} pages = {pages}, more than {total} {self.what} at {per_page} a page fill: stopped"
            )
        if not rows and page < pages:
            raise StalledPull(f"{self.provider} page {page} of {pages} ({self.what}) was empty: stopped")
        return pages, total


def position_of(cursor: Cursor | None) -> Position[int] | None:
    """A stored cursor whose watermark is a number (seconds, milliseconds) as an incremental position."""
    return None if cursor is None else Position(int(cursor.watermark), frozenset(cursor.ids_at_watermark))


def take(since: Cursor | None, rows: Iterable[R], key: Callable[[R], tuple[int, str]]) -> tuple[list[R], Cursor | None]:
    """`incremental.advance` over stored cursors: the rows not taken since the cursor, and the cursor after them
    (the same one when nothing is new; a full read's date carried over)."""
    fresh, after = advance(position_of(since), rows, key)
    if not fresh or after is None:
        return fresh, since
    return fresh, Cursor(str(after.watermark), tuple(sorted(after.ids)), since.full_sync_at if since else None)


@dataclass
class PullResult:
    """Records pulled from one connection, the cursors to save with them, and what could not be mapped."""

    invoices: list[tuple[Invoice, Mapping[str, Any]]] = field(default_factory=list)
    payments: list[tuple[Payment, Mapping[str, Any]]] = field(default_factory=list)
    customers: list[Mapping[str, Any]] = field(default_factory=list)
    deleted_invoices: list[str] = field(default_factory=list)
    deleted_payments: list[str] = field(default_factory=list)
    cursors: dict[str, Cursor] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)  # what the accountant should know about the connection
    full: bool = False
    estimates: list[tuple[EstimateRecord, Mapping[str, Any]]] = field(default_factory=list)
    deleted_estimates: list[str] = field(default_factory=list)
    # Raw estimates a provider's own `_list` read (`lists_estimates`); the template maps them into `estimates`.
    estimate_rows: list[Mapping[str, Any]] = field(default_factory=list)


# What a provider lists in one pull (`BaseConnector._list`): the result so far (customers, deleted ids, cursors
# after the read, whether it was full) and the raw invoices and payments the template maps into it.
Listing = tuple[PullResult, list[Raw], list[Raw]]


@dataclass(frozen=True)
class Applied:
    """A carried-out action: the provider's id for what was written, the form it took, and the invoice
    as the provider returned it after the write (so a next action on it needs no re-read)."""

    response_id: str
    form: str | None = None
    invoice: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Evidence:
    """What the provider shows about an action whose outcome the ledger does not know."""

    found: Literal["applied", "absent", "unknown"]
    response_id: str | None = None
    detail: str = ""
    form: str | None = None  # the form a fee took, when the provider shows it (Xero may have fallen back)


class Connector(Protocol):
    """The interface `bridge.sync` uses for every provider."""

    name: str
    provider: str
    stats: CallStats
    streams: tuple[str, ...]  # the cursors `pull` reads and hands back

    def pull(self, cursors: Cursors, customers: Records, *, full: bool, estimates: bool = False) -> PullResult:
        """Everything changed since the cursors (everything when `full`), estimates too when `estimates` (their
        cursor is `ESTIMATES`)."""
        ...

    def read_invoice(
        self, invoice_id: str, customers: Mapping[str, Mapping[str, Any]]
    ) -> tuple[Invoice, Mapping[str, Any]] | None:
        """One invoice as the provider has it now (None when it is gone)."""
        ...

    def apply(self, action: Action, raw_invoice: Mapping[str, Any]) -> Applied:
        """Carry out one action, with an idempotency key derived from `action.key` where the provider has one."""
        ...

    # How many invoices one call may write line fees on (QuickBooks' /batch: 30); 1: each action on its own, and
    # `read_invoices` / `apply_together` are not used.
    write_batch: int

    def read_invoices(
        self, invoice_ids: list[str], customers: Mapping[str, Mapping[str, Any]]
    ) -> Mapping[str, Found | Exception]:
        """Several invoices as the provider has them now, by id (an exception: that one could not be mapped)."""
        ...

    def apply_together(self, writes: list[tuple[Action, Mapping[str, Any]]]) -> list[Applied | Exception]:
        """Line fees on up to `write_batch` invoices (each action with its invoice as just read) in as few calls as
        the provider allows, each keyed by its action: what came of each, in order (an exception: refused alone).
        Raising means no answer came for any of them."""
        ...

    def flush(self) -> None:
        """Write whatever the connector batched during `apply` (Xero: history notes); called after the last action."""
        ...

    def evidence(self, action: Action, pending_since: str) -> Evidence:
        """Did an action recorded as pending (at ISO time `pending_since`) reach the provider?"""
        ...

    def check(self) -> str:
        """One cheap authenticated call; a short description of the company on success."""
        ...


class RecordMapping(Protocol):
    """A provider's pure mapping module (`bridge.mapping.<provider>`), as far as the templates need it."""

    def map_invoice(self, raw: Raw, connection: str, customers: Mapping[str, Raw], /) -> Invoice: ...

    def map_payment(self, raw: Raw, connection: str, /) -> Payment: ...

    def record_id(self, raw: Raw, stream: str, /) -> str:
        """The provider's id of a customer, invoice or payment (`stream`: "customers", "invoices", "payments")."""
        ...

    def is_deleted(self, raw: Raw, /) -> bool:
        """A record the provider lists as deleted (it leaves the cache instead of being mapped)."""
        ...

    def customer_id(self, raw_invoice: Raw, /) -> str | None: ...

    def due_date(self, raw_invoice: Raw, /) -> str | None:
        """A raw invoice's due date, as an ISO day."""
        ...

    def fee_line_id(self, raw_invoice: Raw, action: Action, /) -> str | None:
        """The id of the line a fee action wrote, when it is on the invoice."""
        ...

    def due_date_update(self, raw_invoice: Raw, new_due: date, /) -> Raw:
        """The update that moves the invoice's due date."""
        ...

    def fee_line_removal(self, raw_invoice: Raw, action: Action, /) -> Raw:
        """The update that writes the invoice again without the fee line of `action`."""
        ...

    def version(self, raw_invoice: Raw, /) -> str:
        """The invoice's version as a write's answer states it (it ends the write's response id)."""
        ...

    def pay_link(self, answer: Any, /) -> str | None:
        """The online invoice / pay link in the answer to the connector's `link` read."""
        ...

    def map_estimate(self, raw: Raw, connection: str, /) -> EstimateRecord:
        """An estimate (quote) for the estimate check, with the keys invoices name it by."""
        ...


class BaseConnector(ABC):
    """What every connector shares, written once: the session (limiter, tokens, retries, statistics, wire), the
    pull template, the read of one invoice and the evidence of an action whose outcome is unknown.

    `pull` is a template, as a singer-sdk or dlt stream is: within the pull's deadline it decides whether a full
    read is due (`_full_due`), lets the provider list what changed (`_list`; by default two keyset streams,
    "invoices" and "payments", read by `_changed`, with the customers of the changed invoices), maps every record
    or quarantines it (`mapping`) and adds what the provider's settings call for (`_notices`). `apply` and
    `evidence` are templates too, over one hook per kind of write and `_fee_invoice_id`. The provider gives the
    hooks; it never repeats the loop."""

    descriptor: ClassVar[Provider]  # the plugin's descriptor, which names the provider (below) once
    provider: str  # the entry point's name, the wire's name and the key of the shared limiter
    label: str  # the provider as messages name it
    streams: tuple[str, ...]  # the cursors `pull` reads and hands back (the first one carries the full read's date)
    tenant_what: str  # what the provider calls the tenant id, in errors ("realm id")
    sandbox_credentials = ("sandbox-client", "sandbox-secret")  # the app credentials an emulator takes
    mapping: RecordMapping  # the provider's record mapping
    production_api: ClassVar[str]  # the real service's API root (`api_path` below it)
    api_path: ClassVar[str] = ""
    pace_per_minute: ClassVar[int]  # the provider's pace for one account, by default (`_make_limiter`)
    full_reconcile_every: ClassVar[timedelta] = timedelta(days=1)  # a full read this often (it finds deletions)
    payments_follow_invoices: ClassVar[bool] = False  # a payment always changes its invoice: no invoice, no read
    # What an e-mail carries: one invoice below the API root ("{tenant}" and "{id}" filled in), and the suffix and
    # query of its PDF and of its pay link (None: the provider has none; an answer `no_link_status`: not this one).
    invoice_path: ClassVar[str] = ""
    pdf: ClassVar[tuple[str, Mapping[str, str]] | None] = None
    link: ClassVar[tuple[str, Mapping[str, str]] | None] = None
    no_link_status: ClassVar[int | None] = None
    keeps_history = False  # the provider keeps an invoice history the bridge notes its SMTP e-mails in (a setting)
    # The provider's `_list` reads estimates itself when `estimates_wanted` (QuickBooks: in its CDC and batch calls)
    lists_estimates: ClassVar[bool] = False
    write_batch = 1  # invoices one call may write line fees on (`apply_together`)
    estimates_wanted = False  # set by `pull` for the length of one pull

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        d = cls.__dict__.get("descriptor")  # an intermediate class of a plugin may leave it to its subclasses
        if d is not None:
            cls.provider, cls.label, cls.tenant_what = d.name, d.display_name, d.tenant_label

    def __init__(
        self,
        name: str,
        tenant_id: str,
        vault: TokenVault,
        *,
        base_url: str | None = None,
        environment: str = "production",
        client_id: str | None = None,
        client_secret: str | None = None,
        policy: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        timeout: float = 30.0,
        sync_deadline: float | None = None,
        **settings: Any,
    ) -> None:
        """A connector for one linked tenant (`base_url`: an emulator's; `environment`: which of the real
        service's, see the provider descriptor). Every connector on the same account (API root and tenant) in
        this process shares one limiter, made by `_make_limiter` unless one is given, and its window is shared
        by every process on this machine (`shared_limiter`). `settings`: the provider's
        own, each declared as a class attribute with its default (see `options`)."""
        for key, value in settings.items():
            if not hasattr(type(self), key):
                raise TypeError(f"{type(self).__name__} has no setting {key!r}")
            setattr(self, key, value)
        self.name, self.environment, self.tenant_id, self.vault = name, environment, tenant_id, vault
        self.client_id, self.client_secret = client_id, client_secret
        self.emulator = base_url.rstrip("/") if base_url else None
        self.api_base = self._api_base(self.emulator)
        self.session = ProviderSession(
            self.provider,
            self.label,
            name,
            vault,
            account=(self.api_base, tenant_id),
            refresh=self._do_refresh,
            make_limiter=self._make_limiter,
            credentials=bool(client_id and client_secret),
            limiter=limiter,
            policy=policy,
            timeout=timeout,
            sync_deadline=sync_deadline,
        )
        self.stats, self.wire, self.http = self.session.stats, self.session.wire, self.session.wire.session
        self._connect(timeout)

    @classmethod
    def configured(cls, connection: Any, vault: TokenVault, env: Mapping[str, str]) -> Self:
        """A connector for one configured connection (each provider's entry point `factory` is this): the app's
        credentials from BRIDGE_<PROVIDER>_CLIENT_ID / _CLIENT_SECRET (an emulator's `sandbox_credentials`
        without them), and the connection's own `calls_per_minute` as a limiter (`paced`) shared by every
        connector on it."""
        if not connection.tenant_id:
            raise ConfigError(
                f"connections.{connection.name}.tenant_id: the {cls.label} {cls.tenant_what} is missing; re-link it"
            )
        emulator = connection.base_url is not None
        prefix = f"BRIDGE_{cls.provider.upper()}"
        per_minute = connection.calls_per_minute
        return cls(
            connection.name,
            connection.tenant_id,
            vault,
            base_url=connection.base_url,
            environment=connection.environment,
            timeout=connection.timeout_seconds,
            sync_deadline=connection.sync_deadline_seconds,
            client_id=env.get(f"{prefix}_CLIENT_ID") or (cls.sandbox_credentials[0] if emulator else None),
            client_secret=env.get(f"{prefix}_CLIENT_SECRET") or (cls.sandbox_credentials[1] if emulator else None),
            limiter=shared_limiter(
                (cls.provider, connection.base_url or "", connection.tenant_id, str(per_minute)),
                lambda: cls.paced(per_minute),
            )
            if per_minute
            else None,
            **cls.options(connection),
        )

    @classmethod
    def paced(cls, per_minute: int) -> Limiter:
        """The limiter a connection's own `calls_per_minute` sets."""
        return WindowLimiter(per_minute, 60.0)

    @classmethod
    def options(cls, connection: Any) -> dict[str, Any]:
        """The provider's own constructor options from a configured connection."""
        return {}

    # -- what an SMTP reminder carries (bridge.smtp) ------------------------------------------

    def invoice_pdf(self, invoice_id: str) -> bytes | None:
        """The provider's PDF of the invoice (`pdf`); None when the provider offers none."""
        return None if self.pdf is None else cast(bytes, self._fetch(invoice_id, self.pdf, "application/pdf"))

    def pay_link(self, invoice_id: str) -> str | None:
        """The provider's online invoice / pay link (`link`, read by the mapping's `pay_link`); None when the provider
        (or this invoice) has none."""
        found = None if self.link is None else self._fetch(invoice_id, self.link, "application/json")
        return None if found is None else self.mapping.pay_link(found)

    def _fetch(self, invoice_id: str, what: tuple[str, Mapping[str, str]], accept: str) -> Any:
        """One read for an e-mail's attachment or link (`what`: the suffix after `invoice_path` and the query),
        under the session (limiter, tokens, retries): the bytes for `application/pdf` (a `ProviderError` unless it
        is a PDF), the decoded JSON otherwise (None when the answer is `no_link_status`)."""
        path = self.invoice_path.format(tenant=quote(self.tenant_id), id=quote(invoice_id))
        url = f"{self.api_base}{path}{what[0]}"
        headers = {"Accept": accept, **self._read_headers()}
        response = self.session.send("GET", url, safe_to_repeat=True, headers=headers, params=what[1])
        if response.status_code == self.no_link_status and accept == "application/json":
            return None
        if response.status_code >= 400:
            raise ProviderError(f"{self.label} answered {response.status_code} to GET {url}")
        if accept == "application/pdf":
            if not response.content.startswith(b"%PDF-"):
                raise ProviderError(f"{self.label} answered GET {url} with something not a PDF")
            return response.content
        return response.json()

    def _read_headers(self) -> Mapping[str, str]:
        """What the provider wants on a read of our own beside the SDK's (Xero: the tenant)."""
        return {}

    # -- hooks: the session ------------------------------------------------------------------

    def _api_base(self, emulator: str | None) -> str:
        """The root of the provider's API (under the emulator's address when there is one, else in
        `self.environment`)."""
        return (emulator or self.production_api) + self.api_path

    def _make_limiter(self) -> Limiter:
        """The provider's pace for one account (the session shares it)."""
        return self.paced(self.pace_per_minute)

    @abstractmethod
    def _connect(self, timeout: float) -> None:
        """Set up the provider's SDK over the session (called once, at the end of `__init__`)."""

    @abstractmethod
    def _do_refresh(self, current: TokenSet) -> TokenSet:
        """The provider's token refresh (the session runs it under the vault's lock, with the app's credentials)."""

    # -- hooks: reads ------------------------------------------------------------------------

    def _full_due(self, cursors: Mapping[str, Cursor], now: datetime) -> bool:
        """A full read is due: never done, or not within `full_reconcile_every` (by the first stream's cursor)."""
        last = cursors.get(self.streams[0])
        return reconcile_due(last.full_sync_at if last else None, now, self.full_reconcile_every)

    def _list(self, cursors: Mapping[str, Cursor], now: datetime, *, full: bool) -> Listing:
        """What changed. By default the "invoices" and "payments" keyset streams, each read by `_changed` from its
        cursor (from nothing on a full read, whose time the cursors then carry), and the customers of the changed
        invoices."""
        invoices, after_invoices = self._changed("invoices", None if full else cursors.get("invoices"), full=full)
        since = None if full else cursors.get("payments")
        payments, after_payments = (
            self._changed("payments", since, full=full)
            if full or invoices or not self.payments_follow_invoices
            else ([], since)
        )
        result = PullResult(customers=self._customers_of(invoices, full=full), full=full)
        result.cursors.update(stamped({"invoices": after_invoices, "payments": after_payments}, now if full else None))
        return result, invoices, payments

    def _changed(self, stream: str, since: Cursor | None, *, full: bool) -> tuple[list[Raw], Cursor | None]:
        """The records of `stream` ("invoices", "payments") changed since the cursor, oldest first, and the
        cursor after them (used by the default `_list`)."""
        raise NotImplementedError(f"{type(self).__name__} lists no {stream} stream")

    def _customers(self, ids: list[str] | None) -> list[Raw]:
        """Customers, all of them (`None`) or those with these ids (used by the default `_list`)."""
        raise NotImplementedError(f"{type(self).__name__} lists no customers")

    def _estimates(self, since: Cursor | None, *, full: bool) -> tuple[list[Raw], Cursor | None]:
        """The estimates (quotes) changed since the cursor, oldest first, and the cursor after them (everything
        from None); read by `pull` when a contract checks estimates and `_list` does not read them itself."""
        raise NotImplementedError(f"{type(self).__name__} lists no estimates")

    def _notices(
        self, cursors: Mapping[str, Cursor], result: PullResult, customers: Mapping[str, Raw], now: datetime
    ) -> list[Warning]:
        """What the provider's own settings mean for the accountant (it may keep them in a cursor of `result`)."""
        return []

    @abstractmethod
    def _read_raw(self, invoice_id: str) -> Raw | None:
        """One invoice as the provider sends it (None when there is none by that id)."""

    # -- hooks: writes and evidence ----------------------------------------------------------

    @abstractmethod
    def _add_fee(self, action: Action, raw_invoice: Raw) -> Applied:
        """Write a late fee (a line on the invoice, or a fee invoice of its own: `action.form`)."""

    def _move_due_date(self, action: Action, raw_invoice: Raw, new_due: date) -> Applied:
        """Write the invoice's new due date."""
        return self._rewritten(action, raw_invoice, lambda raw: self.mapping.due_date_update(raw, new_due), None)

    @abstractmethod
    def _send_reminder(self, action: Action, raw_invoice: Raw) -> Applied:
        """Have the provider e-mail the invoice."""

    def _remove_fee_line(self, action: Action, raw_invoice: Raw) -> Applied:
        """Write the invoice again without the fee line `action` names (`bridge forgive`); `Applied.invoice`: the
        invoice as the provider answered."""
        return self._rewritten(action, raw_invoice, lambda raw: self.mapping.fee_line_removal(raw, action), "line")

    def _rewritten(self, action: Action, raw: Raw, build: Build, form: str | None) -> Applied:
        """`_rewrite` of the invoice, answered as "{invoice id}@{its version}"."""
        invoice_id = self.mapping.record_id(raw, "invoices") if raw else action.invoice.id
        updated = self._rewrite(action, invoice_id, raw, build)
        return Applied(f"{invoice_id}@{self.mapping.version(updated)}", form, updated)

    @abstractmethod
    def _rewrite(self, action: Action, invoice_id: str, raw: Raw, build: Build) -> Raw:
        """Write one invoice again with the update `build(raw)` gives (a provider that re-reads the invoice before
        trying again builds it again), keyed by the action and safe to repeat; the invoice as the provider answered."""

    def _void_fee_invoice(self, action: Action, raw_fee_invoice: Raw) -> Applied:
        """Void (or, where the provider has no void, delete) a separate fee invoice (`bridge forgive`)."""
        raise ProviderError(f"voiding a fee invoice is not available for {self.label}")

    @abstractmethod
    def _fee_invoice_id(self, action: Action) -> str | None:
        """The id of the fee invoice this fee action created, if there is one (a `DataError`: it cannot be
        looked up)."""

    @abstractmethod
    def _reminder_evidence(self, action: Action, raw: Raw, pending_since: str) -> Evidence:
        """The trace of a reminder e-mail sent since `pending_since`, on the invoice as it is now."""

    # -- the template ------------------------------------------------------------------------

    def pull(self, cursors: Cursors, customers: Records, *, full: bool, estimates: bool = False) -> PullResult:
        """Everything changed since the cursors (everything when `full`, or when a full read is due), estimates
        too when `estimates`, every call within the connection's pull deadline (`sync_deadline_seconds`)."""
        with self.session.pulling():
            now = clock.now_utc()
            full = full or self._full_due(cursors, now)
            self.estimates_wanted = estimates
            try:
                result, raw_invoices, raw_payments = self._list(cursors, now, full=full)
            finally:
                self.estimates_wanted = False
            known = {**customers, **{self.mapping.record_id(c, "customers"): c for c in result.customers}}
            for stream, raws in (("invoices", raw_invoices), ("payments", raw_payments)):
                for raw in raws:
                    self._map_one(result, stream, raw, known)
            if estimates:
                self._pull_estimates(cursors, result, now)
            result.warnings += self._notices(cursors, result, known, now)
            return result

    def _pull_estimates(self, cursors: Mapping[str, Cursor], result: PullResult, now: datetime) -> None:
        """The estimates of this pull into `result` (read by `_estimates` unless `_list` read them), each mapped,
        listed as deleted, or quarantined; a first read of them reads them all."""
        rows = result.estimate_rows
        if not self.lists_estimates:
            since = None if result.full else cursors.get(ESTIMATES)
            rows, after = self._estimates(since, full=result.full or since is None)
            result.cursors.update(stamped({ESTIMATES: after}, now if result.full else None))
        for raw in rows:
            record_id = self.mapping.record_id(raw, ESTIMATES)
            if self.mapping.is_deleted(raw):
                result.deleted_estimates.append(record_id)
                continue
            try:
                result.estimates.append((self.mapping.map_estimate(raw, self.name), raw))
            except DataError as exc:
                result.quarantined.append(Quarantined(ESTIMATES, record_id, str(exc), dict(raw)))
        result.estimate_rows = []

    def _map_one(self, result: PullResult, stream: str, raw: Raw, customers: Mapping[str, Raw]) -> None:
        """One record into `result`: listed as deleted, mapped, or quarantined when it cannot be mapped."""
        record_id = self.mapping.record_id(raw, stream)
        if self.mapping.is_deleted(raw):
            (result.deleted_invoices if stream == "invoices" else result.deleted_payments).append(record_id)
            return
        try:
            if stream == "invoices":
                result.invoices.append((self.mapping.map_invoice(raw, self.name, customers), raw))
            else:
                result.payments.append((self.mapping.map_payment(raw, self.name), raw))
        except DataError as exc:
            result.quarantined.append(Quarantined(stream, record_id, str(exc), dict(raw)))

    def _customers_of(self, raw_invoices: list[Raw], *, full: bool) -> list[Raw]:
        """Every customer on a full read; otherwise those of the changed invoices (customers have no cheap change
        feed worth a call on every sync)."""
        if full:
            return self._customers(None)
        wanted = sorted({c for c in map(self.mapping.customer_id, raw_invoices) if c})
        return self._customers(wanted) if wanted else []

    def read_invoice(
        self, invoice_id: str, customers: Mapping[str, Mapping[str, Any]]
    ) -> tuple[Invoice, Mapping[str, Any]] | None:
        """The invoice now, mapped, with its raw payload (None when it is gone)."""
        raw = self._read_raw(invoice_id)
        if raw is None or self.mapping.is_deleted(raw):
            return None
        return self.mapping.map_invoice(raw, self.name, customers), raw

    def read_invoices(
        self, invoice_ids: list[str], customers: Mapping[str, Mapping[str, Any]]
    ) -> Mapping[str, Found | Exception]:
        """The invoices now (`_read_raws`), each mapped (a `DataError` when it cannot be), with its raw payload."""
        out: dict[str, Found | Exception] = {}
        for invoice_id, raw in self._read_raws(invoice_ids).items():
            try:
                out[invoice_id] = (
                    None
                    if raw is None or self.mapping.is_deleted(raw)
                    else (self.mapping.map_invoice(raw, self.name, customers), raw)
                )
            except DataError as exc:
                out[invoice_id] = exc
        return out

    def _read_raws(self, invoice_ids: list[str]) -> Mapping[str, Raw | None]:
        """Several invoices as the provider sends them, by id (None: none by that id); one `_read_raw` each unless
        the provider reads several in one call."""
        return {invoice_id: self._read_raw(invoice_id) for invoice_id in invoice_ids}

    def apply_together(self, writes: list[tuple[Action, Mapping[str, Any]]]) -> list[Applied | Exception]:
        """Line fees on up to `write_batch` invoices: a fee already on its invoice as read is answered from it (as
        `apply` does), the others go to `_write_fees` by invoice. What came of each, in order."""
        done: dict[str, Applied | Exception] = {}
        waiting: dict[str, list[Action]] = {}  # by invoice id, the fees still to write
        raws: dict[str, Raw] = {}
        for action, raw in writes:
            there = self._on_invoice(action, raw)
            if there is not None:
                done[action.key] = there
            else:
                invoice_id = self.mapping.record_id(raw, "invoices")
                waiting.setdefault(invoice_id, []).append(action)
                raws[invoice_id] = raw
        if waiting:
            done.update(self._write_fees(waiting, raws))
        return [done[action.key] for action, _ in writes]

    def _write_fees(
        self, waiting: Mapping[str, list[Action]], raws: Mapping[str, Raw]
    ) -> Mapping[str, Applied | Exception]:
        """The fees still to write, by invoice (`raws`: each invoice as read), in as few calls as the provider
        allows: what came of each, by action key (an exception: refused alone; raising: no answer for any). One
        `_add_fee` each unless the provider writes several invoices in one call (with `write_batch`)."""
        return {a.key: self._add_fee(a, raws[invoice_id]) for invoice_id, actions in waiting.items() for a in actions}

    def _on_invoice(self, action: Action, raw_invoice: Raw) -> Applied | None:
        """A line fee already on the invoice as read just now (a write whose answer was lost): its answer, with
        nothing to write; None otherwise."""
        line = self.mapping.fee_line_id(raw_invoice, action) if action.form != "invoice" else None
        return Applied(line, "line", raw_invoice) if line else None

    def apply(self, action: Action, raw_invoice: Mapping[str, Any]) -> Applied:
        """Carry out one action, each write keyed by the action (an idempotency key where the provider has one).
        A refusal writes nothing at the provider: the ledger records it, the message goes to the accountant."""
        if action.kind is ActionKind.LATE_FEE:
            return self._on_invoice(action, raw_invoice) or self._add_fee(action, raw_invoice)
        if action.kind is ActionKind.UPDATE_DUE_DATE:
            assert action.new_due_date is not None
            return self._move_due_date(action, raw_invoice, action.new_due_date)
        if action.kind is ActionKind.REMINDER:
            if action.channel != "provider":  # an SMTP reminder goes through bridge.smtp, never here
                raise ProviderError(f"reminder channel {action.channel!r} is not available for {self.label} yet")
            return self._send_reminder(action, raw_invoice)
        if action.kind is ActionKind.FORGIVE_FEE:
            return self._take_back(action, raw_invoice)
        return Applied("recorded")

    def _take_back(self, action: Action, raw: Raw) -> Applied:
        """`bridge forgive`: void the fee invoice (`raw` is that invoice), or write the invoice (`raw`) again without
        the fee line; an answer that still shows the line is an error, never taken as done."""
        if action.form == "invoice":
            return self._void_fee_invoice(action, raw)
        result = self._remove_fee_line(action, raw)
        if self.mapping.fee_line_id(result.invoice or {}, action):
            raise ProviderError(f"{self.label} kept the fee line of {action.key} on the invoice: it was not taken back")
        return result

    def evidence(self, action: Action, pending_since: str) -> Evidence:
        """Look at the provider for the trace of an action that was pending when a run stopped (at ISO time
        `pending_since`): a fee line on the invoice or a fee invoice of its own; otherwise on the invoice as it is
        now (gone: unknown)."""
        raw = self._read_raw(action.invoice.id)
        if action.kind is ActionKind.LATE_FEE:
            line = self.mapping.fee_line_id(raw, action) if raw is not None else None
            if line:
                return Evidence("applied", line, "fee line found", "line")
            try:
                invoice = self._fee_invoice_id(action)
            except DataError as exc:  # cannot be looked up: in doubt, never written again blind
                return Evidence("unknown", detail=str(exc))
            if invoice:
                return Evidence("applied", invoice, "fee invoice found", "invoice")
            return Evidence("absent", detail="no fee line and no fee invoice")
        if action.kind is ActionKind.FORGIVE_FEE:
            return self._taken_back(action, raw)
        if raw is None:
            return Evidence("unknown", detail="the invoice is gone")
        if action.kind is ActionKind.UPDATE_DUE_DATE:
            assert action.new_due_date is not None
            if self.mapping.due_date(raw) == action.new_due_date.isoformat():
                return Evidence("applied", self.mapping.record_id(raw, "invoices"), "due date already moved")
            return Evidence("absent", detail="due date unchanged")
        if action.kind is ActionKind.REMINDER:
            return self._reminder_evidence(action, raw, pending_since)
        return Evidence("applied", "recorded")

    def _taken_back(self, action: Action, raw: Raw | None) -> Evidence:
        """Was the fee of a forgive action taken back? Its fee invoice void or gone, or its line off the invoice
        (`raw`, as it is now)."""
        if action.form == "invoice":
            try:
                fee_invoice = self._fee_invoice_id(action)
            except DataError as exc:
                return Evidence("unknown", detail=str(exc))
            found = self.read_invoice(fee_invoice, {}) if fee_invoice else None
            if found is None or found[0].status in (InvoiceStatus.VOID, InvoiceStatus.DELETED):
                return Evidence("applied", fee_invoice or "gone", "the fee invoice is void or gone", "invoice")
            return Evidence("absent", detail=f"the fee invoice {fee_invoice} is still {found[0].status.value}")
        if raw is None:
            return Evidence("unknown", detail="the invoice is gone")
        if self.mapping.fee_line_id(raw, action):
            return Evidence("absent", detail="the fee line is still on the invoice")
        return Evidence("applied", self.mapping.record_id(raw, "invoices"), "the fee line is off the invoice", "line")

    def flush(self) -> None:  # noqa: B027 (a hook with nothing to do by default, not an abstract one)
        """Nothing is batched (Xero batches its history notes)."""


def paged(guard: PageGuard, read: Callable[[int], tuple[list[Raw], bool]], id_of: Callable[[Raw], str]) -> list[Raw]:
    """Every row of a listing read page by page from page 1 (`read(page)`: the page's rows, and whether it was the
    last one), under `guard`."""
    found: list[Raw] = []
    page = 1
    while True:
        rows, last = read(page)
        guard.page(map(id_of, rows))
        found += rows
        if last:
            return found
        page += 1


class Keyset(Generic[S]):
    """One keyset read, step by step: `next()` says what to read (the watermark, None for everything, and the page
    within it), `take(rows)` takes the answer; `rows` holds every row from `since` on (the rest taken already),
    oldest first, and `done` is set by a short page.

    After a full page the next read starts again at page 1 from the newest row's watermark (never at an offset,
    which shifts when records change meanwhile); a full page wholly at one watermark (`same`), the one it was read
    from or the first read's, can only be followed by its next page. `keyset` drives one read to its end; a
    provider that can ask several queries in one call (QuickBooks' /batch) drives several side by side."""

    def __init__(
        self,
        guard: PageGuard,
        order: Callable[[Raw], tuple[S, str]],
        *,
        page_size: int,
        same: Callable[[S, S], bool],
        since: Position[S] | None = None,
    ) -> None:
        self.guard, self.order, self.page_size, self.same = guard, order, page_size, same
        self.position, self.page, self.done = since, 1, False
        self.rows: list[Raw] = []

    def next(self) -> tuple[S | None, int]:
        return (self.position.watermark if self.position is not None else None), self.page

    def take(self, rows: list[Raw]) -> None:
        watermark = self.next()[0]
        self.guard.page((self.order(r)[1] for r in rows), watermark)
        fresh, after = advance(self.position, rows, self.order)
        self.rows += fresh
        if len(rows) < self.page_size:
            self.done = True
            return
        first, last = self.order(rows[0])[0], self.order(rows[-1])[0]
        if self.same(first, last) and (watermark is None or self.same(first, watermark)):
            self.page += 1
        else:
            self.position, self.page = after, 1


def keyset(
    guard: PageGuard,
    read: Callable[[S | None, int], list[Raw]],
    order: Callable[[Raw], tuple[S, str]],
    *,
    page_size: int,
    same: Callable[[S, S], bool],
    since: Position[S] | None = None,
) -> list[Raw]:
    """Every row from `since` on, oldest first, by one `Keyset` read: `read(watermark, page)` lists the rows at or
    after the watermark (everything when None), `page_size` at a time."""
    reading = Keyset(guard, order, page_size=page_size, same=same, since=since)
    while not reading.done:
        reading.take(read(*reading.next()))
    return reading.rows


def stamped(cursors: Mapping[str, Cursor | None], full_at: datetime | None) -> dict[str, Cursor]:
    """The keyset cursors a pull hands back: a stream never read starts at "0"; a full read stamps its time."""
    out: dict[str, Cursor] = {}
    for stream, cursor in cursors.items():
        cursor = cursor or Cursor("0", ())
        out[stream] = cursor if full_at is None else Cursor(cursor.watermark, cursor.ids_at_watermark, full_at)
    return out
