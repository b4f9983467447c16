"""The ledger index the engine reads: what was done on each invoice, and `key in history`."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bridge.model import HistoryEntry
from bridge.policies.history import History

parts = st.sampled_from(["qbo", "xero", "a:b", "", "7", "12", "inv-1", "²", "٣"])
numbers = st.sampled_from(["1", "2", "10", "02", "", "x", "²", "٣"])
kinds = st.sampled_from(["reminder", "late_fee", "renegotiation", "renegotiation_refused", "other"])


@st.composite
def entries(draw: st.DrawFn) -> HistoryEntry:
    kind = draw(kinds)
    key = ":".join([kind, *draw(st.lists(parts, min_size=0, max_size=3)), draw(numbers)])
    amount = draw(st.none() | st.decimals(min_value=0, max_value=100, places=2))
    return HistoryEntry(key=key, kind=kind, amount=amount, applied_on=draw(st.none() | st.dates()))


Record = tuple[dict[int, date | None], dict[int, Decimal]]


def reference(ledger: list[HistoryEntry], connection: str, invoice: str) -> Record:
    """What docs/policy.md means by the history of one invoice: its keys, the later entry winning."""
    reminders: dict[int, date | None] = {}
    fees: dict[int, Decimal] = {}
    if not connection or not invoice or ":" in connection:
        return reminders, fees
    for entry in ledger:
        head, _, number = entry.key.rpartition(":")
        if not number.isdecimal():
            continue
        if head == f"reminder:{connection}:{invoice}":
            reminders[int(number)] = entry.applied_on
        elif head == f"late_fee:{connection}:{invoice}":
            fees[int(number)] = entry.amount if entry.amount is not None else Decimal(0)
    return reminders, fees


@settings(max_examples=400)
@given(st.lists(entries(), max_size=12), parts, parts)
def test_for_invoice_is_what_the_ledger_says_about_that_invoice(
    ledger: list[HistoryEntry], connection: str, invoice: str
) -> None:
    found = History(ledger).for_invoice(connection, invoice)
    assert (found.reminders, found.fees) == reference(ledger, connection, invoice)


@settings(max_examples=400)
@given(st.lists(entries(), max_size=12), entries())
@example(  # found by hypothesis: a step key with no invoice in it is plain text ("02" is not "2" there)
    [HistoryEntry(key="reminder:2", kind="reminder")], HistoryEntry(key="reminder:02", kind="reminder")
)
def test_a_key_is_in_the_history_when_an_entry_has_it(ledger: list[HistoryEntry], probe: HistoryEntry) -> None:
    history = History(ledger)
    for entry in [*ledger, probe]:
        head, _, number = entry.key.rpartition(":")
        kind, sep, _ = head.partition(":")
        # A step or occurrence key names an invoice ("reminder:2" does not: it is compared as text).
        numbered = kind in ("reminder", "late_fee") and bool(sep) and number.isdecimal()

        def same(
            other: str, key: str = entry.key, head: str = head, number: str = number, numbered: bool = numbered
        ) -> bool:
            other_head, _, other_number = other.rpartition(":")
            if numbered:  # occurrence and step numbers are numbers: "02" is step 2
                return other_head == head and other_number.isdecimal() and int(other_number) == int(number)
            return other == key

        assert (entry.key in history) == any(same(e.key) for e in ledger)


def test_add_indexes_like_the_constructor() -> None:
    ledger = [
        HistoryEntry(key="reminder:qbo:7:1", kind="reminder", applied_on=date(2026, 1, 2)),
        HistoryEntry(key="late_fee:qbo:7:1", kind="late_fee", amount=Decimal("5.00")),
        HistoryEntry(key="renegotiation:qbo:7", kind="update_due_date"),
    ]
    one_by_one = History()
    for entry in ledger:
        one_by_one.add(entry)
    for history in (History(ledger), one_by_one):
        assert history.for_invoice("qbo", "7").reminders == {1: date(2026, 1, 2)}
        assert history.for_invoice("qbo", "7").fees == {1: Decimal("5.00")}
        assert "renegotiation:qbo:7" in history
        assert "renegotiation:qbo:7:2" not in history
        assert "late_fee:qbo:7:01" in history
