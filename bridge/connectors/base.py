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
from datetime import datetime
from typing import Any, Literal, Protocol, Self, TypeVar

from bridge.auth.vault import TokenSet, TokenVault
from bridge.connectors.http import CallStats, Limiter, RetryPolicy, WindowLimiter, shared_limiter
from bridge.connectors.session import ProviderSession
from bridge.errors import ConfigError, DataError, ProviderError, StalledPull
from bridge.incremental import Position, advance
from bridge.model import Invoice, Payment
from bridge.plan import Action, Warning
from bridge.store import Cursor, Quarantined

R = TypeVar("R")

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

    def pull(
        self, cursors: Mapping[str, Cursor], customers: Mapping[str, Mapping[str, Any]], *, full: bool
    ) -> PullResult:
        """Everything changed since the cursors (everything when `full`)."""
        ...

    def read_invoice(
        self, invoice_id: str, customers: Mapping[str, Mapping[str, Any]]
    ) -> tuple[Invoice, Mapping[str, Any]] | None:
        """One invoice as the provider has it now (None when it is gone)."""
        ...

    def apply(self, action: Action, raw_invoice: Mapping[str, Any]) -> Applied:
        """Carry out one action, with an idempotency key derived from `action.key` where the provider has one."""
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


class BaseConnector(ABC):
    """What every connector shares, written once: the session (limiter, tokens, retries, statistics, wire), the
    pull within its deadline, the map-or-quarantine loop, the cursors a pull hands back, and the read of one
    invoice. A provider gives the hooks: `_pull` (its way of listing changes), `_do_refresh` (its token call),
    `_read_raw`, `_map_invoice`, `_map_payment`, `_record_id` and `_is_deleted`."""

    provider: str  # the entry point's name, the wire's name and the key of the shared limiter
    label: str  # the provider as messages name it
    streams: tuple[str, ...]  # the cursors `pull` reads and hands back
    tenant_what: str  # what the provider calls the tenant id, in errors ("realm id")
    sandbox_credentials = ("sandbox-client", "sandbox-secret")  # the app credentials an emulator takes

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
    ) -> None:
        """A connector for one linked tenant (`base_url`: an emulator's; `environment`: which of the real
        service's, see the provider descriptor). Every connector on the same account (API root and tenant) in
        this process shares one limiter, made by `_make_limiter` unless one is given."""
        self.name = name
        self.environment = environment
        self.tenant_id = tenant_id
        self.vault = vault
        self.client_id = client_id
        self.client_secret = client_secret
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
        """A connector for one configured connection (what every provider's `factory` returns): the app's
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

    @property
    def keeps_history(self) -> bool:
        """True where the provider keeps an invoice history the bridge notes its SMTP e-mails in."""
        return False

    def invoice_pdf(self, invoice_id: str) -> bytes | None:
        """The provider's PDF of the invoice; None when the provider offers none."""
        return None

    def pay_link(self, invoice_id: str) -> str | None:
        """The provider's online invoice / pay link; None when the provider (or this invoice) has none."""
        return None

    def _fetch(self, url: str, *, accept: str, headers: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        """One read for an e-mail's attachment or link, under the session (limiter, tokens, retries): the
        bytes for `application/pdf` (a `ProviderError` unless it is a PDF), the decoded JSON otherwise."""
        response = self.session.send(
            "GET", url, safe_to_repeat=True, headers={"Accept": accept, **(headers or {})}, **kwargs
        )
        if response.status_code >= 400:
            raise ProviderError(f"{self.label} answered {response.status_code} to GET {url.split('?', 1)[0]}")
        if accept == "application/pdf":
            if not response.content.startswith(b"%PDF-"):
                raise ProviderError(f"{self.label} answered GET {url.split('?', 1)[0]} with something not a PDF")
            return response.content
        return response.json()

    # -- hooks -------------------------------------------------------------------------------

    @abstractmethod
    def _api_base(self, emulator: str | None) -> str:
        """The root of the provider's API (under the emulator's address when there is one, else in
        `self.environment`)."""

    @abstractmethod
    def _make_limiter(self) -> Limiter:
        """The provider's pace for one account."""

    @abstractmethod
    def _connect(self, timeout: float) -> None:
        """Set up the provider's SDK over the session (called once, at the end of `__init__`)."""

    @abstractmethod
    def _do_refresh(self, current: TokenSet) -> TokenSet:
        """The provider's token refresh (the session runs it under the vault's lock, with the app's credentials)."""

    @abstractmethod
    def _pull(
        self, cursors: Mapping[str, Cursor], customers: Mapping[str, Mapping[str, Any]], *, full: bool
    ) -> PullResult:
        """Everything changed since the cursors (everything when `full`)."""

    @abstractmethod
    def _read_raw(self, invoice_id: str) -> Mapping[str, Any] | None:
        """One invoice as the provider sends it (None when there is none by that id)."""

    @abstractmethod
    def _map_invoice(self, raw: Mapping[str, Any], customers: Mapping[str, Mapping[str, Any]]) -> Invoice:
        """A provider invoice in the model (`DataError` when it cannot be)."""

    @abstractmethod
    def _map_payment(self, raw: Mapping[str, Any]) -> Payment:
        """A provider payment in the model (`DataError` when it cannot be)."""

    @abstractmethod
    def _record_id(self, raw: Mapping[str, Any], stream: str) -> str:
        """The provider's id of a customer, invoice or payment (`stream`: "customers", "invoices", "payments")."""

    def _is_deleted(self, raw: Mapping[str, Any]) -> bool:
        """A record the provider lists as deleted (it leaves the cache instead of being mapped)."""
        return False

    # -- the template ------------------------------------------------------------------------

    def pull(
        self, cursors: Mapping[str, Cursor], customers: Mapping[str, Mapping[str, Any]], *, full: bool
    ) -> PullResult:
        """`_pull`, every call of it within the connection's pull deadline (`sync_deadline_seconds`)."""
        with self.session.pulling():
            return self._pull(cursors, customers, full=full)

    def _mapped(
        self,
        raw_customers: list[Mapping[str, Any]],
        raw_invoices: list[Mapping[str, Any]],
        raw_payments: list[Mapping[str, Any]],
        known_customers: Mapping[str, Mapping[str, Any]],
        *,
        full: bool,
    ) -> PullResult:
        """The records pulled, mapped; a deleted one listed as deleted, one that cannot be mapped quarantined."""
        result = PullResult(customers=list(raw_customers), full=full)
        customers = {**known_customers, **{self._record_id(c, "customers"): c for c in raw_customers}}
        for stream, raws, kept, deleted in (
            ("invoices", raw_invoices, result.invoices, result.deleted_invoices),
            ("payments", raw_payments, result.payments, result.deleted_payments),
        ):
            for raw in raws:
                record_id = self._record_id(raw, stream)
                if self._is_deleted(raw):
                    deleted.append(record_id)
                    continue
                try:
                    record = self._map_invoice(raw, customers) if stream == "invoices" else self._map_payment(raw)
                except DataError as exc:
                    result.quarantined.append(Quarantined(stream, record_id, str(exc), dict(raw)))
                else:
                    kept.append((record, raw))  # type: ignore[arg-type]
        return result

    @staticmethod
    def _customers_of(
        raw_invoices: list[Mapping[str, Any]],
        customer_of: Callable[[Mapping[str, Any]], str | None],
        fetch: Callable[[list[str] | None], list[Mapping[str, Any]]],
        *,
        full: bool,
    ) -> list[Mapping[str, Any]]:
        """Every customer on a full read; otherwise those of the changed invoices (customers have no cheap change
        feed worth a call on every sync)."""
        if full:
            return fetch(None)
        wanted = sorted({c for c in map(customer_of, raw_invoices) if c})
        return fetch(wanted) if wanted else []

    def read_invoice(
        self, invoice_id: str, customers: Mapping[str, Mapping[str, Any]]
    ) -> tuple[Invoice, Mapping[str, Any]] | None:
        """The invoice now, mapped, with its raw payload (None when it is gone)."""
        raw = self._read_raw(invoice_id)
        if raw is None or self._is_deleted(raw):
            return None
        return self._map_invoice(raw, customers), raw

    def flush(self) -> None:  # noqa: B027 (a hook with nothing to do by default, not an abstract one)
        """Nothing is batched (Xero batches its history notes)."""


def stamped(cursors: Mapping[str, Cursor | None], full_at: datetime | None) -> dict[str, Cursor]:
    """The keyset cursors a pull hands back: a stream never read starts at "0"; a full read stamps its time."""
    out: dict[str, Cursor] = {}
    for stream, cursor in cursors.items():
        cursor = cursor or Cursor("0", ())
        out[stream] = cursor if full_at is None else Cursor(cursor.watermark, cursor.ids_at_watermark, full_at)
    return out
