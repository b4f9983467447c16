"""Approval applies through the ledger with re-evaluation; rejection and forgiving are recorded with who and when."""

from __future__ import annotations

import pytest

from bridge.errors import ConflictError
from bridge.plan import ActionKind
from bridge.store.review import Reviews
from bridge.sync import sync
from tests.review.conftest import AS_OF, Review


def test_a_plan_waits_for_review_and_nothing_is_applied_until_approved(review: Review) -> None:
    stored = review.service.reviews.get(review.plan_id)
    assert stored is not None and stored.state == "pending" and stored.connection == "acme-qbo"
    assert review.rt.store.ledger() == [] and review.book.outbox() == []


def test_a_newer_plan_replaces_the_pending_one_and_says_so(review: Review) -> None:
    plan = sync(review.rt, dry_run=True, as_of=AS_OF).plan
    newer = review.service.submit(review.rt, "acme-qbo", plan)
    reviews = Reviews(review.rt.store)
    old = reviews.get(review.plan_id)
    assert old is not None and old.state == "replaced" and old.replaced_by == newer
    assert [p.id for p in reviews.plans()] == [newer]
    with pytest.raises(ConflictError, match="replaced"):
        review.service.approve(review.plan_id, "alice")


def test_approving_a_selection_applies_only_it_and_the_ledger_says_who(review: Review) -> None:
    plan = review.service.reviews.get(review.plan_id)
    assert plan is not None
    chosen = plan.plan.actions[0]
    result = review.service.approve(review.plan_id, "alice", keys=[chosen.key])
    assert [a["key"] for a in result["applied"]] == [chosen.key]
    assert {x["key"] for x in result["left"]} == {a.key for a in plan.plan.actions[1:]}
    entry = review.rt.store.ledger_get(chosen.key)
    assert entry is not None and entry.state == "applied"
    assert any("approved by alice" in e.detail for e in review.rt.store.ledger_events(chosen.key))
    assert all(review.rt.store.ledger_get(a.key) is None for a in plan.plan.actions[1:])
    decided = review.service.reviews.get(review.plan_id)
    assert decided is not None and decided.state == "approved" and decided.decided_by == "alice"
    assert decided.decided_at is not None and decided.result == result


def test_a_stale_approved_plan_applies_nothing_stale(review: Review) -> None:
    """The client pays after the plan was made and before it is approved: its actions are dropped, not applied."""
    plan = review.service.reviews.get(review.plan_id)
    assert plan is not None
    number = plan.plan.actions[0].invoice.number
    stale = {a.key for a in plan.plan.actions if a.invoice.number == number}
    outbox = len(review.book.outbox())
    review.book.pay_in_full(number)
    result = review.service.approve(review.plan_id, "alice")
    dropped = {d["key"]: d["reason"] for d in result["dropped"]}
    assert set(dropped) == stale and all(r.startswith("plan_mismatch") for r in dropped.values())
    assert not stale & {a["key"] for a in result["applied"]}
    for key in stale:
        entry = review.rt.store.ledger_get(key)
        assert entry is not None and entry.state == "dropped"
    invoice = review.book.invoice(number)
    assert not [line for line in invoice.get("Line", []) if str(line.get("Description", "")).startswith("Late fee")]
    sent_for = {m["invoice_id"] for m in review.book.outbox()[outbox:]}
    assert plan.plan.actions[0].invoice.id not in sent_for


def test_rejecting_applies_nothing_and_records_who_and_why(review: Review) -> None:
    plan = review.service.reviews.get(review.plan_id)
    assert plan is not None
    with pytest.raises(ValueError, match="reason"):
        review.service.reject(review.plan_id, "bob", "  ")
    review.service.reject(review.plan_id, "bob", "client called: paying Friday")
    assert review.book.outbox() == []
    for action in plan.plan.actions:
        entry = review.rt.store.ledger_get(action.key)
        assert entry is not None and entry.state == "dropped"
        assert entry.error == "rejected by bob: client called: paying Friday"
    decided = review.service.reviews.get(review.plan_id)
    assert decided is not None and decided.state == "rejected" and decided.reason == "client called: paying Friday"
    with pytest.raises(ConflictError):
        review.service.approve(review.plan_id, "alice")


def test_a_forgiven_fee_is_not_charged_and_not_asked_again(review: Review) -> None:
    plan = review.service.reviews.get(review.plan_id)
    assert plan is not None
    fee = next(a for a in plan.plan.actions if a.kind is ActionKind.LATE_FEE)
    result = review.service.approve(review.plan_id, "carol", forgive=[fee.key], note="good client")
    assert [f["key"] for f in result["forgiven"]] == [fee.key]
    assert fee.key not in {a["key"] for a in result["applied"]}
    entry = review.rt.store.ledger_get(fee.key)
    assert entry is not None and entry.state == "dropped" and entry.error == "forgiven by carol: good client"
    again = sync(review.rt, dry_run=True, as_of=AS_OF).plan
    newer = review.service.submit(review.rt, "acme-qbo", again)
    stored = review.service.reviews.get(newer)
    assert stored is not None and fee.key not in {a.key for a in stored.plan.actions}
    assert any(s.key == fee.key and s.code == "forgiven" for s in stored.plan.skipped)
