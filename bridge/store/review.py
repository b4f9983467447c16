"""The review's part of the store: plans waiting for approval, reviewers' decisions, users, one-time links.

    reviews = Reviews(store)
    plan_id, replaced = reviews.submit("acme-qbo", plan)      # the older pending plan of acme-qbo is `replaced`
    reviews.decide(plan_id, "approved", by="alice", result={...}, decisions=[(key, "approved", "")])

One pending plan per connection (a partial unique index says so too); a newer plan replaces the older one,
which stays, marked `replaced` and pointing at its successor. Every method is one transaction.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bridge.clock import now_utc
from bridge.errors import ConflictError
from bridge.plan import Plan
from bridge.store import tables as t
from bridge.store._ledger import _event
from bridge.store.store import Store

REVIEW_STATES = ("pending", "replaced", "approved", "rejected")
DECISIONS = ("approved", "rejected", "forgiven", "left")  # per action; "left": not in the approved selection


@dataclass(frozen=True)
class ReviewPlan:
    """A stored plan and what became of it."""

    id: str
    connection: str
    state: str
    plan: Plan
    created_at: datetime
    replaced_by: str | None
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    result: dict[str, Any] | None


@dataclass(frozen=True)
class Decision:
    """One reviewer's decision on one action (`key`) or on the whole plan (`key` None)."""

    plan_id: str
    key: str | None
    decision: str
    by: str
    at: datetime
    note: str


@dataclass(frozen=True)
class User:
    """A reviewer: name, argon2 hash, the connections whose plans they see (`*` = all)."""

    name: str
    password_hash: str
    connections: tuple[str, ...]

    def may_see(self, connection: str) -> bool:
        """True when this user reviews plans of `connection`."""
        return "*" in self.connections or connection in self.connections


class Reviews:
    """The review tables of one store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- plans ------------------------------------------------------------------------------------

    def submit(self, connection: str, plan: Plan) -> tuple[str, str | None]:
        """Store `plan` as the pending review of `connection`; returns its id and the id of the plan it replaced."""
        plan_id = secrets.token_urlsafe(12)
        now = now_utc()
        with self._store._tx(write=True) as conn:
            old = conn.execute(
                select(t.review_plans.c.id).where(
                    t.review_plans.c.connection == connection, t.review_plans.c.state == "pending"
                )
            ).scalar()
            if old is not None:
                conn.execute(
                    update(t.review_plans)
                    .where(t.review_plans.c.id == old)
                    .values(state="replaced", replaced_by=plan_id, decided_at=now, reason=f"replaced by {plan_id}")
                )
            conn.execute(
                insert(t.review_plans).values(
                    id=plan_id, connection=connection, state="pending", plan=plan.to_json(), created_at=now
                )
            )
        return plan_id, old

    def get(self, plan_id: str) -> ReviewPlan | None:
        """One stored plan, or None."""
        with self._store._tx() as conn:
            row = conn.execute(select(t.review_plans).where(t.review_plans.c.id == plan_id)).mappings().first()
        return None if row is None else _plan(row)

    def plans(self, *, states: Sequence[str] = ("pending",), limit: int = 200) -> list[ReviewPlan]:
        """Plans in these states, newest first."""
        stmt = (
            select(t.review_plans)
            .where(t.review_plans.c.state.in_(list(states)))
            .order_by(t.review_plans.c.created_at.desc(), t.review_plans.c.id)
            .limit(limit)
        )
        with self._store._tx() as conn:
            return [_plan(r) for r in conn.execute(stmt).mappings().all()]

    def claim(self, plan_id: str, state: str, by: str, reason: str) -> ReviewPlan:
        """Move a pending plan to `approved` or `rejected` (once: a second decision raises ConflictError)."""
        if state not in ("approved", "rejected"):
            raise ValueError(f"a plan is approved or rejected, not {state!r}")
        with self._store._tx(write=True) as conn:
            done = conn.execute(
                update(t.review_plans)
                .where(t.review_plans.c.id == plan_id, t.review_plans.c.state == "pending")
                .values(state=state, decided_by=by, decided_at=now_utc(), reason=reason)
            )
            if done.rowcount != 1:
                row = conn.execute(select(t.review_plans.c.state).where(t.review_plans.c.id == plan_id)).scalar()
                raise ConflictError(f"plan {plan_id} is {row or 'unknown'}, no longer pending: nothing was done")
        found = self.get(plan_id)
        assert found is not None
        return found

    def record(
        self,
        plan_id: str,
        decisions: Iterable[tuple[str | None, str, str]],
        by: str,
        *,
        ledger: Iterable[tuple[str, str, str]] = (),
        result: dict[str, Any] | None = None,
    ) -> None:
        """Record decisions (key, decision, note) by `by`, and the result; `ledger` adds a ledger event to each
        (key, connection, detail) whose ledger entry exists, so `bridge ledger` says who approved what."""
        now = now_utc()
        with self._store._tx(write=True) as conn:
            for key, decision, note in decisions:
                if decision not in DECISIONS and key is not None:
                    raise ValueError(f"unknown decision {decision!r}")
                conn.execute(
                    insert(t.review_decisions).values(
                        plan_id=plan_id, key=key, decision=decision, by=by, at=now, note=note
                    )
                )
            for key, connection, detail in ledger:
                state = conn.execute(select(t.ledger.c.state).where(t.ledger.c.key == key)).scalar()
                if state is not None:
                    _event(conn, key, connection, state, now, detail)
            if result is not None:
                conn.execute(
                    update(t.review_plans).where(t.review_plans.c.id == plan_id).values(result=json.dumps(result))
                )

    def decisions(self, plan_id: str | None = None, *, decision: str | None = None) -> list[Decision]:
        """Recorded decisions, oldest first (of one plan, or of one kind)."""
        stmt = select(t.review_decisions).order_by(t.review_decisions.c.id)
        if plan_id is not None:
            stmt = stmt.where(t.review_decisions.c.plan_id == plan_id)
        if decision is not None:
            stmt = stmt.where(t.review_decisions.c.decision == decision)
        with self._store._tx() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [Decision(r["plan_id"], r["key"], r["decision"], r["by"], r["at"], r["note"]) for r in rows]

    # -- users ------------------------------------------------------------------------------------

    def add_user(self, name: str, password_hash: str, connections: Sequence[str] = ("*",)) -> bool:
        """Add a user, or set an existing one's password and connections; True when new."""
        now = now_utc()
        values = {"password_hash": password_hash, "connections": json.dumps(list(connections)), "updated_at": now}
        with self._store._tx(write=True) as conn:
            done = conn.execute(update(t.users).where(t.users.c.name == name).values(**values))
            if done.rowcount:
                return False
            conn.execute(insert(t.users).values(name=name, created_at=now, **values))
            return True

    def user(self, name: str) -> User | None:
        """A user by name, or None."""
        with self._store._tx() as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).mappings().first()
        if row is None:
            return None
        return User(row["name"], row["password_hash"], tuple(json.loads(row["connections"])))

    # -- one-time links and failed sign-ins ---------------------------------------------------------

    def use_link(self, token_id: str) -> bool:
        """Mark a one-time link used; False when it was used before."""
        try:
            with self._store._tx(write=True) as conn:
                conn.execute(insert(t.used_links).values(token_id=token_id, used_at=now_utc()))
        except IntegrityError:
            return False
        return True

    def failed_sign_in(self, name: str) -> None:
        """Count a failed sign-in for `name`."""
        with self._store._tx(write=True) as conn:
            conn.execute(insert(t.sign_in_failures).values(name=name, at=now_utc()))

    def failures_since(self, name: str, since: datetime) -> int:
        """How many sign-ins for `name` failed since `since`."""
        with self._store._tx() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(t.sign_in_failures)
                    .where(t.sign_in_failures.c.name == name, t.sign_in_failures.c.at >= since)
                ).scalar_one()
            )

    def clear_failures(self, name: str) -> None:
        """Forget the failed sign-ins of `name` (after a good one)."""
        with self._store._tx(write=True) as conn:
            conn.execute(delete(t.sign_in_failures).where(t.sign_in_failures.c.name == name))


def _plan(row: Any) -> ReviewPlan:
    return ReviewPlan(
        id=row["id"],
        connection=row["connection"],
        state=row["state"],
        plan=Plan.from_dict(json.loads(row["plan"])),
        created_at=row["created_at"],
        replaced_by=row["replaced_by"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        reason=row["reason"],
        result=None if row["result"] is None else json.loads(row["result"]),
    )
