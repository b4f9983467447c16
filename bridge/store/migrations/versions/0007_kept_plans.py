"""Kept plans: the last dry-run plan of each set of connections, and the count of changes to the pulled records.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Mirrors `record_changes` and `kept_plans` in bridge/store/tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create both tables; the count starts at 0."""
    changes = op.create_table(
        "record_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_changes")),
    )
    op.bulk_insert(changes, [{"id": 1, "count": 0}])
    op.create_table(
        "kept_plans",
        sa.Column("names", sa.Text(), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("head", sa.Text(), nullable=False),
        sa.Column("plan", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("names", name=op.f("pk_kept_plans")),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("kept_plans")
    op.drop_table("record_changes")
