"""The store's tables, in SQLAlchemy Core: the source of truth the migrations mirror.

Money is TEXT holding the exact `Decimal` (never a float column). Models and provider payloads
are JSON text. Instants go through `UTCDateTime`, so both backends hand back aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Column widths: PostgreSQL enforces them, SQLite does not; keep them generous.
NAME = 200
KEY = 300


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: aware datetimes only, stored in UTC, read back aware in UTC on every backend.

    SQLite has no time zone in its DATETIME text, so the value is stored as naive UTC there.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


connections = Table(
    "connections",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("provider", String(50), nullable=False),
    Column("tenant_id", String(NAME), nullable=True),
    Column("base_url", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_sync_at", UTCDateTime, nullable=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("connection", String(NAME), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("access_expires_at", UTCDateTime, nullable=True),
    Column("refresh_expires_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False),
)

invoices = Table(
    "invoices",
    metadata,
    Column("connection", String(NAME), primary_key=True),
    Column("remote_id", String(NAME), primary_key=True),
    Column("number", String(NAME), nullable=False),
    Column("status", String(32), nullable=False),
    Column("model", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "connection", "number"),
)


def _record_table(name: str) -> Table:
    """A cached provider record kept as its model's JSON and the raw payload (payments, estimates)."""
    return Table(
        name,
        metadata,
        Column("connection", String(NAME), primary_key=True),
        Column("remote_id", String(NAME), primary_key=True),
        Column("model", Text, nullable=False),
        Column("raw", Text, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )


payments = _record_table("payments")

customers = Table(
    "customers",
    metadata,
    Column("connection", String(NAME), primary_key=True),
    Column("remote_id", String(NAME), primary_key=True),
    Column("raw", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

estimates = _record_table("estimates")

cursors = Table(
    "cursors",
    metadata,
    Column("connection", String(NAME), primary_key=True),
    Column("stream", String(100), primary_key=True),
    Column("watermark", Text, nullable=False),
    Column("ids_at_watermark", Text, nullable=False),
    Column("full_sync_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("connection", String(NAME), primary_key=True),
    Column("stream", String(100), primary_key=True),
    Column("record_id", String(NAME), primary_key=True),
    Column("error", Text, nullable=False),
    Column("raw", Text, nullable=True),
    Column("quarantined_at", UTCDateTime, nullable=False),
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("connection", String(NAME), primary_key=True),
    Column("remote_id", String(NAME), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("result", Text, nullable=False),
)
"""What the contracts called for on each cached invoice, and the fingerprint of everything that decided it
(bridge.evaluations): a no-change sync takes the result back instead of evaluating the invoice again."""

record_changes = Table(
    "record_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("count", Integer, nullable=False),
)
"""One row: how many times the pulled records (invoices, payments, customers, estimates, quarantine) changed, counted
in the transaction that changes them. A kept plan made from records read at one count is stale at any other."""

kept_plans = Table(
    "kept_plans",
    metadata,
    Column("names", Text, primary_key=True),
    Column("changes", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("head", Text, nullable=False),
    Column("plan", LargeBinary, nullable=False),
)
"""The last dry-run plan of each set of connections (`names`, one per line), as its canonical JSON compressed, with
the record count it was made at and a fingerprint of every other input (bridge.evaluations): a dry run with
nothing changed writes it out again instead of making it anew."""

ledger = Table(
    "ledger",
    metadata,
    Column("key", String(KEY), primary_key=True),
    Column("connection", String(NAME), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("invoice_id", String(NAME), nullable=False),
    Column("invoice_number", String(NAME), nullable=False),
    Column("state", String(16), nullable=False),
    Column("amount", Text, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("clause", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("form", String(32), nullable=True),
    Column("response_id", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("applied_on", Date, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("action", Text, nullable=False),
    CheckConstraint("state IN ('pending', 'applied', 'failed', 'dropped', 'in_doubt', 'forgiven')", name="state"),
    Index(None, "connection", "invoice_number"),
    Index(None, "state"),
)

ledger_events = Table(
    "ledger_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(KEY), ForeignKey("ledger.key"), nullable=False),
    Column("connection", String(NAME), nullable=False),
    Column("state", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("detail", Text, nullable=False),
    Index(None, "key"),
    Index(None, "connection"),
)

renegotiations = Table(
    "renegotiations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connection", String(NAME), nullable=False),
    Column("invoice_id", String(NAME), nullable=True),
    Column("invoice_number", String(NAME), nullable=True),
    Column("status", String(16), nullable=True),
    Column("requested_on", Date, nullable=False),
    Column("new_due_date", Date, nullable=False),
    Column("decided_on", Date, nullable=True),
    Column("record", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "connection"),
)

# The server's schedule (`bridge serve`): when each configured connection syncs next, who holds its run.
# A row is claimed by setting `claimed_until` (a lease: a worker that dies frees it when it runs out);
# `forward_due` keeps a webhook that arrived while the connection was running, for the run after it.
schedule = Table(
    "schedule",
    metadata,
    Column("connection", String(NAME), primary_key=True),
    Column("next_run_at", UTCDateTime, nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("forward_due", UTCDateTime, nullable=True),
    Column("claimed_by", String(NAME), nullable=True),
    Column("claimed_at", UTCDateTime, nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("last_run_at", UTCDateTime, nullable=True),
    Column("last_success_at", UTCDateTime, nullable=True),
    Column("last_outcome", String(32), nullable=True),
    Column("last_detail", Text, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "next_run_at"),
)

# Webhook keys a provider handed over itself (FreshBooks' verifier, sent to the callback address when the
# callback is registered), encrypted like the tokens; a key in the environment (`webhook_secret_env`) wins.
webhook_keys = Table(
    "webhook_keys",
    metadata,
    Column("connection", String(NAME), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# -- review (docs/review.md): plans waiting for a person, the people, their one-time links ----------

review_plans = Table(
    "review_plans",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("connection", String(NAME), nullable=False),
    Column("state", String(16), nullable=False),
    Column("plan", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("replaced_by", String(64), nullable=True),
    Column("decided_by", String(NAME), nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("reason", Text, nullable=True),
    Column("result", Text, nullable=True),
    CheckConstraint("state IN ('pending', 'replaced', 'approved', 'rejected')", name="state"),
    Index(None, "connection", "state"),
    # One pending plan per connection, whatever writes it.
    Index(
        "uq_review_plans_one_pending",
        "connection",
        unique=True,
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
)

review_decisions = Table(
    "review_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("plan_id", String(64), ForeignKey("review_plans.id"), nullable=False),
    Column("key", String(KEY), nullable=True),  # None: the whole plan
    Column("decision", String(16), nullable=False),
    Column("by", String(NAME), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("note", Text, nullable=False),
    Index(None, "plan_id"),
    Index(None, "key"),
)

users = Table(
    "users",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("connections", Text, nullable=False),  # JSON list of connection names; ["*"] = all
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

used_links = Table(
    "used_links",
    metadata,
    Column("token_id", String(64), primary_key=True),
    Column("used_at", UTCDateTime, nullable=False),
)

sign_in_failures = Table(
    "sign_in_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index(None, "name", "at"),
)
