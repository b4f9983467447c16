"""Review: pending plans, reviewers' decisions, users, used one-time links, failed sign-ins.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

Mirrors the review tables of bridge/store/tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(name: str, nullable: bool) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the review tables."""
    op.create_table(
        "review_plans",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        _instant("created_at", False),
        sa.Column("replaced_by", sa.String(64), nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        _instant("decided_at", True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'replaced', 'approved', 'rejected')", name=op.f("ck_review_plans_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_plans")),
    )
    op.create_index(op.f("ix_review_plans_connection_state"), "review_plans", ["connection", "state"])
    op.create_index(
        "uq_review_plans_one_pending",
        "review_plans",
        ["connection"],
        unique=True,
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("plan_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(300), nullable=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        _instant("at", False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["review_plans.id"], name=op.f("fk_review_decisions_plan_id_review_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decisions")),
    )
    op.create_index(op.f("ix_review_decisions_plan_id"), "review_decisions", ["plan_id"])
    op.create_index(op.f("ix_review_decisions_key"), "review_decisions", ["key"])
    op.create_table(
        "users",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("connections", sa.Text(), nullable=False),
        _instant("created_at", False),
        _instant("updated_at", False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_users")),
    )
    op.create_table(
        "used_links",
        sa.Column("token_id", sa.String(64), nullable=False),
        _instant("used_at", False),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_used_links")),
    )
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _instant("at", False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_failures")),
    )
    op.create_index(op.f("ix_sign_in_failures_name_at"), "sign_in_failures", ["name", "at"])


def downgrade() -> None:
    """Drop the review tables."""
    op.drop_index(op.f("ix_sign_in_failures_name_at"), table_name="sign_in_failures")
    op.drop_table("sign_in_failures")
    op.drop_table("used_links")
    op.drop_table("users")
    op.drop_index(op.f("ix_review_decisions_key"), table_name="review_decisions")
    op.drop_index(op.f("ix_review_decisions_plan_id"), table_name="review_decisions")
    op.drop_table("review_decisions")
    op.drop_index("uq_review_plans_one_pending", table_name="review_plans")
    op.drop_index(op.f("ix_review_plans_connection_state"), table_name="review_plans")
    op.drop_table("review_plans")
