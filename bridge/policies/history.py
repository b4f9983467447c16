"""An index over the history of actions already carried out, by invoice."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

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


# The entries filed under one head, flat: [tail, value, tail, value, …] (see `History`).
_Filed = list[Any]
_KINDS = ("reminder:", "late_fee:")


def _value(entry: HistoryEntry, head: str) -> Any:
    """What the index keeps of an entry: `applied_on` of a reminder, `amount` of a late fee, else the entry."""
    if head.startswith("reminder:"):
        return entry.applied_on
    if head.startswith("late_fee:"):
        return entry.amount
    return entry


class History:
    """Ledger entries indexed for the engine. Keys look like `late_fee:{connection}:{invoice}:{k}`.

    Entries are filed by their key up to the last colon (`late_fee:{connection}:{invoice}`),
    in ledger order, as flat `[tail, value, tail, value, …]` lists: the key's last part and
    what the engine reads of the entry (`_value`: a reminder's date, a fee's amount). That is
    read while the entry is at hand, so answering for an invoice never goes back to the
    entries: hundreds of thousands of them, scattered in memory, each read a second time, cost
    more than the index itself. A key's number is only parsed when its invoice is asked about.
    """

    __slots__ = ("_by_head",)

    def __init__(self, entries: Iterable[HistoryEntry] = ()) -> None:
        self._by_head: dict[str, _Filed] = {}
        by_head = self._by_head
        for entry in entries:  # the hot loop of a large evaluation: `add`, inlined
            head, _, tail = entry.key.rpartition(":")
            value = (
                entry.applied_on
                if head.startswith("reminder:")
                else entry.amount
                if head.startswith("late_fee:")
                else entry
            )
            filed = by_head.get(head)
            if filed is None:
                by_head[head] = [tail, value]
            else:
                filed += (tail, value)

    def add(self, entry: HistoryEntry) -> None:
        """Index one entry."""
        head, _, tail = entry.key.rpartition(":")
        filed = self._by_head.get(head)
        if filed is None:
            self._by_head[head] = [tail, _value(entry, head)]
        else:
            filed += (tail, _value(entry, head))

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
            pairs = iter(sent)
            for number, applied_on in zip(pairs, pairs, strict=True):
                if number.isdigit():
                    reminders[int(number)] = applied_on
        if charged is not None:
            fees = found.fees
            pairs = iter(charged)
            for number, amount in zip(pairs, pairs, strict=True):
                if number.isdigit():
                    fees[int(number)] = amount if amount is not None else Decimal(0)
        return found

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        parsed = self._parse(key)
        if parsed is None:
            head, _, tail = key.rpartition(":")
            filed = self._by_head.get(head, [])
            if head.startswith(_KINDS):  # such a key is the head, a colon and the tail: the tails tell
                return tail in filed[::2]
            return any(entry.key == key for entry in filed[1::2])
        kind, (connection, invoice), number = parsed
        found = self.for_invoice(connection, invoice)
        return number in (found.reminders if kind == "reminder" else found.fees)
