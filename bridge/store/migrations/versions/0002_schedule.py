"""The server's schedule (`next_run_at` per connection, claimed with a lease) and provider-given webhook keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07

Written by hand to mirror `schedule` and `webhook_keys` in bridge/store/tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the schedule and webhook key tables."""
    instant = sa.DateTime(timezone=True)
    op.create_table(
        "schedule",
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("next_run_at", instant, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("forward_due", instant, nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("claimed_at", instant, nullable=True),
        sa.Column("claimed_until", instant, nullable=True),
        sa.Column("last_run_at", instant, nullable=True),
        sa.Column("last_success_at", instant, nullable=True),
        sa.Column("last_outcome", sa.String(32), nullable=True),
        sa.Column("last_detail", sa.Text(), nullable=True),
        sa.Column("updated_at", instant, nullable=False),
        sa.PrimaryKeyConstraint("connection", name=op.f("pk_schedule")),
    )
    op.create_index(op.f("ix_schedule_next_run_at"), "schedule", ["next_run_at"])
    op.create_table(
        "webhook_keys",
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", instant, nullable=False),
        sa.PrimaryKeyConstraint("connection", name=op.f("pk_webhook_keys")),
    )


def downgrade() -> None:
    """Drop the schedule and webhook key tables."""
    op.drop_table("webhook_keys")
    op.drop_index(op.f("ix_schedule_next_run_at"), table_name="schedule")
    op.drop_table("schedule")
