"""What every connector provides, and the records it hands to the sync.

A connector moves data; it never decides policy. It pulls incrementally
(a cursor per stream, saved with the records in one transaction), reads one
invoice fresh before a write, carries out one planned action with an
idempotency key derived from the action key, and finds the evidence of an
action whose outcome was not recorded (for the ledger's reconciliation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from bridge.connectors.http import CallStats
from bridge.errors import StalledPull
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
