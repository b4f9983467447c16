"""The contract every connector must honour, as a test class each provider's tests subclass.

A subclass provides the `env` fixture: a linked connector against the sandbox and a
few provider-specific hands on the emulated books (`ProviderEnv`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

import requests

from bridge.connectors.base import Connector
from bridge.ledger import ApplyReport, apply_actions, reconcile
from bridge.model import Invoice
from bridge.plan import Action, ActionKind, InvoiceRef
from bridge.store import Store
from bridge.sync import pull_connection


class ProviderEnv(Protocol):
    """What a provider's test module hands the shared suite."""

    connector: Connector
    store: Store
    base_url: str

    def open_invoice_id(self) -> str:
        """An open (unpaid) invoice with a customer e-mail."""

    def touch(self, invoice_id: str) -> None:
        """Change an invoice at the provider (so an incremental pull must see it)."""

    def delete(self, invoice_id: str) -> None:
        """Delete an invoice at the provider."""

    def raw(self, invoice_id: str) -> dict[str, Any]:
        """The invoice as the emulator holds it now."""

    def fee_lines(self, invoice_id: str, description: str) -> int:
        """How many lines with this description the invoice has at the provider."""


def ref(invoice: Invoice) -> InvoiceRef:
    return InvoiceRef(
        invoice.id,
        invoice.number,
        invoice.customer.name,
        invoice.currency,
        invoice.total,
        invoice.amount_due,
        invoice.due_date,
        invoice.due_date,
    )


def fee_action(invoice: Invoice, k: int = 1, amount: str = "12.34", form: str = "line") -> Action:
    return Action(
        key=f"late_fee:{invoice.connection}:{invoice.id}:{k}",
        kind=ActionKind.LATE_FEE,
        connection=invoice.connection,
        provider=invoice.provider,
        invoice=ref(invoice),
        clause="contracts.standard.late_fee",
        reason="test",
        occurrence=k,
        occurrence_date=date(2026, 10, 1),
        amount=Decimal(amount),
        form=form,
        item="Late Fee",
        description=f"Late fee (no. {k}, 2026-10-01) on invoice {invoice.number}",
    )


def reminder_action(invoice: Invoice, step: int = 2) -> Action:
    return Action(
        key=f"reminder:{invoice.connection}:{invoice.id}:{step}",
        kind=ActionKind.REMINDER,
        connection=invoice.connection,
        provider=invoice.provider,
        invoice=ref(invoice),
        clause="contracts.standard.reminders",
        reason="test",
        step=step,
        message="overdue",
        channel="provider",
        to=invoice.customer.email,
        subject="Invoice overdue",
        body="Please pay.",
    )


def due_date_action(invoice: Invoice, new_due: date) -> Action:
    return Action(
        key=f"renegotiation:{invoice.connection}:{invoice.id}",
        kind=ActionKind.UPDATE_DUE_DATE,
        connection=invoice.connection,
        provider=invoice.provider,
        invoice=ref(invoice),
        clause="contracts.standard.renegotiation",
        reason="test",
        new_due_date=new_due,
    )


@dataclass
class Faults:
    base_url: str
    provider: str
    spec: dict[str, Any] = field(default_factory=dict)

    def set(self, **rates: Any) -> None:
        body = {self.provider: {"seed": 7, "retry_after": 0, **rates}}
        response = requests.post(f"{self.base_url}/_sandbox/faults", json=body, timeout=10)
        assert response.status_code == 200, response.text

    def clear(self) -> None:
        requests.post(f"{self.base_url}/_sandbox/faults", json={self.provider: {}}, timeout=10)


def sandbox_requests(base_url: str) -> list[dict[str, Any]]:
    return list(requests.get(f"{base_url}/_sandbox/requests", timeout=10).json())


def outbox(base_url: str) -> list[dict[str, Any]]:
    return list(requests.get(f"{base_url}/_sandbox/outbox", timeout=10).json())


class ConnectorContract:
    """Tests every connector must pass; subclasses provide the `env` fixture and name the emulator's route that
    writes fee lines (`fee_write_route`)."""

    fee_write_route = ""

    def fresh(self, env: ProviderEnv, invoice_id: str) -> tuple[Invoice, Any]:
        found = env.connector.read_invoice(invoice_id, env.store.customers(env.connector.name))
        assert found is not None
        return found

    def test_a_first_pull_reads_every_invoice_and_payment_and_saves_a_cursor(self, env: ProviderEnv) -> None:
        run = pull_connection(env.store, env.connector)
        assert run.full and run.invoices > 0 and run.payments > 0 and run.quarantined == 0
        assert len(env.store.invoices(env.connector.name)) == run.invoices
        assert all(inv.provider == env.connector.provider for inv in env.store.invoices(env.connector.name))

    def test_an_incremental_pull_reads_only_what_changed_in_at_most_two_calls(self, env: ProviderEnv) -> None:
        pull_connection(env.store, env.connector)
        before = env.connector.stats.calls
        quiet = pull_connection(env.store, env.connector)
        assert not quiet.full and quiet.invoices == 0
        assert env.connector.stats.calls - before <= 2
        invoice_id = env.open_invoice_id()
        env.touch(invoice_id)
        changed = pull_connection(env.store, env.connector)
        assert [inv.id for inv in env.store.invoices(env.connector.name) if inv.id == invoice_id]
        assert changed.invoices >= 1 and not changed.full

    def test_a_deleted_invoice_leaves_the_cache(self, env: ProviderEnv) -> None:
        pull_connection(env.store, env.connector)
        invoice_id = env.open_invoice_id()
        env.delete(invoice_id)
        run = pull_connection(env.store, env.connector)
        assert run.deleted >= 1
        assert env.store.invoice(env.connector.name, invoice_id) is None

    def test_a_fee_line_is_written_once_and_recognised(self, env: ProviderEnv) -> None:
        pull_connection(env.store, env.connector)
        invoice, raw = self.fresh(env, env.open_invoice_id())
        action = fee_action(invoice)
        result = env.connector.apply(action, raw)
        assert result.form == "line" and result.response_id
        assert env.fee_lines(invoice.id, action.description or "") == 1
        after, _ = self.fresh(env, invoice.id)
        assert after.total == invoice.total + Decimal("12.34")
        assert env.connector.evidence(action, "2000-01-01T00:00:00+00:00").found == "applied"

    def test_a_fee_can_go_on_its_own_invoice(self, env: ProviderEnv) -> None:
        pull_connection(env.store, env.connector)
        invoice, raw = self.fresh(env, env.open_invoice_id())
        action = fee_action(invoice, form="invoice")
        assert env.connector.evidence(action, "2000-01-01T00:00:00+00:00").found == "absent"
        result = env.connector.apply(action, raw)
        assert result.form == "invoice"
        assert env.connector.evidence(action, "2000-01-01T00:00:00+00:00").found == "applied"
        run = pull_connection(env.store, env.connector)
        created = env.store.invoice(env.connector.name, result.response_id)
        assert run.invoices >= 1 and created is not None and created.fee_for == invoice.id

    def test_the_due_date_is_written_back(self, env: ProviderEnv) -> None:
        pull_connection(env.store, env.connector)
        invoice, raw = self.fresh(env, env.open_invoice_id())
        assert invoice.due_date is not None
        action = due_date_action(invoice, date(2026, 12, 31))
        env.connector.apply(action, raw)
        after, _ = self.fresh(env, invoice.id)
        assert after.due_date == date(2026, 12, 31)
        assert env.connector.evidence(action, "2000-01-01T00:00:00+00:00").found == "applied"

    def test_a_reminder_is_sent_through_the_provider(self, env: ProviderEnv) -> None:
        pull_connection(env.store, env.connector)
        invoice, raw = self.fresh(env, env.open_invoice_id())
        action = reminder_action(invoice)
        sent_before = len(outbox(env.base_url))
        env.connector.apply(action, raw)
        env.connector.flush()
        mails = outbox(env.base_url)
        assert len(mails) == sent_before + 1 and mails[-1]["to"] == invoice.customer.email
        assert env.connector.evidence(action, "2000-01-01T00:00:00+00:00").found == "applied"

    def test_server_errors_and_throttling_are_retried_within_the_budget(self, env: ProviderEnv) -> None:
        faults = Faults(env.base_url, env.connector.provider)
        faults.set(**{"500": 0.2, "503": 0.1, "429": 0.2})
        try:
            run = pull_connection(env.store, env.connector)
        finally:
            faults.clear()
        assert run.invoices > 0
        assert env.connector.stats.retries > 0
        statuses = {r["status"] for r in sandbox_requests(env.base_url)}
        assert statuses & {429, 500, 503}

    def test_a_lost_answer_to_fee_writes_is_settled_next_run_with_each_fee_exactly_once(self, env: ProviderEnv) -> None:
        pull_connection(env.store, env.connector)
        name = env.connector.name
        invoices = [
            i
            for i in env.store.invoices(name)
            if i.status.is_open and i.editable and not i.disputed and i.amount_due == i.total
        ]
        actions = [fee_action(invoice, k) for invoice in invoices[:3] for k in (1, 2)]
        assert len(actions) == 6

        def run() -> ApplyReport:
            return apply_actions(actions, env.store, {name: env.connector}, {}, lambda a: date(2026, 10, 20))

        # The provider does each fee write, then the connection drops before its answer: every time it is asked.
        faults = Faults(env.base_url, env.connector.provider)
        faults.set(lost_response=1.0, routes=[self.fee_write_route])
        try:
            first = run()
        finally:
            faults.clear()
        assert any(r.get("fault") == "lost_response" for r in sandbox_requests(env.base_url))
        # Never failed for good: applied (a provider without idempotency keys looks before it writes again), or
        # left pending for reconciliation.
        assert {e.state for e in env.store.ledger()} <= {"applied", "pending"} and not first.dropped
        assert all("outcome unknown, reconciled next run" in f["error"] for f in first.failed)
        reconcile(env.store, {name: env.connector}, date(2026, 10, 20))
        assert {e.state for e in env.store.ledger()} == {"applied"}
        again = run()
        assert not again.applied and len(again.skipped) == len(actions)
        assert all(env.fee_lines(a.invoice.id, a.description or "") == 1 for a in actions)
