"""The action ledger: write-ahead, exactly once (docs/architecture.md, "Exactly once")."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from bridge.errors import ConflictError
from bridge.model import HistoryEntry
from bridge.plan import Action, ActionKind
from bridge.store import FinishState, Store
from tests.store.factories import D, late_fee, reminder


def test_begin_commits_pending_before_returning(store: Store, store_url: str) -> None:
    entry = store.ledger_begin(late_fee())
    assert (entry.state, entry.attempts, entry.amount, entry.currency) == ("pending", 1, Decimal("22.50"), "USD")
    other = Store.open(store_url)  # another process's view: only committed rows are visible
    try:
        seen = other.ledger_get("late_fee:acme:130:1")
        assert seen is not None and seen.state == "pending"
    finally:
        other.close()


def test_begin_then_applied(store: Store) -> None:
    action = late_fee()
    store.ledger_begin(action)
    done = store.ledger_finish(action.key, "applied", response_id="130", form="line", applied_on=D("2026-10-20"))
    assert (done.state, done.response_id, done.form, done.applied_on, done.error) == (
        "applied",
        "130",
        "line",
        D("2026-10-20"),
        None,
    )
    assert (done.connection, done.kind, done.invoice_id, done.invoice_number) == ("acme", "late_fee", "130", "1037")
    assert (done.clause, done.reason) == (action.clause, action.reason)
    assert done.action() == action
    assert done.updated_at >= done.created_at
    assert store.ledger_get(action.key) == done
    assert store.ledger_get("nope") is None


@pytest.mark.parametrize("state", ["pending", "applied", "in_doubt"])
def test_a_key_that_is_pending_applied_or_in_doubt_is_never_begun_again(store: Store, state: str) -> None:
    action = reminder()
    store.ledger_begin(action)
    if state != "pending":
        store.ledger_finish(action.key, "applied" if state == "applied" else "in_doubt", error="timeout")
    with pytest.raises(ConflictError, match=f"already {state}"):
        store.ledger_begin(action)
    entry = store.ledger_get(action.key)
    assert entry is not None and (entry.state, entry.attempts) == (state, 1)
    assert [e.state for e in store.ledger_events(action.key)][-1] == state


@pytest.mark.parametrize("outcome", ["failed", "dropped"])
def test_a_failed_or_dropped_key_is_begun_again_with_attempts_plus_one(store: Store, outcome: str) -> None:
    action = late_fee()
    store.ledger_begin(action)
    store.ledger_finish(action.key, "failed" if outcome == "failed" else "dropped", error="HTTP 500")
    again = store.ledger_begin(action)
    assert (again.state, again.attempts, again.error, again.response_id) == ("pending", 2, None, None)
    done = store.ledger_finish(action.key, "applied", response_id="131")
    assert (done.state, done.attempts) == ("applied", 2)


def test_only_legal_transitions(store: Store) -> None:
    action = late_fee()
    with pytest.raises(KeyError, match="begin it first"):
        store.ledger_finish(action.key, "applied")
    store.ledger_begin(action)
    store.ledger_finish(action.key, "applied", response_id="130")
    outcomes: tuple[FinishState, ...] = ("failed", "dropped", "in_doubt", "applied")
    for state in outcomes:
        with pytest.raises(ConflictError, match="is applied"):
            store.ledger_finish(action.key, state)
    with pytest.raises(ValueError, match="not an outcome"):
        store.ledger_finish(action.key, "pending")  # type: ignore[arg-type]
    # An in-doubt entry can only be confirmed later, never failed (that would allow a second send).
    store.ledger_begin(reminder())
    store.ledger_finish(reminder().key, "in_doubt", error="timeout", applied_on=D("2026-10-20"))
    with pytest.raises(ConflictError):
        store.ledger_finish(reminder().key, "failed")
    confirmed = store.ledger_finish(reminder().key, "applied", response_id="sent-1")
    assert (confirmed.state, confirmed.applied_on, confirmed.response_id) == ("applied", D("2026-10-20"), "sent-1")


def test_applied_on_defaults_to_the_day_the_call_was_made(store: Store) -> None:
    entry = store.ledger_begin(late_fee())
    done = store.ledger_finish(entry.key, "applied")
    assert done.applied_on == entry.updated_at.date()


def test_history_holds_applied_and_in_doubt_only(store: Store) -> None:
    fee = late_fee("late_fee:acme:130:1", amount="22.50")
    fee_kwd = late_fee("late_fee:acme:131:1", amount="1.500", currency="KWD", invoice_id="131", number="1038")
    doubtful = reminder("reminder:acme:130:5")
    failed = reminder("reminder:acme:130:6")
    pending = late_fee("late_fee:acme:130:2")
    elsewhere = late_fee("late_fee:beta:9:1", connection="beta")
    for action in (fee, fee_kwd, doubtful, failed, pending, elsewhere):
        store.ledger_begin(action)
    store.ledger_finish(fee.key, "applied", applied_on=D("2026-10-12"))
    store.ledger_finish(fee_kwd.key, "applied", applied_on=D("2026-10-13"))
    store.ledger_finish(doubtful.key, "in_doubt", error="SMTP timeout", applied_on=D("2026-10-14"))
    store.ledger_finish(failed.key, "failed", error="HTTP 400")
    store.ledger_finish(elsewhere.key, "applied", applied_on=D("2026-10-15"))
    store.ledger_drop(late_fee("late_fee:acme:130:3"), "invoice paid meanwhile")

    assert store.history(["acme"]) == [
        HistoryEntry(key=fee.key, kind="late_fee", amount=Decimal("22.50"), applied_on=D("2026-10-12")),
        HistoryEntry(key=fee_kwd.key, kind="late_fee", amount=Decimal("1.500"), applied_on=D("2026-10-13")),
        HistoryEntry(key=doubtful.key, kind="reminder", amount=None, applied_on=D("2026-10-14")),
    ]
    assert str(store.history(["acme"])[1].amount) == "1.500"
    assert [h.key for h in store.history(["acme", "beta"])] == [fee.key, fee_kwd.key, doubtful.key, elsewhere.key]
    assert store.history([]) == []


def test_a_forgiving_counts_in_the_history_once_applied_with_who_and_why(store: Store) -> None:
    fee = late_fee("late_fee:acme:130:1", amount="22.50")
    store.ledger_begin(fee)
    store.ledger_finish(fee.key, "applied", applied_on=D("2026-10-12"))
    forgiving = fee._replace(key="forgive:acme:130:1", kind=ActionKind.FORGIVE_FEE, reason="forgiven by ann: kind")
    store.ledger_begin(forgiving)
    pending = store.history(["acme"], ("applied", "in_doubt", "pending"))
    assert [h.key for h in pending] == [fee.key]  # not forgiven until it is taken back at the provider
    store.ledger_finish(forgiving.key, "applied", response_id="130@4", applied_on=D("2026-10-21"))
    done = store.history(["acme"])
    assert [(h.key, h.note) for h in done] == [(fee.key, None), (forgiving.key, "forgiven by ann: kind")]
    assert done[0].amount == Decimal("22.50") and done[0].applied_on == D("2026-10-12")  # charged, then forgiven
    forgiven = store.ledger_get(fee.key)
    assert forgiven is not None and forgiven.state == "forgiven"


def _charged_and_forgiving(store: Store, by: str = "forgiven by ann: kind") -> tuple[Action, Action]:
    """A late fee charged (applied), and its forgiving begun (pending)."""
    fee = late_fee("late_fee:acme:130:1", amount="22.50")
    store.ledger_begin(fee)
    store.ledger_finish(fee.key, "applied", response_id="130", form="line", applied_on=D("2026-10-12"))
    forgiving = fee._replace(key="forgive:acme:130:1", kind=ActionKind.FORGIVE_FEE, reason=by, amount=Decimal("-22.50"))
    store.ledger_begin(forgiving)
    return fee, forgiving


@pytest.mark.parametrize("via", ["applied", "in_doubt"])
def test_a_forgiving_applied_moves_its_fee_to_forgiven_with_who_and_why(store: Store, via: str) -> None:
    fee, forgiving = _charged_and_forgiving(store)
    if via == "in_doubt":  # outcome unknown first, the provider's evidence later
        store.ledger_finish(forgiving.key, "in_doubt", error="timeout")
        assert store.ledger(states=["forgiven"]) == []
    store.ledger_finish(forgiving.key, "applied", response_id="130@4", applied_on=D("2026-10-21"))
    entry = store.ledger_get(fee.key)
    assert entry is not None
    assert (entry.state, entry.error, entry.amount, entry.response_id, entry.applied_on, entry.attempts) == (
        "forgiven",
        "forgiven by ann: kind",
        Decimal("22.50"),  # what was charged: the forgiving carries it back, negative
        "130",
        D("2026-10-12"),
        1,
    )
    assert [e.key for e in store.ledger(states=["forgiven"])] == [fee.key]
    events = store.ledger_events(fee.key)
    assert [(e.state, e.detail) for e in events][-1] == ("forgiven", f"forgiven by ann: kind ({forgiving.key})")
    assert events[-1].at == entry.updated_at == store.ledger_events(forgiving.key)[-1].at  # one commit
    # Never charged again, never dropped by a stale plan.
    with pytest.raises(ConflictError, match="already forgiven"):
        store.ledger_begin(fee)
    with pytest.raises(ConflictError, match="already forgiven"):
        store.ledger_drop(fee, "stale")
    for state in ("applied", "failed", "dropped", "in_doubt"):
        with pytest.raises(ConflictError, match="is forgiven"):
            store.ledger_finish(fee.key, state)  # type: ignore[arg-type]
    assert store.ledger_get(fee.key) == entry


def test_a_forgiving_not_applied_leaves_its_fee_applied(store: Store) -> None:
    fee, forgiving = _charged_and_forgiving(store)
    store.ledger_finish(forgiving.key, "failed", error="not found at the provider")
    store.ledger_begin(forgiving)
    store.ledger_finish(forgiving.key, "dropped", error="deferred: daily limit")
    entry = store.ledger_get(fee.key)
    assert entry is not None and (entry.state, entry.error) == ("applied", None)
    assert [e.state for e in store.ledger_events(fee.key)] == ["pending", "applied"]


def test_a_record_forgiving_later_fees_for_good_leaves_the_fee_as_it_is(store: Store) -> None:
    fee = late_fee("late_fee:acme:130:1", amount="22.50")
    store.ledger_begin(fee)
    store.ledger_finish(fee.key, "applied")
    record = fee._replace(key="fees_forgiven:acme:130:1", kind=ActionKind.FORGIVE_FEE, amount=None, reason="hardship")
    store.ledger_begin(record)
    store.ledger_finish(record.key, "applied", response_id="recorded")
    entry = store.ledger_get(fee.key)
    assert entry is not None and entry.state == "applied"


def test_every_state_change_is_an_event(store: Store) -> None:
    action = late_fee()
    store.ledger_begin(action)
    store.ledger_finish(action.key, "failed", error="HTTP 503")
    store.ledger_begin(action)
    store.ledger_finish(action.key, "applied", response_id="130", form="line")
    store.ledger_drop(reminder(connection="beta"), "invoice voided")

    events = store.ledger_events(action.key)
    assert [(e.state, e.detail) for e in events] == [
        ("pending", "begun (attempt 1)"),
        ("failed", "failed: HTTP 503"),
        ("pending", "begun again after failed (attempt 2)"),
        ("applied", "applied, as line, response id 130"),
    ]
    assert all(e.key == action.key and e.connection == "acme" for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert all(e.at.tzinfo is not None for e in events)
    assert [e.state for e in store.ledger_events(connection="beta")] == ["dropped"]
    assert len(store.ledger_events()) == 5


def test_drop_records_a_stale_action_with_its_reason(store: Store) -> None:
    action = late_fee()
    dropped = store.ledger_drop(action, "invoice 1037 was paid on 2026-10-19")
    assert (dropped.state, dropped.attempts, dropped.error) == ("dropped", 0, "invoice 1037 was paid on 2026-10-19")
    assert dropped.action() == action
    again = store.ledger_begin(action)  # a later plan may still call for it
    assert (again.state, again.attempts) == ("pending", 1)
    with pytest.raises(ConflictError, match="already pending"):
        store.ledger_drop(action, "stale")


def test_ledger_filters_and_order(store: Store) -> None:
    keys = ["late_fee:acme:130:2", "late_fee:acme:130:1", "reminder:acme:131:1", "late_fee:beta:130:1"]
    for key in keys:
        connection = key.split(":")[1]
        number = "1038" if ":131:" in key else "1037"
        store.ledger_begin(late_fee(key, connection=connection, number=number))
    store.ledger_finish("late_fee:acme:130:1", "applied")
    assert [e.key for e in store.ledger()] == keys  # by creation time
    assert [e.key for e in store.ledger(connection="acme", invoice_number="1037")] == keys[:2]
    assert [e.key for e in store.ledger(states=["applied"])] == ["late_fee:acme:130:1"]
    assert [e.key for e in store.ledger(connection="beta", states=("pending", "failed"))] == ["late_fee:beta:130:1"]
    assert store.ledger(connection="nobody") == []


def test_a_long_key_fits(store: Store) -> None:
    key = "late_fee:" + "c" * 200 + ":" + "9" * 80 + ":1"
    assert len(key) <= 300
    assert store.ledger_begin(late_fee(key)).key == key


def test_racing_begins_of_one_key_let_exactly_one_through(store: Store, store_url: str) -> None:
    stores = [Store.open(store_url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def begin(s: Store) -> None:
        barrier.wait()
        try:
            s.ledger_begin(late_fee())
            outcomes.append("begun")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=begin, args=(s,)) for s in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for s in stores:
            s.close()
    assert sorted(outcomes) == ["begun"] + ["conflict"] * 5
    assert [e.state for e in store.ledger_events()] == ["pending"]


def test_ledger_writes_refuse_to_run_inside_token_lock(store: Store) -> None:
    with store.token_lock("acme"), pytest.raises(RuntimeError, match="inside token_lock"):
        store.ledger_begin(late_fee())
    assert store.ledger_get(late_fee().key) is None
