"""The bridge's persistent state: SQLAlchemy Core tables and Alembic migrations; SQLite by default, PostgreSQL by URL.

Usage::

    store = Store.open("sqlite:///bridge.db")      # or "postgresql://user@host/db"
    store.save_pull("acme-qbo", invoices=[(invoice, raw)], cursors={"invoices": Cursor("2026-10-20T10:00:00Z")})
    entry = store.ledger_begin(action)             # committed `pending` before the provider is called
    store.ledger_finish(action.key, "applied", response_id="130")
"""

from __future__ import annotations

from bridge.errors import StoreBusyError
from bridge.store.rows import (
    BLOCKING_STATES,
    ESTIMATES,
    HISTORY_STATES,
    INVOICES,
    LEDGER_STATES,
    PAYMENTS,
    ConnectionRow,
    Cursor,
    FinishState,
    LedgerEntry,
    LedgerEvent,
    LedgerState,
    Quarantined,
    ScheduleRow,
    TokenRow,
)
from bridge.store.store import Store

__all__ = [
    "BLOCKING_STATES",
    "ESTIMATES",
    "HISTORY_STATES",
    "INVOICES",
    "LEDGER_STATES",
    "PAYMENTS",
    "ConnectionRow",
    "Cursor",
    "FinishState",
    "LedgerEntry",
    "LedgerEvent",
    "LedgerState",
    "Quarantined",
    "ScheduleRow",
    "Store",
    "StoreBusyError",
    "TokenRow",
]
