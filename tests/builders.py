"""Small builders so policy tests read like the contract they check."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from bridge.model import Allocation, Customer, HistoryEntry, Invoice, InvoiceStatus, LineItem, RenegotiationRequest
from bridge.plan import Plan
from bridge.policies.evaluate import evaluate
from bridge.policies.terms import Contract, Terms
from bridge.providers import reminder_channels

D = date.fromisoformat


def invoice(
    number: str = "INV-1001",
    *,
    id: str | None = None,
    total: str = "2000.00",
    due: str | None = "2026-09-07",
    paid: Iterable[tuple[str, str]] = (),
    status: InvoiceStatus | None = None,
    currency: str = "USD",
    customer: Customer | None = None,
    lines: Iterable[LineItem] = (),
    connection: str = "acme",
    provider: str = "quickbooks",
    **extra: Any,
) -> Invoice:
    """An invoice; amount due and status follow from the total and the payments unless given."""
    payments = tuple(Allocation(date=D(d), amount=Decimal(a)) for d, a in paid)
    lines = tuple(lines)
    fee_total = sum((line.amount for line in lines), Decimal(0))
    grand_total = Decimal(total) + fee_total
    amount_due = grand_total - sum((p.amount for p in payments), Decimal(0))
    if status is None:
        status = (
            InvoiceStatus.PAID if amount_due <= 0 else InvoiceStatus.PARTIALLY_PAID if payments else InvoiceStatus.OPEN
        )
    return Invoice(
        id=id or number.rsplit("-", 1)[-1],
        number=number,
        connection=connection,
        provider=provider,
        customer=customer or Customer(id="3", name="Amy's Bird Sanctuary", email="birds@example.com"),
        currency=currency,
        issue_date=None,
        due_date=D(due) if due else None,
        total=grand_total,
        amount_due=max(amount_due, Decimal(0)),
        status=status,
        payments=payments,
        lines=(LineItem(description="Consulting", amount=Decimal(total)), *lines),
        **extra,
    )


def contract(name: str = "standard", **settings: Any) -> Contract:
    """A contract; nested sections are plain dicts, e.g. late_fee={"percent": "1.5"}."""
    settings.setdefault("applies_to", ["*"])
    fee, reminders = settings.get("late_fee") or {}, settings.get("reminders") or {}
    if "currency" not in settings and (
        any(k in fee for k in ("flat", "max_total", "min_fee")) or "min_balance" in reminders
    ):
        settings["currency"] = "USD"  # amounts need a currency (POLICY §1); the builders' invoices are in USD
    return Contract(name=name, **settings)


def standard() -> Contract:
    """The contract of docs/policy.md §8."""
    return contract(
        reminders={"schedule": [-3, 1, 7, 14, 30], "business_days": True},
        late_fee={"percent": "1.5", "grace_days": 5, "every_days": 30, "max_percent_of_total": "10"},
    )


def terms(*contracts: Contract, **rest: Any) -> Terms:
    """Terms with the given contracts in order (the §8 contract when none), and what each installed provider's
    own reminder e-mail carries, as the configuration gives it."""
    return Terms(contracts=contracts or (standard(),), **{"provider_channels": reminder_channels(), **rest})


def applied(key: str, on: str, amount: str | None = None) -> HistoryEntry:
    """A history entry: `key` carried out on day `on`."""
    return HistoryEntry(
        key=key, kind=key.split(":", 1)[0], amount=Decimal(amount) if amount else None, applied_on=D(on)
    )


def record(plan: Plan, on: date) -> list[HistoryEntry]:
    """The plan's actions as carried out on day `on`."""
    return [HistoryEntry(key=a.key, kind=a.kind.value, amount=a.amount, applied_on=on) for a in plan.actions]


def run(
    invoices: Invoice | Iterable[Invoice],
    today: str | date,
    *,
    terms_: Terms | None = None,
    history: Iterable[HistoryEntry] = (),
    renegotiations: Iterable[RenegotiationRequest] = (),
) -> Plan:
    """Evaluate as of `today`."""
    invs = [invoices] if isinstance(invoices, Invoice) else list(invoices)
    day = D(today) if isinstance(today, str) else today
    return evaluate(invs, terms_ or terms(), history, renegotiations, day)


def keys(plan: Plan, kind: str | None = None) -> list[str]:
    """Action keys, optionally of one kind."""
    return [a.key for a in plan.actions if kind is None or a.kind.value == kind]


def skip_codes(plan: Plan) -> dict[str, str]:
    """Skip code by key (or by invoice number for invoice-level skips)."""
    return {s.key or s.invoice: s.code.value for s in plan.skipped}


def amounts(plan: Plan) -> dict[str, str]:
    """Late-fee amount strings by key."""
    return {a.key: f"{a.amount:f}" for a in plan.actions if a.amount is not None}


def by_key(plan: Plan) -> Mapping[str, Any]:
    """Actions by key."""
    return {a.key: a for a in plan.actions}


def invoice_skips(plan: Plan) -> dict[str, str]:
    """Skip code by invoice number, for invoice-level skips only (no step or occurrence)."""
    return {s.invoice: s.code.value for s in plan.skipped if s.key is None}
