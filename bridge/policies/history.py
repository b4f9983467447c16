"""An index over the history of actions already carried out, by invoice."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from bridge.model import HistoryEntry

InvoiceKey = tuple[str, str]  # (connection, invoice remote id)


@dataclass(slots=True)
class InvoiceHistory:
    """What was already done on one invoice: reminder steps sent, fee occurrences charged."""

    reminders: dict[int, date | None] = field(default_factory=dict)
    fees: dict[int, Decimal] = field(default_factory=dict)

    @property
    def last_step(self) -> int:
        """Highest reminder step sent (0 when none)."""
        return max(self.reminders, default=0)

    @property
    def last_reminded_on(self) -> date | None:
        """Day the most recent reminder went out, when known."""
        days = [d for d in self.reminders.values() if d is not None]
        return max(days, default=None)


_EMPTY = InvoiceHistory()


class History:
    """Ledger entries indexed for the engine. Keys look like `late_fee:{connection}:{invoice}:{k}`."""

    __slots__ = ("_by_invoice", "keys")

    def __init__(self, entries: Iterable[HistoryEntry] = ()) -> None:
        self.keys: set[str] = set()
        self._by_invoice: dict[InvoiceKey, InvoiceHistory] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: HistoryEntry) -> None:
        """Index one entry; reminder and late-fee entries are filed under their invoice."""
        self.keys.add(entry.key)
        kind, _, rest = entry.key.partition(":")
        if kind not in ("reminder", "late_fee"):
            return
        head, _, number = rest.rpartition(":")
        connection, _, invoice = head.partition(":")
        if not (number.isdigit() and connection and invoice):
            return
        slot = self._by_invoice.setdefault((connection, invoice), InvoiceHistory())
        if kind == "reminder":
            slot.reminders[int(number)] = entry.applied_on
        else:
            slot.fees[int(number)] = entry.amount if entry.amount is not None else Decimal(0)

    def for_invoice(self, connection: str, invoice_id: str) -> InvoiceHistory:
        """What was done on this invoice (an empty record when nothing)."""
        return self._by_invoice.get((connection, invoice_id), _EMPTY)

    def __contains__(self, key: object) -> bool:
        return key in self.keys
