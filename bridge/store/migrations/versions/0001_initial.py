"""Initial schema: connections, tokens, pulled records, cursors, quarantine, ledger, renegotiations.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Written by hand to mirror bridge/store/tables.py; constraint and index names are spelled out so
this file never changes when the naming convention does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(name: str, nullable: bool) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "connections",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("tenant_id", sa.String(200), nullable=True),
        sa.Column("base_url", sa.Text(), nullable=True),
        _instant("created_at", False),
        _instant("updated_at", False),
        _instant("last_sync_at", True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_connections")),
    )
    op.create_table(
        "tokens",
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        _instant("access_expires_at", True),
        _instant("refresh_expires_at", True),
        _instant("updated_at", False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("connection", name=op.f("pk_tokens")),
    )
    op.create_table(
        "invoices",
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("remote_id", sa.String(200), nullable=False),
        sa.Column("number", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        _instant("updated_at", False),
        sa.PrimaryKeyConstraint("connection", "remote_id", name=op.f("pk_invoices")),
    )
    op.create_index(op.f("ix_invoices_connection_number"), "invoices", ["connection", "number"])
    op.create_table(
        "payments",
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("remote_id", sa.String(200), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        _instant("updated_at", False),
        sa.PrimaryKeyConstraint("connection", "remote_id", name=op.f("pk_payments")),
    )
    op.create_table(
        "customers",
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("remote_id", sa.String(200), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        _instant("updated_at", False),
        sa.PrimaryKeyConstraint("connection", "remote_id", name=op.f("pk_customers")),
    )
    op.create_table(
        "cursors",
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("watermark", sa.Text(), nullable=False),
        sa.Column("ids_at_watermark", sa.Text(), nullable=False),
        _instant("full_sync_at", True),
        _instant("updated_at", False),
        sa.PrimaryKeyConstraint("connection", "stream", name=op.f("pk_cursors")),
    )
    op.create_table(
        "quarantine",
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("record_id", sa.String(200), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        _instant("quarantined_at", False),
        sa.PrimaryKeyConstraint("connection", "stream", "record_id", name=op.f("pk_quarantine")),
    )
    op.create_table(
        "ledger",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("invoice_id", sa.String(200), nullable=False),
        sa.Column("invoice_number", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("amount", sa.Text(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("clause", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("form", sa.String(32), nullable=True),
        sa.Column("response_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("applied_on", sa.Date(), nullable=True),
        _instant("created_at", False),
        _instant("updated_at", False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'applied', 'failed', 'dropped', 'in_doubt')", name=op.f("ck_ledger_state")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ledger")),
    )
    op.create_index(op.f("ix_ledger_connection_invoice_number"), "ledger", ["connection", "invoice_number"])
    op.create_index(op.f("ix_ledger_state"), "ledger", ["state"])
    op.create_table(
        "ledger_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _instant("at", False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["key"], ["ledger.key"], name=op.f("fk_ledger_events_key_ledger")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_events")),
    )
    op.create_index(op.f("ix_ledger_events_key"), "ledger_events", ["key"])
    op.create_index(op.f("ix_ledger_events_connection"), "ledger_events", ["connection"])
    op.create_table(
        "renegotiations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("invoice_id", sa.String(200), nullable=True),
        sa.Column("invoice_number", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("requested_on", sa.Date(), nullable=False),
        sa.Column("new_due_date", sa.Date(), nullable=False),
        sa.Column("decided_on", sa.Date(), nullable=True),
        sa.Column("record", sa.Text(), nullable=False),
        _instant("created_at", False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_renegotiations")),
    )
    op.create_index(op.f("ix_renegotiations_connection"), "renegotiations", ["connection"])


def downgrade() -> None:
    """Drop every table (the audit trail with it: only for throwaway databases)."""
    op.drop_index(op.f("ix_renegotiations_connection"), table_name="renegotiations")
    op.drop_table("renegotiations")
    op.drop_index(op.f("ix_ledger_events_connection"), table_name="ledger_events")
    op.drop_index(op.f("ix_ledger_events_key"), table_name="ledger_events")
    op.drop_table("ledger_events")
    op.drop_index(op.f("ix_ledger_state"), table_name="ledger")
    op.drop_index(op.f("ix_ledger_connection_invoice_number"), table_name="ledger")
    op.drop_table("ledger")
    op.drop_table("quarantine")
    op.drop_table("cursors")
    op.drop_table("customers")
    op.drop_table("payments")
    op.drop_index(op.f("ix_invoices_connection_number"), table_name="invoices")
    op.drop_table("invoices")
    op.drop_table("tokens")
    op.drop_table("connections")
