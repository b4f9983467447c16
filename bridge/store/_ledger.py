"""The action ledger's state machine, as functions over an open transaction (the `Store` commits).

    (new) ──begin──▶ pending ──finish──▶ applied
                        │ ├────finish──▶ failed  ──begin──▶ pending (attempts + 1)
                        │ ├────finish──▶ dropped ──begin──▶ pending (attempts + 1)
                        │ └────finish──▶ in_doubt ──finish──▶ applied (evidence found later)
    (new) ──drop───▶ dropped          (a stale plan's action, never begun)

    a late fee: applied ──its forgiving `forgive:…` finishes applied──▶ forgiven

A key that is pending, applied, in doubt or forgiven is never begun again: that is what makes money
writes exactly once and e-mail at most once. A late fee becomes `forgiven` in the transaction that
records its forgiving (`bridge forgive`) applied, with who and why in its `error`. Every change
appends a `ledger_events` row.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, cast

from sqlalchemy import Connection, RowMapping, insert, select, update

from bridge.errors import ConflictError
from bridge.model import HistoryEntry
from bridge.plan import Action, ActionKind, forgiven_fee_key
from bridge.store import tables as t
from bridge.store.rows import BLOCKING_STATES, HISTORY_STATES, FinishState, LedgerEntry, LedgerEvent, LedgerState

FORGIVE_FEE: Final = ActionKind.FORGIVE_FEE.value

# Which states each finishing state may be reached from.
_FINISH_FROM: Final[Mapping[str, frozenset[str]]] = {
    "applied": frozenset({"pending", "in_doubt"}),
    "failed": frozenset({"pending"}),
    "dropped": frozenset({"pending"}),
    "in_doubt": frozenset({"pending"}),
}


def begin(conn: Connection, action: Action, now: datetime) -> LedgerEntry:
    """Record `pending` for the action's key (see the module docstring for what is refused)."""
    row = _row(conn, action.key, for_update=True)
    values = _action_values(action)
    if row is None:
        attempts = 1
        conn.execute(
            insert(t.ledger).values(
                key=action.key,
                state="pending",
                attempts=attempts,
                response_id=None,
                error=None,
                applied_on=None,
                created_at=now,
                updated_at=now,
                **values,
            )
        )
        detail = "begun (attempt 1)"
    elif row["state"] in BLOCKING_STATES:
        raise already_begun(action.key, row["state"], row["attempts"])
    else:
        attempts = row["attempts"] + 1
        conn.execute(
            update(t.ledger)
            .where(t.ledger.c.key == action.key)
            .values(
                state="pending",
                attempts=attempts,
                response_id=None,
                error=None,
                applied_on=None,
                updated_at=now,
                **values,
            )
        )
        detail = f"begun again after {row['state']} (attempt {attempts})"
    _event(conn, action.key, action.connection, "pending", now, detail)
    return _require(conn, action.key)


def already_begun(key: str, state: str, attempts: int) -> ConflictError:
    """The error for beginning a key that is pending, applied, in doubt or forgiven."""
    hint = {
        "pending": "an earlier run was interrupted; it is reconciled against the provider before any retry",
        "applied": "it has already been carried out",
        "in_doubt": "it may have been carried out; it is never repeated (resolve it by hand if it was not)",
        "forgiven": "it was carried out, then taken back (`bridge forgive`); that occurrence is never repeated",
    }[state]
    return ConflictError(f"action {key} is already {state} in the ledger (attempt {attempts}): {hint}")


def finish(
    conn: Connection,
    key: str,
    state: FinishState,
    now: datetime,
    *,
    response_id: str | None,
    form: str | None,
    error: str | None,
    applied_on: date | None,
) -> LedgerEntry:
    """Move a begun entry to its outcome."""
    if state not in _FINISH_FROM:
        raise ValueError(f"{state!r} is not an outcome; use one of {', '.join(sorted(_FINISH_FROM))}")
    row = _row(conn, key, for_update=True)
    if row is None:
        raise KeyError(f"no ledger entry for action {key}: begin it first")
    if row["state"] not in _FINISH_FROM[state]:
        allowed = " or ".join(sorted(_FINISH_FROM[state]))
        raise ConflictError(f"ledger entry {key} is {row['state']}; only a {allowed} entry can become {state}")
    values: dict[str, Any] = {"state": state, "updated_at": now}
    if response_id is not None:
        values["response_id"] = response_id
    if form is not None:
        values["form"] = form
    if error is not None:
        values["error"] = error
    if state in HISTORY_STATES:
        # Default: the day the call was made, i.e. when the entry last went pending.
        values["applied_on"] = applied_on or row["applied_on"] or row["updated_at"].date()
    conn.execute(update(t.ledger).where(t.ledger.c.key == key).values(**values))
    _event(conn, key, row["connection"], state, now, _finish_detail(state, response_id, form, error))
    fee = forgiven_fee_key(key) if state == "applied" and row["kind"] == FORGIVE_FEE else None
    if fee is not None:
        _forgive(conn, fee, key, row["reason"], now)
    return _require(conn, key)


def _forgive(conn: Connection, key: str, by: str, why: str, now: datetime) -> None:
    """Move the applied late fee `key` to `forgiven`, with who and why (`why`, the forgiving's reason) in its
    `error` and the forgiving's key `by` in its event. A fee already forgiven (or in any other state: nothing
    charged to forgive) is left as it is."""
    row = _row(conn, key, for_update=True)
    if row is not None and row["state"] == "applied":
        conn.execute(update(t.ledger).where(t.ledger.c.key == key).values(state="forgiven", error=why, updated_at=now))
        _event(conn, key, row["connection"], "forgiven", now, f"{why} ({by})")


def drop(conn: Connection, action: Action, reason: str, now: datetime) -> LedgerEntry:
    """Record an action that was never begun as dropped, with the reason."""
    row = _row(conn, action.key, for_update=True)
    if row is None:
        conn.execute(
            insert(t.ledger).values(
                key=action.key,
                state="dropped",
                attempts=0,
                response_id=None,
                error=reason,
                applied_on=None,
                created_at=now,
                updated_at=now,
                **_action_values(action),
            )
        )
    elif row["state"] in BLOCKING_STATES:
        raise already_begun(action.key, row["state"], row["attempts"])
    else:
        conn.execute(
            update(t.ledger)
            .where(t.ledger.c.key == action.key)
            .values(state="dropped", error=reason, updated_at=now, **_action_values(action))
        )
    _event(conn, action.key, action.connection, "dropped", now, f"dropped before it began: {reason}")
    return _require(conn, action.key)


def get(conn: Connection, key: str) -> LedgerEntry | None:
    """The entry for a key, if any."""
    row = _row(conn, key)
    return None if row is None else _entry(row)


def entries(
    conn: Connection,
    *,
    connections: Collection[str] | None = None,
    invoice_number: str | None = None,
    states: Collection[str] | None = None,
    kinds: Collection[str] | None = None,
) -> list[LedgerEntry]:
    """Entries matching every given filter, by creation time then key."""
    stmt = select(t.ledger)
    if kinds is not None:
        stmt = stmt.where(t.ledger.c.kind.in_(sorted(set(kinds))))
    if connections is not None:
        stmt = stmt.where(t.ledger.c.connection.in_(sorted(set(connections))))
    if invoice_number is not None:
        stmt = stmt.where(t.ledger.c.invoice_number == invoice_number)
    if states is not None:
        stmt = stmt.where(t.ledger.c.state.in_(sorted(set(states))))
    found = [_entry(row) for row in conn.execute(stmt).mappings()]
    # Sorted here, not in SQL, so the order is the same whatever the database's collation.
    return sorted(found, key=lambda e: (e.created_at, e.key))


def events(conn: Connection, key: str | None, connection: str | None) -> list[LedgerEvent]:
    """State changes, oldest first."""
    stmt = select(t.ledger_events).order_by(t.ledger_events.c.id)
    if key is not None:
        stmt = stmt.where(t.ledger_events.c.key == key)
    if connection is not None:
        stmt = stmt.where(t.ledger_events.c.connection == connection)
    return [
        LedgerEvent(
            key=row["key"],
            connection=row["connection"],
            state=cast(LedgerState, row["state"]),
            at=row["at"],
            detail=row["detail"],
        )
        for row in conn.execute(stmt).mappings()
    ]


def history(
    conn: Connection, connections: Collection[str], states: Collection[str] = HISTORY_STATES
) -> list[HistoryEntry]:
    """What the policies count as done: applied, in-doubt and forgiven entries (and any other `states` asked for).

    An entry still pending has no `applied_on` yet; it counts from the day it went pending. A fee is forgiven
    (`bridge forgive`) only once the forgiving is applied: one still pending is left out until it is settled.
    A forgiven fee is in the history as charged (its occurrence is never charged again); its applied forgiving
    makes it count as nothing.
    """
    return [
        HistoryEntry(
            key=e.key,
            kind=e.kind,
            amount=e.amount,
            applied_on=e.applied_on or e.created_at.date(),
            note=e.reason if e.kind == FORGIVE_FEE else None,
        )
        for e in entries(conn, connections=connections, states=states)
        if e.kind != FORGIVE_FEE or e.state == "applied"
    ]


def _row(conn: Connection, key: str, *, for_update: bool = False) -> RowMapping | None:
    stmt = select(t.ledger).where(t.ledger.c.key == key)
    if for_update:
        stmt = stmt.with_for_update()  # PostgreSQL: serialise writers of one key (SQLite: BEGIN IMMEDIATE does)
    return conn.execute(stmt).mappings().first()


def _require(conn: Connection, key: str) -> LedgerEntry:
    row = _row(conn, key)
    assert row is not None, key
    return _entry(row)


def _action_values(action: Action) -> dict[str, Any]:
    return {
        "connection": action.connection,
        "kind": action.kind.value,
        "invoice_id": action.invoice.id,
        "invoice_number": action.invoice.number,
        "amount": None if action.amount is None else format(action.amount, "f"),
        "currency": action.invoice.currency,
        "clause": action.clause,
        "reason": action.reason,
        "form": action.form,
        "action": json.dumps(action.to_dict(), ensure_ascii=False),
    }


def _entry(row: RowMapping) -> LedgerEntry:
    return LedgerEntry(
        key=row["key"],
        connection=row["connection"],
        kind=row["kind"],
        invoice_id=row["invoice_id"],
        invoice_number=row["invoice_number"],
        state=cast(LedgerState, row["state"]),
        amount=None if row["amount"] is None else Decimal(row["amount"]),
        currency=row["currency"],
        clause=row["clause"],
        reason=row["reason"],
        form=row["form"],
        response_id=row["response_id"],
        error=row["error"],
        attempts=row["attempts"],
        applied_on=row["applied_on"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        action_json=row["action"],
    )


def _event(conn: Connection, key: str, connection: str, state: str, at: datetime, detail: str) -> None:
    conn.execute(insert(t.ledger_events).values(key=key, connection=connection, state=state, at=at, detail=detail))


def _finish_detail(state: str, response_id: str | None, form: str | None, error: str | None) -> str:
    parts = [state.replace("_", " ")]
    if form is not None:
        parts.append(f"as {form}")
    if response_id is not None:
        parts.append(f"response id {response_id}")
    text = ", ".join(parts)
    return f"{text}: {error}" if error else text
