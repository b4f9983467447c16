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
    """Ledger entries indexed for the engine. Keys look like `late_fee:{connection}:{invoice}:{k}`.

    Entries are filed by their key up to the last colon (`late_fee:{connection}:{invoice}`),
    in ledger order; a key is only parsed when the engine asks about its invoice, so the
    entries of invoices that are out of scope (paid, void, …) cost one split each.
    """

    __slots__ = ("_by_head",)

    def __init__(self, entries: Iterable[HistoryEntry] = ()) -> None:
        self._by_head: dict[str, list[HistoryEntry]] = {}
        by_head = self._by_head
        for entry in entries:  # the hot loop of a large evaluation: `add`, inlined
            head = entry.key.rpartition(":")[0]
            filed = by_head.get(head)
            if filed is None:
                by_head[head] = [entry]
            else:
                filed.append(entry)

    def add(self, entry: HistoryEntry) -> None:
        """Index one entry."""
        head = entry.key.rpartition(":")[0]
        filed = self._by_head.get(head)
        if filed is None:
            self._by_head[head] = [entry]
        else:
            filed.append(entry)

    @staticmethod
    def _parse(key: str) -> tuple[str, InvoiceKey, int] | None:
        parts = key.split(":")
        if len(parts) == 4:  # the common case: no colon inside the invoice id
            kind, connection, invoice, number = parts
        elif len(parts) > 4:
            kind, connection, invoice, number = parts[0], parts[1], ":".join(parts[2:-1]), parts[-1]
        else:
            return None
        if (kind != "reminder" and kind != "late_fee") or not (number.isdigit() and connection and invoice):
            return None
        return kind, (connection, invoice), int(number)

    def for_invoice(self, connection: str, invoice_id: str) -> InvoiceHistory:
        """What was done on this invoice (an empty record when nothing)."""
        if not connection or not invoice_id or ":" in connection:
            return _EMPTY  # no reminder or late-fee key can name such an invoice
        by_head = self._by_head
        sent = by_head.get(f"reminder:{connection}:{invoice_id}")
        charged = by_head.get(f"late_fee:{connection}:{invoice_id}")
        if sent is None and charged is None:
            return _EMPTY
        found = InvoiceHistory()
        if sent is not None:
            reminders = found.reminders
            for entry in sent:
                number = entry.key.rpartition(":")[2]
                if number.isdigit():
                    reminders[int(number)] = entry.applied_on
        if charged is not None:
            fees = found.fees
            for entry in charged:
                number = entry.key.rpartition(":")[2]
                if number.isdigit():
                    fees[int(number)] = entry.amount if entry.amount is not None else Decimal(0)
        return found

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        parsed = self._parse(key)
        if parsed is None:
            return any(entry.key == key for entry in self._by_head.get(key.rpartition(":")[0], ()))
        kind, (connection, invoice), number = parsed
        found = self.for_invoice(connection, invoice)
        return number in (found.reminders if kind == "reminder" else found.fees)
