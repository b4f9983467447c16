"""`bridge users add NAME`: an argon2 hash in the store, the password from the environment (or a hidden prompt)."""

from __future__ import annotations

import pytest

from bridge.review.auth import check_password
from bridge.store import Store
from bridge.store.review import Reviews
from tests.cli.books import Book, book, module_sandbox  # noqa: F401  (fixtures)
from tests.runner import run_bridge


@pytest.fixture
def bridge(capsys, monkeypatch):
    return run_bridge(capsys, monkeypatch)


def test_users_add_stores_only_an_argon2_hash(bridge, book: Book, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("BRIDGE_USER_PASSWORD", "a long enough secret")
    added = bridge("--config", str(book.config), "users", "add", "alice", "--connection", "acme-qbo")
    assert added.code == 0, added.err
    assert "Added user alice: reviews the plans of acme-qbo." in added.out
    assert "a long enough secret" not in added.out + added.err
    with Store.open(f"sqlite:///{book.config.parent / 'bridge.db'}") as store:
        user = Reviews(store).user("alice")
    assert user is not None and user.password_hash.startswith("$argon2id$")
    assert check_password(user, "a long enough secret") and not check_password(user, "another")
    assert user.connections == ("acme-qbo",)


def test_users_add_refuses_a_short_password_and_an_unknown_connection(
    bridge,
    book: Book,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRIDGE_USER_PASSWORD", "short")
    assert bridge("--config", str(book.config), "users", "add", "bob").code == 2
    monkeypatch.setenv("BRIDGE_USER_PASSWORD", "a long enough secret")
    unknown = bridge("--config", str(book.config), "users", "add", "bob", "--connection", "nope")
    assert unknown.code == 2 and "no connection named 'nope'" in unknown.err
