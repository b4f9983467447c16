"""Each cached invoice's last evaluation, keyed by the fingerprint of its inputs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Mirrors `evaluations` in bridge/store/tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the evaluations table."""
    op.create_table(
        "evaluations",
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("remote_id", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "remote_id", name=op.f("pk_evaluations")),
    )


def downgrade() -> None:
    """Drop the evaluations table."""
    op.drop_table("evaluations")
