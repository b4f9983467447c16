"""The review tables on both backends: one pending plan per connection, links used once, users, failures."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from bridge import clock
from bridge.plan import Plan
from bridge.store import Store
from bridge.store import tables as t
from bridge.store.review import Reviews


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    url = (
        f"sqlite:///{tmp_path / 'bridge.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    )
    opened = Store.open(url)
    request.addfinalizer(opened.close)
    return opened


def test_one_pending_plan_per_connection(store: Store) -> None:
    reviews = Reviews(store)
    plan = Plan.build(date(2026, 10, 20), [])
    first, replaced = reviews.submit("acme-qbo", plan)
    assert replaced is None
    second, replaced = reviews.submit("acme-qbo", plan)
    assert replaced == first
    other, _ = reviews.submit("globex-xero", plan)
    assert {p.id for p in reviews.plans()} == {second, other}
    old = reviews.get(first)
    assert old is not None and old.state == "replaced" and old.replaced_by == second
    with pytest.raises(IntegrityError), store.engine.begin() as conn:  # the index says so, whoever writes
        conn.execute(
            insert(t.review_plans).values(
                id="x", connection="acme-qbo", state="pending", plan=plan.to_json(), created_at=clock.now_utc()
            )
        )


def test_a_link_is_used_once_and_failures_are_counted(store: Store) -> None:
    reviews = Reviews(store)
    assert reviews.use_link("abc") is True
    assert reviews.use_link("abc") is False
    reviews.failed_sign_in("alice")
    reviews.failed_sign_in("alice")
    assert reviews.failures_since("alice", clock.now_utc() - timedelta(minutes=15)) == 2
    assert reviews.failures_since("bob", clock.now_utc() - timedelta(minutes=15)) == 0
    reviews.clear_failures("alice")
    assert reviews.failures_since("alice", clock.now_utc() - timedelta(minutes=15)) == 0


def test_users_are_added_and_updated(store: Store) -> None:
    reviews = Reviews(store)
    assert reviews.add_user("alice", "hash-1", ("acme-qbo",)) is True
    assert reviews.add_user("alice", "hash-2") is False
    user = reviews.user("alice")
    assert user is not None and user.password_hash == "hash-2" and user.may_see("anything")
    assert reviews.user("nobody") is None
