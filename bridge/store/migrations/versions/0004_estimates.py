"""Estimates: the estimates (quotes) pulled for the estimate check (docs/policy.md §2.1).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

Mirrors the `estimates` table of bridge/store/tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the estimates table."""
    op.create_table(
        "estimates",
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("remote_id", sa.String(200), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connection", "remote_id", name=op.f("pk_estimates")),
    )


def downgrade() -> None:
    """Drop the estimates table."""
    op.drop_table("estimates")
