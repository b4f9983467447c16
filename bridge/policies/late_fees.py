"""Late fees (docs/policy.md §5): occurrences, base, rounding, caps, fees already on the invoice."""

from __future__ import annotations

import dataclasses
import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import accumulate
from typing import NamedTuple

from bridge.messages import FeeTerms
from bridge.model import Invoice, LineItem
from bridge.money import format_amount, quantum, round_down, round_half_up
from bridge.policies.history import InvoiceHistory
from bridge.policies.terms import LateFee

# Descriptions providers and people give late-fee lines (QuickBooks' automatic fee says "Late Fee").
_FEE_WORDS = re.compile(
    r"\blate[\s_-]*(?:payment[\s_-]*)?(?:fee|charge)|\bfinance[\s_-]*charge|\boverdue[\s_-]*interest", re.I
)
_HUNDRED = Decimal(100)
_ZERO = Decimal(0)


def last_owed_occurrence(effective_due: date, terms: LateFee, today: date) -> int:
    """Highest occurrence whose date is on or before `today`, capped at max_occurrences (0 when none)."""
    days = (today - effective_due).days - terms.grace_days
    if days < 0:
        return 0
    reached = 1 if terms.every_days == 0 else days // terms.every_days + 1
    return min(reached, terms.max_occurrences)


@lru_cache(maxsize=4096)
def period_label(k: int, on: date) -> str:
    """What `{period}` becomes in a fee line's description (invoices due the same day share it)."""
    return f"no. {k}, {on.isoformat()}"


def fee_description(terms: LateFee, number: str, k: int, on: date) -> str:
    """The bridge's own description of occurrence `k`'s fee line."""
    return terms.description.format(number=number, period=period_label(k, on))


@lru_cache(maxsize=256)
def _own_line_pattern(description: str) -> re.Pattern[str]:
    # One pattern per contract description (not per invoice): the invoice number is captured and
    # compared afterwards. The occurrence number is in {period}; its date may move with a renegotiation.
    text = re.escape(description)
    number = re.escape("{number}")
    first = text.find(number)
    if first >= 0:
        text = text[:first] + "(?P<number>.*?)" + text[first + len(number) :].replace(number, "(?P=number)")
    text = text.replace(re.escape("{period}"), r"no\. (?P<k>\d+), \d{4}-\d{2}-\d{2}")
    return re.compile(text + r"\Z")


def is_fee_line(line: LineItem, terms: LateFee) -> bool:
    """A line that is a late fee: the contract's item, fee words in the description, or the provider's own fee."""
    return line.provider_late_fee or line.item == terms.item or bool(_FEE_WORDS.search(line.description))


@dataclass(frozen=True, slots=True)
class FeeLines:
    """Late-fee lines found on an invoice: the bridge's own (by occurrence) and foreign ones."""

    own: dict[int, Decimal]
    foreign: tuple[LineItem, ...]
    total: Decimal


_NO_FEE_LINES = FeeLines({}, (), Decimal(0))


def classify_fee_lines(invoice: Invoice, terms: LateFee) -> FeeLines:
    """Sort the invoice's fee lines into the bridge's own (recognised by description) and foreign ones."""
    own: dict[int, Decimal] = {}
    foreign: list[LineItem] = []
    total = Decimal(0)
    item = terms.item
    search = _FEE_WORDS.search
    pattern = _own_line_pattern(terms.description)
    has_number = "{number}" in terms.description
    for line in invoice.lines:
        # `is_fee_line`, inlined: most lines of most invoices are not fee lines.
        if not (line.provider_late_fee or line.item == item or search(line.description)):
            continue
        total += line.amount
        match = None if line.provider_late_fee else pattern.match(line.description)
        if match is not None and has_number and match["number"] != invoice.number:
            match = None
        if match is not None and int(match["k"]) not in own:
            own[int(match["k"])] = line.amount
        else:
            foreign.append(line)
    if not own and not foreign:
        return _NO_FEE_LINES
    return FeeLines(own, tuple(foreign), total)


class FeeCharge(NamedTuple):
    """Occurrence `k` to charge, or (when `skip` is set) why it is not charged (a named tuple: one per occurrence
    owed, several per invoice)."""

    k: int
    on: date
    amount: Decimal
    base: Decimal
    reason: str
    skip: str | None = None


@dataclass(frozen=True, slots=True)
class FeeOutcome:
    """Everything the late-fee clause says about one invoice today."""

    charges: tuple[FeeCharge, ...]
    foreign: tuple[LineItem, ...]
    foreign_slots: tuple[int, ...]


_NOTHING = FeeOutcome((), (), ())


def cap_for(invoice_principal: Decimal, currency: str, terms: LateFee) -> Decimal | None:
    """The tighter of max_total and max_percent_of_total of the principal (rounded down); None when uncapped."""
    caps: list[Decimal] = []
    if terms.max_total is not None:
        caps.append(round_down(terms.max_total, currency))
    if terms.max_percent_of_total is not None:
        caps.append(round_down(terms.max_percent_of_total * invoice_principal / _HUNDRED, currency))
    return min(caps) if caps else None


def decide_late_fees(
    invoice: Invoice, effective_due: date, terms: LateFee, history: InvoiceHistory, today: date
) -> FeeOutcome:
    """Every owed occurrence not yet charged, in order, with its amount after rounding and caps."""
    last_k = last_owed_occurrence(effective_due, terms, today)
    lines = classify_fee_lines(invoice, terms)
    if last_k == 0 and not lines.foreign:
        return _NOTHING
    charged, foreign_slots = _charged_so_far(history, lines)
    owed = [k for k in range(1, last_k + 1) if k not in charged]
    if not owed:
        # The steady state of a daily sync: everything owed so far is already charged.
        return FeeOutcome((), lines.foreign, foreign_slots) if lines.foreign else _NOTHING
    charges = _charges(invoice, effective_due, terms, invoice.total - lines.total, charged, owed)
    return FeeOutcome(tuple(charges), lines.foreign, foreign_slots)


def _charged_so_far(history: InvoiceHistory, lines: FeeLines) -> tuple[dict[int, Decimal], tuple[int, ...]]:
    """Occurrence -> amount charged so far, and the slots the foreign fee lines take.

    The ledger first (an occurrence forgiven since counts as nothing, and is never charged again), then our own
    lines it does not know of (a crash between the provider call and the ledger write), then foreign fees in the
    lowest free slots.
    """
    charged: dict[int, Decimal] = dict(history.fees)
    for k in history.forgiven:
        charged[k] = _ZERO
    for k, amount in lines.own.items():
        charged.setdefault(k, amount)
    foreign_slots: list[int] = []
    slot = 1
    for line in lines.foreign:
        while slot in charged:
            slot += 1
        charged[slot] = line.amount
        foreign_slots.append(slot)
    return charged, tuple(foreign_slots)


def _charges(
    invoice: Invoice,
    effective_due: date,
    terms: LateFee,
    principal: Decimal,
    charged: dict[int, Decimal],
    owed: list[int],
) -> list[FeeCharge]:
    """The owed occurrences in order: each one's base, amount, and what the caps leave of it."""
    currency = invoice.currency
    running = sum(charged.values(), _ZERO) if charged else _ZERO
    cap = (
        None if terms.max_total is None and terms.max_percent_of_total is None else cap_for(principal, currency, terms)
    )
    flat = round_half_up(terms.flat, currency)
    unit = quantum(currency)
    min_fee = unit if terms.min_fee is None else terms.min_fee
    percent, compounding, summed = terms.percent, terms.compounding, terms.combine == "sum"
    how, states_base = _how(terms.percent, terms.flat, terms.combine, currency)
    # Payments and credits by date, for "paid on or before occurrence k's date".
    paid_dates: list[date] = []
    paid_totals = [_ZERO]
    if invoice.payments:
        allocations = sorted(invoice.payments, key=lambda a: a.date)
        paid_dates = [a.date for a in allocations]
        paid_totals = list(accumulate((a.amount for a in allocations), initial=_ZERO))
    charges: list[FeeCharge] = []
    # Without compounding, the base (and so the amount) changes only when a payment falls between two occurrences:
    # (payments counted, base, amount, how the reason ends, and the fee itself when no cap or minimum touches it).
    last: tuple[int, Decimal, Decimal, str, Decimal | None] | None = None
    days = _occurrence_days(effective_due, terms.grace_days, terms.every_days, owed[-1])
    for k in owed:
        on, fell_on = days[k - 1]
        paid = bisect_right(paid_dates, on) if paid_dates else 0
        if last is None or last[0] != paid or compounding:
            base = principal - paid_totals[paid]
            if compounding:
                base += sum((amount for j, amount in charged.items() if j < k), Decimal(0))
            if base <= 0:
                continue
            percent_part = round_half_up(percent * base / _HUNDRED, currency)
            amount = flat + percent_part if summed else max(flat, percent_part)
            how_much = f"{how}{format_amount(base, currency)}" if states_base else how
            # `_within_caps` has nothing to say of a fee under no cap and above the minimum (most fees).
            plain = amount.quantize(unit) if cap is None and amount >= min_fee and amount > 0 else None
            last = (paid, base, amount, how_much, plain)
        _, base, amount, how_much, plain = last
        if plain is not None:
            charge = FeeCharge(k, on, plain, base, fell_on + how_much)
        else:
            charge = _within_caps(k, on, base, amount, fell_on + how_much, min_fee, cap, running, currency)
        charges.append(charge)
        if charge.skip is None:
            charged[k] = charge.amount
            running += charge.amount
    return charges


@lru_cache(maxsize=4096)
def _occurrence_days(effective_due: date, grace_days: int, every_days: int, last: int) -> tuple[tuple[date, str], ...]:
    """Occurrences 1 to `last` of an invoice due on `effective_due`: the day each falls on (due + grace + (k-1) *
    every_days, calendar days) and how its reason begins. Invoices share due dates, so they share these."""
    days = []
    for k in range(1, last + 1):
        on = effective_due + timedelta(days=grace_days + (k - 1) * every_days)
        days.append((on, f"occurrence {k} fell on {on.isoformat()}: "))
    return tuple(days)


def _within_caps(
    k: int,
    on: date,
    base: Decimal,
    amount: Decimal,
    reason: str,
    min_fee: Decimal,
    cap: Decimal | None,
    running: Decimal,
    currency: str,
) -> FeeCharge:
    """Occurrence k's charge: skipped below min_fee, cut to the room the cap leaves, or cap_reached."""
    if amount < min_fee or amount <= 0:  # a 0.00 fee line is never written, whatever min_fee says
        return FeeCharge(k, on, amount, base, reason, "below_min_fee")
    if cap is not None:
        room = cap - running
        if room <= 0:
            reached = reason + f"; cap of {format_amount(cap, currency)} reached"
            return FeeCharge(k, on, Decimal(0), base, reached, "cap_reached")
        if amount > room:
            reason += (
                f"; cut from {format_amount(amount, currency)} to the {format_amount(room, currency)} "
                f"left under the cap of {format_amount(cap, currency)}"
            )
            amount = room
            if amount < min_fee or amount <= 0:
                return FeeCharge(k, on, amount, base, reason, "below_min_fee")
    return FeeCharge(k, on, amount.quantize(quantum(currency)), base, reason)


@lru_cache(maxsize=256)
def _how(percent: Decimal, flat: Decimal, combine: str, currency: str) -> tuple[str, bool]:
    """How an occurrence's fee is worked out, as its reason says it: the text before the base amount, and whether
    the base follows (a flat fee alone does not state it). The same for every occurrence under one clause."""
    percent_of = f"{percent.normalize():f}% of "
    flat_text = f"{format_amount(round_half_up(flat, currency), currency)} flat"
    if flat == 0:
        return percent_of, True
    if percent == 0:
        return flat_text, False
    if combine == "sum":
        return f"{flat_text} + {percent_of}", True
    return f"the larger of {flat_text} and {percent_of}", True


def fee_terms(terms: LateFee | None) -> FeeTerms | None:
    """The late-fee clause as messages restate it (in the client's language and currency), or None when it
    charges nothing."""
    if terms is None or not terms.charges_anything:
        return None
    return FeeTerms(**{f.name: getattr(terms, f.name) for f in dataclasses.fields(FeeTerms)})
