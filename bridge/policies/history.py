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

    Reminder and fee entries are filed per invoice (the engine asks by invoice); only the
    other keys (renegotiations) are kept as a set.
    """

    __slots__ = ("_by_invoice", "_other")

    def __init__(self, entries: Iterable[HistoryEntry] = ()) -> None:
        self._other: set[str] = set()
        self._by_invoice: dict[InvoiceKey, InvoiceHistory] = {}
        by_invoice = self._by_invoice
        zero = Decimal(0)
        # The hot loop of a large evaluation: the common key shape is handled inline.
        for entry in entries:
            parts = entry.key.split(":")
            if len(parts) != 4 or not parts[3].isdigit() or not parts[1] or not parts[2]:
                self.add(entry)
                continue
            kind = parts[0]
            if kind == "reminder":
                slot = by_invoice.get((parts[1], parts[2]))
                if slot is None:
                    slot = by_invoice[(parts[1], parts[2])] = InvoiceHistory()
                slot.reminders[int(parts[3])] = entry.applied_on
            elif kind == "late_fee":
                slot = by_invoice.get((parts[1], parts[2]))
                if slot is None:
                    slot = by_invoice[(parts[1], parts[2])] = InvoiceHistory()
                slot.fees[int(parts[3])] = entry.amount if entry.amount is not None else zero
            else:
                self._other.add(entry.key)

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

    def add(self, entry: HistoryEntry) -> None:
        """Index one entry; reminder and late-fee entries are filed under their invoice."""
        parsed = self._parse(entry.key)
        if parsed is None:
            self._other.add(entry.key)
            return
        kind, invoice_key, number = parsed
        slot = self._by_invoice.get(invoice_key)
        if slot is None:
            slot = self._by_invoice[invoice_key] = InvoiceHistory()
        if kind == "reminder":
            slot.reminders[number] = entry.applied_on
        else:
            slot.fees[number] = entry.amount if entry.amount is not None else Decimal(0)

    def for_invoice(self, connection: str, invoice_id: str) -> InvoiceHistory:
        """What was done on this invoice (an empty record when nothing)."""
        return self._by_invoice.get((connection, invoice_id), _EMPTY)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if key in self._other:
            return True
        parsed = self._parse(key)
        if parsed is None:
            return False
        kind, invoice_key, number = parsed
        slot = self._by_invoice.get(invoice_key)
        if slot is None:
            return False
        return number in (slot.reminders if kind == "reminder" else slot.fees)
