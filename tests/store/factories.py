"""Builders for store tests: actions and records as the rest of the bridge makes them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from bridge.model import Customer, Invoice, InvoiceStatus, LineItem, Payment
from bridge.plan import Action, ActionKind, InvoiceRef

D = date.fromisoformat


def late_fee(
    key: str = "late_fee:acme:130:1",
    *,
    connection: str = "acme",
    amount: str = "22.50",
    currency: str = "USD",
    invoice_id: str = "130",
    number: str = "1037",
) -> Action:
    """A late-fee action like the policy engine plans it."""
    return Action(
        key=key,
        kind=ActionKind.LATE_FEE,
        connection=connection,
        provider="quickbooks",
        invoice=_ref(invoice_id, number, currency),
        clause="contracts.standard.late_fee",
        reason="occurrence 1 fell on 2026-10-12: 1.5% of 1500.00",
        occurrence=1,
        occurrence_date=D("2026-10-12"),
        amount=Decimal(amount),
        form="line",
        item="Late Fee",
        description=f"Late fee (2026-10) on invoice {number}",
    )


def reminder(
    key: str = "reminder:acme:130:5", *, connection: str = "acme", invoice_id: str = "130", number: str = "1037"
) -> Action:
    """A reminder action."""
    return Action(
        key=key,
        kind=ActionKind.REMINDER,
        connection=connection,
        provider="quickbooks",
        invoice=_ref(invoice_id, number, "USD"),
        clause="contracts.standard.reminders",
        reason="step 5: 30 days overdue",
        step=5,
        step_date=D("2026-10-07"),
        message="overdue",
        channel="provider",
        to="birds@example.com",
        subject="Invoice 1037 is overdue",
        body="Dear Amy,\n...",
    )


def invoice(
    remote_id: str,
    *,
    connection: str = "acme",
    number: str | None = None,
    total: str = "100.00",
    currency: str = "USD",
    status: InvoiceStatus = InvoiceStatus.OPEN,
) -> Invoice:
    """A normalized invoice."""
    return Invoice(
        id=remote_id,
        number=number or f"INV-{remote_id}",
        connection=connection,
        provider="quickbooks",
        customer=Customer(id="3", name="Amy's Bird Sanctuary", email="birds@example.com"),
        currency=currency,
        issue_date=D("2026-08-08"),
        due_date=D("2026-09-07"),
        total=Decimal(total),
        amount_due=Decimal(total),
        status=status,
        lines=(LineItem(description="Consulting", amount=Decimal(total)),),
    )


def raw_invoice(remote_id: str, total: str = "100.00") -> dict[str, Any]:
    """A provider payload as parsed from the wire (`parse_float=Decimal`)."""
    return {"Id": remote_id, "DocNumber": f"INV-{remote_id}", "TotalAmt": Decimal(total), "SyncToken": "0"}


def payment(remote_id: str, *, connection: str = "acme", amount: str = "50.00", currency: str = "USD") -> Payment:
    """A normalized payment."""
    return Payment(
        id=remote_id,
        connection=connection,
        customer_id="3",
        date=D("2026-09-20"),
        amount=Decimal(amount),
        currency=currency,
    )


def _ref(invoice_id: str, number: str, currency: str) -> InvoiceRef:
    return InvoiceRef(
        id=invoice_id,
        number=number,
        customer="Amy's Bird Sanctuary",
        currency=currency,
        total=Decimal("2000.00"),
        amount_due=Decimal("1500.00"),
        due_date=D("2026-09-07"),
        effective_due_date=D("2026-09-07"),
    )
