"""Hypothesis strategies for the policy engine: invoices, contracts, history, renegotiations and `today`.

Everything is generated consistently: totals are quantized to the currency's minor
unit, `amount_due = total - payments`, and the status agrees with `amount_due` for
open / partially paid / paid invoices. Fee lines are tagged by their line `id`
(`own-K` for a line the bridge wrote for occurrence K, `foreign-N` for one it did
not) so the tests can classify them without the engine's own regex.

Speed: a Hypothesis draw costs far more than an evaluation, so the choices that
shape a case (status, currency, dates, how many history entries / fee lines /
payments, which contract settings) are drawn one by one, and the details
(amounts, dates of past reminders, ...) come from a drawn seed. Contract
sections are drawn as a seed too; seed 0 is the documented default, so shrinking
heads for the defaults.
"""

from __future__ import annotations

import calendar
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from hypothesis import strategies as st

from bridge.model import (
    Allocation,
    Customer,
    HistoryEntry,
    Invoice,
    InvoiceStatus,
    LineItem,
    RenegotiationRequest,
)
from bridge.money import minor_units, quantum
from bridge.plan import Plan
from bridge.policies.evaluate import evaluate
from bridge.policies.late_fees import fee_description
from bridge.policies.terms import (
    Contract,
    Exclude,
    Hold,
    LateFee,
    ProjectKey,
    Reminders,
    Renegotiation,
    Terms,
)

CURRENCIES = ("USD", "EUR", "JPY", "KWD", "BHD")
CONNECTIONS = ("acme", "globex")
FEE_ITEM = "Late Fee"  # every generated contract keeps the default fee `item` and `description`
DEFAULT_FEE = LateFee()

CUSTOMERS = (
    Customer(id="3", name="Amy's Bird Sanctuary", email="birds@example.com"),
    Customer(id="7", name="Zed Ltd", email="Pay@Zed.example"),
    Customer(id="12", name="Café Ünïcode GmbH", email=None),
    Customer(id="C-40", name="", email="ap@nameless.example"),
)


def customer_tokens(c: Customer) -> list[str]:
    """Exact ways a config can name a customer: id, name, e-mail."""
    return [t for t in (c.id, c.name, c.email) if t]


ALL_TOKENS = sorted({t for c in CUSTOMERS for t in customer_tokens(c)})
# Case variants: the engine may or may not match them; the tests' oracles only rely on exact tokens.
CASE_VARIANTS = sorted({t.upper() for t in ALL_TOKENS} | {t.lower() for t in ALL_TOKENS})
TOKENS = ALL_TOKENS + CASE_VARIANTS

MIN_DAY = date(2023, 1, 1)
MAX_DAY = date(2029, 12, 31)
LEAP_DAYS = (date(2024, 2, 29), date(2028, 2, 29))
MONTH_ENDS = tuple(date(y, m, calendar.monthrange(y, m)[1]) for y in range(2023, 2030) for m in range(1, 13))

CLOSED_STATUSES = frozenset({InvoiceStatus.DRAFT, InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.DELETED})


def money(minor: int, currency: str) -> Decimal:
    """`minor` minor units of `currency`, with exactly the currency's places."""
    return Decimal(minor).scaleb(-minor_units(currency)).quantize(quantum(currency))


def clamp(day: date) -> date:
    return min(max(day, MIN_DAY), MAX_DAY)


def _pick(rng: random.Random, weighted: Sequence[tuple[Any, int]]) -> Any:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights)[0]


# --------------------------------------------------------------------------- contracts (seed 0 = the defaults)

SEEDS = st.integers(0, 2**32 - 1)


@lru_cache(maxsize=4096)
def reminders_from(seed: int) -> Reminders:
    """Random `[reminders]` settings; seed 0 gives the documented defaults."""
    if seed == 0:
        return Reminders()
    rng = random.Random(seed)
    size = _pick(rng, [(0, 1), (1, 3), (2, 3), (3, 3), (5, 3), (6, 1)])
    return Reminders(
        schedule=tuple(sorted(rng.sample(range(-15, 61), size))),  # strictly increasing
        repeat_every_days=_pick(rng, [(0, 3), (rng.randint(1, 45), 7)]),
        max_reminders=rng.randint(0, 10),
        min_gap_days=rng.randint(0, 10),
        business_days=rng.random() < 0.6,
        holidays=rng.choice([None, "US", "GB"]),
        channel="provider",  # what a channel sends is bridge.delivery's (tested there), not the policy's
        template=rng.choice(["polite", "firm"]),
        min_balance=Decimal(rng.choice(["0.01"] * 6 + ["0", "1.00", "50"])),
    )


@lru_cache(maxsize=4096)
def late_fee_from(seed: int) -> LateFee:
    """Random `[late_fee]` settings (always charging something); seed 0 is §8's `percent = 1.5`."""
    if seed == 0:
        return LateFee(percent=Decimal("1.5"))
    rng = random.Random(seed)
    flat = rng.choice(["0", "0", "0", "5", "10.50", "25", "2.345", "0.004"])
    percent = rng.choice(["0", "1.5", "1.5", "2", "0.333", "5", "10", "12.5", "100"])
    if flat == "0" and percent == "0":
        percent = "1.5"
    return LateFee(
        flat=Decimal(flat),
        percent=Decimal(percent),
        combine=rng.choice(["sum", "max"]),
        grace_days=rng.randint(0, 10),
        every_days=_pick(rng, [(0, 1), (rng.randint(1, 45), 4), (30, 2)]),
        max_occurrences=rng.randint(0, 15),
        max_total=rng.choice([None] * 6 + ["0", "1", "25", "100.00", "1000", "12.345"]),
        max_percent_of_total=rng.choice([None] * 6 + ["0", "1", "5", "10", "12.5", "50", "100"]),
        min_fee=Decimal(rng.choice(["0", "0.01", "0.01", "0.01", "0.01", "1", "5"])),
        compounding=rng.random() < 0.3,
        mode=rng.choice(["line", "invoice"]),
    )


# Renegotiation.max_per_project is `ge=0`: 0 (renegotiation switched off) is a valid contract setting.
MAX_PER_PROJECT = (1, 0, 2)
RENEGOTIATIONS = tuple(
    Renegotiation(max_per_project=m, max_extension_days=e) for m in MAX_PER_PROJECT for e in (30, 0, 1, 7, 45)
)

# `applies_to` lists: exact tokens and case variants, one to three of them (drawn from a fixed, varied list).
_rng = random.Random(20260907)
APPLIES_TO = tuple(tuple(_rng.sample(TOKENS, _rng.randint(1, 3))) for _ in range(60))
_applies_to_last = st.integers(0, 3 * len(APPLIES_TO) - 1).map(  # "*" two times in three
    lambda i: ("*",) if i < 2 * len(APPLIES_TO) else APPLIES_TO[i - 2 * len(APPLIES_TO)]
)
_applies_to_first = st.sampled_from(APPLIES_TO)
_late_fee_or_none = SEEDS.map(lambda seed: None if seed % 8 == 7 else late_fee_from(seed))  # None 1 time in 8


def _priced(
    name: str,
    applies_to: tuple[str, ...],
    currency: str | None,
    project_key: ProjectKey,
    reminders: Reminders,
    late_fee: LateFee | None,
    renegotiation: Renegotiation,
) -> Contract:
    """A contract in `currency`; without one, its money amounts are dropped (POLICY §1: percentages only)."""
    if currency is None:
        reminders = reminders.model_copy(update={"min_balance": None})
        if late_fee is not None:
            late_fee = late_fee.model_copy(update={"flat": Decimal(0), "max_total": None, "min_fee": None})
    return Contract(
        name=name,
        applies_to=applies_to,
        currency=currency,
        project_key=project_key,
        reminders=reminders,
        late_fee=late_fee,
        renegotiation=renegotiation,
    )


# A contract's currency: none (percentages only) half the time, else one of the invoices' currencies.
_contract_currency = st.one_of(st.none(), st.sampled_from(CURRENCIES))


def _contract(name: str, applies_to: st.SearchStrategy[tuple[str, ...]]) -> st.SearchStrategy[Contract]:
    return st.builds(
        _priced,
        name=st.just(name),
        applies_to=applies_to,
        currency=_contract_currency,
        project_key=st.sampled_from(list(ProjectKey)),
        reminders=SEEDS.map(reminders_from),
        late_fee=_late_fee_or_none,
        renegotiation=st.sampled_from(RENEGOTIATIONS),
    )


contracts = st.one_of(
    st.tuples(_contract("standard", _applies_to_last)),
    st.tuples(_contract("retainer", _applies_to_first), _contract("standard", _applies_to_last)),
)


# --------------------------------------------------------------------------- invoices and their history

FOREIGN_SHAPES: tuple[dict[str, Any], ...] = (
    {"item": FEE_ITEM, "description": "Late Fee"},  # QuickBooks' own automatic fee
    {"item": None, "description": "Late Fee", "provider_late_fee": True},
    {"item": None, "description": "Finance charge", "provider_late_fee": True},
    {"item": FEE_ITEM, "description": ""},
    {"item": "Misc", "description": "Late payment fee"},
    {"item": "Misc", "description": "Overdue interest 2%"},
)
STATUS_KINDS = ("open", "open", "open", "partially_paid", "partially_paid", "paid", "draft", "void", "deleted")
_STATUS = {s.value: s for s in InvoiceStatus}

_currency = st.sampled_from(CURRENCIES)
_connection_and_id = st.sampled_from([(c, s) for c in CONNECTIONS for s in (False, True)])
_due_kind = st.sampled_from(["near"] * 14 + ["month_end"] * 4 + ["leap_day", "leap_day", "center", "none"])
_due_offset = st.integers(-150, 40)
_digits = st.sampled_from([5, 6, 4, 7, 3, 8, 2, 1, 0])  # how many digits the principal has, in minor units
_status_kind = st.sampled_from(STATUS_KINDS)
_open_kind = st.sampled_from(["open", "open", "partially_paid"])
# How many past reminders, charged fees, foreign fee lines and payments; whether a fee line is unrecorded:
# packed in one integer (0 = none of them, one payment), each count weighted towards the plain case.
_SHAPE = (
    (0, 0, 0, 1, 2, 3),  # reminders already sent
    (0, 0, 0, 0, 0, 1, 1, 2, 3, 4),  # late fees already charged
    (0, 0, 0, 0, 1, 2),  # foreign fee lines
    (0, 0, 0, 0, 0, 1),  # an own fee line missing from the ledger
    (1, 1, 2, 3),  # payments (when paid at all)
)
_shape = st.integers(0, 6 * 10 * 6 * 6 * 4 - 1)


def _unpack(value: int, radices: Sequence[int]) -> list[int]:
    out = []
    for radix in radices:
        value, digit = divmod(value, radix)
        out.append(digit)
    return out


def _shape_of(value: int) -> list[int]:
    return [table[i] for table, i in zip(_SHAPE, _unpack(value, [len(t) for t in _SHAPE]), strict=True)]


_customer = st.sampled_from(CUSTOMERS)
# provider, project, disputed, editable: 0 is the plain case.
_flags = st.integers(0, 2 * 3 * 10 * 4 - 1)


def _fee_amount(rng: random.Random, currency: str) -> Decimal:
    scale = 10 ** minor_units(currency)
    units = rng.choice([rng.randint(0, 5), rng.randint(1, 50), rng.randint(1, 50), rng.randint(50, 2000)])
    return money(max(1, units * scale + rng.randrange(scale)), currency)


@st.composite
def invoice_with_history(
    draw: st.DrawFn, number: int, center: date, today: date, focused: bool = False
) -> tuple[Invoice, list[HistoryEntry]]:
    """One invoice (fee lines included) and the ledger entries already carried out for it (all on or before `today`)."""
    currency = draw(_currency)
    mu = minor_units(currency)
    connection, id_with_connection = draw(_connection_and_id)
    inv_id = f"{number}-{connection}" if id_with_connection else str(number)
    inv_number = f"INV-{number}"
    due_kind = draw(_due_kind)
    due: date | None
    if due_kind == "near":
        due = clamp(center + timedelta(days=draw(_due_offset)))
    elif due_kind == "month_end":
        due = draw(st.sampled_from([d for d in MONTH_ENDS if abs((d - center).days) <= 150]))
    elif due_kind == "leap_day":
        due = draw(st.sampled_from(LEAP_DAYS))
    else:
        due = center if due_kind == "center" else None
    principal_minor = draw(st.integers(1, 10 ** draw(_digits)))
    kind = draw(_open_kind if focused else _status_kind)
    n_reminders, n_fees, n_foreign, unrecorded_line, n_payments = _shape_of(draw(_shape))
    rng = random.Random(draw(SEEDS))

    lines = [LineItem(id="svc-1", item="Services", description="Consulting", amount=money(principal_minor, currency))]
    history: list[HistoryEntry] = []
    key_prefix = f"{connection}:{inv_id}"
    # Mostly the first steps / occurrences, in order; now and then any of them.
    in_order = rng.random() < 0.7
    steps = range(1, n_reminders + 1) if in_order else rng.sample(range(1, 11), n_reminders)
    for step in steps:
        on = today - timedelta(days=rng.randint(0, 90))
        history.append(HistoryEntry(key=f"reminder:{key_prefix}:{step}", kind="reminder", applied_on=on))
    n = n_fees + unrecorded_line
    fee_ks = list(range(1, n + 1)) if in_order else rng.sample(range(1, 9), n)
    for i, k in enumerate(fee_ks):
        amount = _fee_amount(rng, currency)
        on = today - timedelta(days=rng.randint(0, 200))
        recorded = i < n_fees
        if recorded:
            history.append(
                HistoryEntry(key=f"late_fee:{key_prefix}:{k}", kind="late_fee", amount=amount, applied_on=on)
            )
        # The bridge's own line for it (always for the unrecorded one: a crash between provider call and ledger).
        if not recorded or rng.random() < 0.5:
            description = fee_description(DEFAULT_FEE, inv_number, k, on)
            lines.append(LineItem(id=f"own-{k}", item=FEE_ITEM, description=description, amount=amount))
    for i in range(n_foreign):
        lines.append(LineItem(id=f"foreign-{i}", amount=_fee_amount(rng, currency), **rng.choice(FOREIGN_SHAPES)))

    total = sum((line.amount for line in lines), Decimal(0))
    total_minor = int(total.scaleb(mu))
    if kind == "partially_paid" and total_minor < 2:
        kind = "open"
    paid_minor = 0
    if kind == "partially_paid":
        paid_minor = rng.randint(1, total_minor - 1)
    elif kind == "paid":
        paid_minor = total_minor
    elif kind in ("void", "deleted", "draft") and total_minor >= 2 and rng.random() < 0.3:
        paid_minor = rng.randint(1, total_minor - 1)
    payments: list[Allocation] = []
    if paid_minor:
        parts = min(n_payments, paid_minor)
        cuts = sorted(rng.sample(range(1, paid_minor), parts - 1)) if parts > 1 else []
        anchor = due or center
        for lo, hi in zip([0, *cuts], [*cuts, paid_minor], strict=True):
            payments.append(
                Allocation(
                    date=anchor + timedelta(days=rng.randint(-30, 150)),
                    amount=money(hi - lo, currency),
                    kind=rng.choice(["payment", "payment", "credit"]),
                )
            )
    provider, project, disputed, not_editable = _unpack(draw(_flags), (2, 3, 10, 4))
    inv = Invoice(
        id=inv_id,
        number=inv_number,
        connection=connection,
        provider=("quickbooks", "xero")[provider],
        customer=draw(_customer),
        currency=currency,
        issue_date=None,
        due_date=due,
        total=total,
        amount_due=total - sum((p.amount for p in payments), Decimal(0)),
        status=_STATUS[kind],
        payments=tuple(payments),
        lines=tuple(lines),
        project=(None, "P-1", "P-2")[project],
        disputed=disputed == 9 and not focused,
        editable=not_editable != 3,
    )
    return inv, history


# --------------------------------------------------------------------------- the whole input of evaluate


@dataclass(frozen=True)
class Scenario:
    """One input of `evaluate`."""

    invoices: tuple[Invoice, ...]
    terms: Terms
    history: tuple[HistoryEntry, ...]
    renegotiations: tuple[RenegotiationRequest, ...]
    today: date

    def evaluate(
        self,
        *,
        today: date | None = None,
        history: Sequence[HistoryEntry] | None = None,
        invoices: Sequence[Invoice] | None = None,
        renegotiations: Sequence[RenegotiationRequest] | None = None,
    ) -> Plan:
        return evaluate(
            list(self.invoices if invoices is None else invoices),
            self.terms,
            list(self.history if history is None else history),
            list(self.renegotiations if renegotiations is None else renegotiations),
            self.today if today is None else today,
        )


_request_count = st.sampled_from([0, 0, 1, 1, 2, 3])


@st.composite
def renegotiation_requests(draw: st.DrawFn, invoices: Sequence[Invoice], today: date) -> list[RenegotiationRequest]:
    """Undecided requests, all made on or before `today` (now and then for an invoice that was not read)."""
    out: list[RenegotiationRequest] = []
    for _ in range(draw(_request_count)):
        which = draw(st.integers(0, len(invoices)))
        rng = random.Random(draw(SEEDS))
        requested_on = today - timedelta(days=rng.randint(0, 60))
        if which == len(invoices):
            out.append(
                RenegotiationRequest(
                    connection="acme", invoice_number="INV-NOPE", requested_on=requested_on, new_due_date=today
                )
            )
            continue
        inv = invoices[which]
        by_id = rng.random() < 0.5
        out.append(
            RenegotiationRequest(
                connection=inv.connection,
                invoice_id=inv.id if by_id else None,
                invoice_number=None if by_id else inv.number,
                requested_on=requested_on,
                new_due_date=(inv.due_date or today) + timedelta(days=rng.randint(-10, 60)),
                note=rng.choice(["", "cash flow", "awaiting PO"]),
                requested_by="client@example.com",
            )
        )
    return out


_centers = st.one_of(st.dates(MIN_DAY, date(2029, 6, 30)), st.sampled_from(LEAP_DAYS), st.sampled_from(MONTH_ENDS))
_today_offset = st.integers(-10, 420)
_nothing = st.just(())
_one_token = st.sampled_from(TOKENS).map(lambda t: (t,))
_maybe_token = st.one_of(_nothing, _nothing, _nothing, _one_token)
_fee_modes = st.sampled_from([{}, {}, {"acme": "invoice"}, {"globex": "line"}])


@st.composite
def scenarios(draw: st.DrawFn, *, max_invoices: int = 4, with_renegotiations: bool = True) -> Scenario:
    """A whole input of `evaluate`: 1..max_invoices invoices with their history, terms, requests and `today`."""
    # Half the cases are "focused": every invoice open, nothing on hold or excluded (the fee and reminder
    # invariants have something to bite on); the other half mixes in closed, disputed and held invoices.
    focused = not draw(st.booleans())
    center = draw(_centers)
    today = clamp(center + timedelta(days=draw(_today_offset)))
    count = draw(st.integers(1, max_invoices))
    invoices: list[Invoice] = []
    history: list[HistoryEntry] = []
    for n in random.Random(draw(SEEDS)).sample(range(1, 121), count):
        inv, hist = draw(invoice_with_history(n, center, today, focused))
        invoices.append(inv)
        history.extend(hist)
    hold, exclude = Hold(), Exclude()
    if not focused:
        held = draw(st.one_of(_nothing, _nothing, _nothing, st.sampled_from(invoices).map(lambda i: (i.number,))))
        hold = Hold(invoices=held, customers=draw(_maybe_token))
        exclude = Exclude(customers=draw(_maybe_token))
    terms = Terms(contracts=draw(contracts), hold=hold, exclude=exclude, fee_modes=draw(_fee_modes))
    requests = draw(renegotiation_requests(invoices, today)) if with_renegotiations else []
    return Scenario(tuple(invoices), terms, tuple(history), tuple(requests), today)
