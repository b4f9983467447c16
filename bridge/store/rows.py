"""What the store hands back: small frozen records, one per kind of row.

Money is `Decimal`, days are `date`, instants are timezone-aware UTC `datetime`s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Literal

from bridge.plan import Action

LedgerState = Literal["pending", "applied", "failed", "dropped", "in_doubt", "forgiven"]
FinishState = Literal["applied", "failed", "dropped", "in_doubt"]

LEDGER_STATES: Final[tuple[str, ...]] = ("pending", "applied", "failed", "dropped", "in_doubt", "forgiven")
# A key in one of these states is never begun again: it happened, may have happened, or is under way. A
# `forgiven` late fee was charged, then taken back (`bridge forgive`): that occurrence is never charged again.
BLOCKING_STATES: Final[frozenset[str]] = frozenset({"pending", "applied", "in_doubt", "forgiven"})
# What the policies count as already done (an in-doubt reminder counts as sent: it is never sent twice; a
# forgiven fee occurrence was charged, and its forgiving's entry makes it count as nothing).
HISTORY_STATES: Final[tuple[str, ...]] = ("applied", "in_doubt", "forgiven")

# Stream names whose records `save_pull` stores; a quarantine row under one of these names is
# cleared when the record later arrives fine (or is deleted).
INVOICES: Final = "invoices"
PAYMENTS: Final = "payments"
# Estimates (quotes), read only when a contract checks invoices against them (docs/policy.md §2.1)
ESTIMATES: Final = "estimates"


@dataclass(frozen=True, slots=True)
class CachedInvoice:
    """A cached invoice as stored (its model's JSON text, unread), with its last evaluation when there is one."""

    remote_id: str
    number: str
    model: str
    fingerprint: str | None
    result: str | None


@dataclass(frozen=True, slots=True)
class KeptPlan:
    """A dry run's plan as kept (bridge.evaluations): the record change count and the fingerprint of the other
    inputs it was made from, its head (JSON text) and its canonical JSON, compressed."""

    changes: int
    fingerprint: str
    head: str
    plan: bytes


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    """A linked provider company."""

    name: str
    provider: str
    tenant_id: str | None
    base_url: str | None
    created_at: datetime
    last_sync_at: datetime | None


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A connection's tokens as the vault stored them: opaque ciphertext and the expiries in clear."""

    connection: str
    ciphertext: bytes
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None
    updated_at: datetime
    version: int

    def __repr__(self) -> str:
        # Ciphertext is not a secret on its own, but there is no reason to spill it into logs.
        return (
            f"TokenRow(connection={self.connection!r}, ciphertext=<{len(self.ciphertext)} bytes>, "
            f"access_expires_at={self.access_expires_at!r}, refresh_expires_at={self.refresh_expires_at!r}, "
            f"updated_at={self.updated_at!r}, version={self.version})"
        )


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where an incremental pull of one stream got to: the last-updated watermark and the ids seen at it."""

    watermark: str
    ids_at_watermark: tuple[str, ...] = ()
    full_sync_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A provider record that could not be mapped; kept with its raw payload until it arrives fine.

    `raw` is any JSON value (numbers come back as `Decimal` or `int`). `quarantined_at` is set by the store.
    """

    stream: str
    record_id: str
    error: str
    raw: Any = None
    quarantined_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One action key in the write-ahead ledger and where it stands.

    `error` says why it failed, was dropped or is in doubt, or who forgave it and why. `action_json` is the full
    planned action, so a pending entry can be reconciled or retried later (`action()`).
    """

    key: str
    connection: str
    kind: str
    invoice_id: str
    invoice_number: str
    state: LedgerState
    amount: Decimal | None
    currency: str
    clause: str
    reason: str
    form: str | None
    response_id: str | None
    error: str | None
    attempts: int
    applied_on: date | None
    created_at: datetime
    updated_at: datetime
    action_json: str

    def action(self) -> Action:
        """The planned action this entry records."""
        return Action.from_dict(json.loads(self.action_json))


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One state change of a ledger entry: the audit trail."""

    key: str
    connection: str
    state: LedgerState
    at: datetime
    detail: str


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """A connection's place in the server's schedule: when it runs next (and why), who holds it, how it last went."""

    connection: str
    next_run_at: datetime
    trigger: str  # what set next_run_at: "start", "schedule" or "webhook"
    forward_due: datetime | None  # a webhook that came while it was running: the run after this one
    claimed_by: str | None
    claimed_until: datetime | None
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_outcome: str | None
    last_detail: str | None
