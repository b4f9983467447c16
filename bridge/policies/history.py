"""An index over the history of actions already carried out, by invoice."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from bridge.model import HistoryEntry

InvoiceKey = tuple[str, str]  # (connection, invoice remote id)

_ZERO = Decimal(0)


@dataclass(slots=True)
class InvoiceHistory:
    """What was already done on one invoice: reminder steps sent, fee occurrences charged, fees forgiven.

    `forgiven`: occurrences charged and then taken back (`bridge forgive`): never charged again, and counted as
    nothing towards the caps and a compounding base. `fees_forgiven`: from this occurrence on, every late fee on
    the invoice is forgiven for good (`bridge forgive --all`), and why.
    """

    reminders: dict[int, date | None] = field(default_factory=dict)
    fees: dict[int, Decimal] = field(default_factory=dict)
    forgiven: set[int] = field(default_factory=set)
    fees_forgiven: tuple[int, str] | None = None

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
# The keys of `bridge forgive`'s entries: `forgive:{connection}:{invoice}:{k}` took occurrence k back;
# `fees_forgiven:{connection}:{invoice}:{k}` forgave every fee from occurrence k on.
_FORGIVING = ("forgive", "fees_forgiven")


def _forgive(record: InvoiceHistory, kind: str, occurrence: int, note: str | None) -> None:
    if kind == "forgive":
        record.forgiven.add(occurrence)
    elif record.fees_forgiven is None or occurrence < record.fees_forgiven[0]:
        record.fees_forgiven = (occurrence, note or "forgiven for good")


class History:
    """Ledger entries indexed for the engine. Keys look like `late_fee:{connection}:{invoice}:{k}`.

    One pass over the ledger files each numbered `reminder` and `late_fee` entry straight into
    its invoice's record (by `{connection}:{invoice}`), so that asking about an invoice is one
    lookup and no entry is read twice: on a large ledger that pass is the cost. Any other key
    (renegotiation decisions, …) is kept by its head, the key up to the last colon, for `in`.
    Step and occurrence numbers are numbers: `reminder:c:7:02` is step 2.
    """

    __slots__ = ("_keys", "_records")

    def __init__(self, entries: Iterable[HistoryEntry] = ()) -> None:
        self._records: dict[str, InvoiceHistory] = {}
        self._keys: dict[str, set[str]] = {}
        records = self._records
        get = records.get
        for entry in entries:  # the hot loop of a large evaluation: `add`, inlined
            key = entry.key
            head, _, number = key.rpartition(":")
            kind, sep, invoice = head.partition(":")
            if kind == "reminder" and sep:
                if number.isdecimal():
                    record = get(invoice)
                    if record is None:
                        record = records[invoice] = InvoiceHistory()
                    record.reminders[int(number)] = entry.applied_on
                    continue
            elif kind == "late_fee" and sep and number.isdecimal():
                record = get(invoice)
                if record is None:
                    record = records[invoice] = InvoiceHistory()
                amount = entry.amount
                record.fees[int(number)] = _ZERO if amount is None else amount
                continue
            elif kind in _FORGIVING and sep and number.isdecimal():
                record = get(invoice)
                if record is None:
                    record = records[invoice] = InvoiceHistory()
                _forgive(record, kind, int(number), entry.note)
            self._other(head, number)

    def add(self, entry: HistoryEntry) -> None:
        """Index one entry (a later entry with the same key replaces the earlier one's values)."""
        head, _, number = entry.key.rpartition(":")
        kind, sep, invoice = head.partition(":")
        if (kind == "reminder" or kind == "late_fee") and sep and number.isdecimal():
            record = self._records.get(invoice)
            if record is None:
                record = self._records[invoice] = InvoiceHistory()
            if kind == "reminder":
                record.reminders[int(number)] = entry.applied_on
            else:
                record.fees[int(number)] = _ZERO if entry.amount is None else entry.amount
        else:
            if kind in _FORGIVING and sep and number.isdecimal():
                record = self._records.get(invoice)
                if record is None:
                    record = self._records[invoice] = InvoiceHistory()
                _forgive(record, kind, int(number), entry.note)
            self._other(head, number)

    def _other(self, head: str, number: str) -> None:
        keys = self._keys.get(head)
        if keys is None:
            self._keys[head] = {number}
        else:
            keys.add(number)

    def for_invoice(self, connection: str, invoice_id: str) -> InvoiceHistory:
        """What was done on this invoice (an empty record when nothing)."""
        if not connection or not invoice_id or ":" in connection:
            return _EMPTY  # no reminder or late-fee key can name such an invoice
        return self._records.get(f"{connection}:{invoice_id}", _EMPTY)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        head, _, number = key.rpartition(":")
        kind, sep, invoice = head.partition(":")
        if (kind == "reminder" or kind == "late_fee") and sep and number.isdecimal():
            record = self._records.get(invoice)
            return record is not None and int(number) in (record.reminders if kind == "reminder" else record.fees)
        keys = self._keys.get(head)
        return keys is not None and number in keys
