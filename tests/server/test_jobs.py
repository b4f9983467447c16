"""`run_connection`, the one run function every driver calls: dead links skipped (and the others go on),
review = "required" ends in a plan pending review, the schedule and the metrics recorded."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.clock import now_utc
from bridge.config import load_settings
from bridge.plan import Plan
from bridge.server.jobs import DEAD_LINK, HeldForReview, run_connection
from bridge.server.metrics import Metrics
from bridge.store import Store
from bridge.sync import Runtime
from bridge_sandbox import Sandbox
from tests.server.conftest import ROOT


class Notices:
    def __init__(self) -> None:
        self.said: list[tuple[str, str, str]] = []

    def notice(self, kind: str, connection: str, text: str) -> None:
        self.said.append((kind, connection, text))


@pytest.fixture
def books(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    key = Fernet.generate_key()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", key.decode())
    with Sandbox(rate_limits=False) as sandbox:
        store = Store.open(f"sqlite:///{tmp_path / 'bridge.db'}")
        vault = TokenVault(store, Fernet(key))
        realm = link_sandbox("quickbooks", store, vault, sandbox.base_url, "alive")
        link_sandbox("quickbooks", store, vault, sandbox.base_url, "doomed")
        link_sandbox("quickbooks", store, vault, sandbox.base_url, "careful")
        connections = "".join(
            f'[[connections]]\nname = "{name}"\nprovider = "quickbooks"\ntenant_id = "{realm}"\n'
            f'base_url = "{sandbox.base_url}"\nreview = "{review}"\n\n'
            for name, review in (("alive", "auto"), ("doomed", "auto"), ("careful", "required"))
        )
        config = tmp_path / "bridge.toml"
        config.write_text(
            '[store]\nurl = "sqlite:///bridge.db"\n\n' + connections + (ROOT / "config" / "demo.toml").read_text()
        )
        rt = Runtime(load_settings(config), store, vault)
        store.schedule_ensure({c.name: now_utc() + timedelta(days=1) for c in rt.settings.connections})
        yield sandbox, rt
        store.close()


def _run(rt: Runtime, name: str, metrics: Metrics, notices: Notices, review: HeldForReview | None = None):
    """Make `name` due, claim it as a dispatcher would, and run it."""
    rt.store.schedule_bring_forward(name, now_utc() - timedelta(seconds=1))
    [row] = rt.store.schedule_claim("w", lease=timedelta(minutes=5), limit=10)
    assert row.connection == name
    return run_connection(lambda: rt, name, trigger="test", claim="w", metrics=metrics, notices=notices, review=review)


def test_a_dead_link_is_skipped_until_relinked_and_the_others_go_on(books) -> None:
    sandbox, rt = books
    metrics, notices = Metrics(), Notices()
    tokens, _ = rt.vault.load("doomed")
    assert requests.post(f"{sandbox.base_url}/v2/oauth2/tokens/revoke", json={"token": tokens.refresh_token}).ok

    first = _run(rt, "doomed", metrics, notices)
    assert first.outcome == DEAD_LINK and "re-link" in first.detail
    assert _run(rt, "alive", metrics, notices).outcome in ("ok", "partial")
    calls_before = len(sandbox.requests())
    for _ in range(2):  # skipped, and skipped again: until it is re-linked
        again = _run(rt, "doomed", metrics, notices)
        assert again.outcome == DEAD_LINK and "re-link" in again.detail
    assert len(sandbox.requests()) == calls_before  # skipped: not a single call to the provider
    assert metrics.link_dead.labels("doomed")._value.get() == 1
    assert metrics.syncs.labels("doomed", DEAD_LINK)._value.get() == 3
    assert [k for k, name, _ in notices.said if name == "doomed"] == ["relink"] * 3

    link_sandbox("quickbooks", rt.store, rt.vault, sandbox.base_url, "doomed")  # re-linked
    third = _run(rt, "doomed", metrics, notices)
    assert third.outcome in ("ok", "partial") and metrics.link_dead.labels("doomed")._value.get() == 0


def test_review_required_ends_in_a_plan_pending_review_and_applies_nothing(books) -> None:
    sandbox, rt = books
    metrics, notices, review = Metrics(), Notices(), HeldForReview()
    result = _run(rt, "careful", metrics, notices, review)
    assert result.outcome == "pending_review" and result.review_id
    plan = review.pending["careful"]
    assert isinstance(plan, Plan) and plan.actions
    assert rt.store.ledger(connection="careful") == [] and sandbox.outbox() == []
    assert ("review", "careful") in [(k, n) for k, n, _ in notices.said]
    assert metrics.syncs.labels("careful", "pending_review")._value.get() == 1


@pytest.mark.parametrize(
    ("hard_ttl", "outcome", "said"), [(10 * 86_400, "ok", "before then"), (3_600, "skipped", "expires")]
)
def test_quickbooks_hard_expiry_warns_two_weeks_ahead_and_skips_the_last_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_ttl: int, outcome: str, said: str
) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", key.decode())
    options = {"quickbooks": {"refresh_token_hard_ttl": hard_ttl}}
    with (
        Sandbox(rate_limits=False, options=options) as sandbox,
        Store.open(f"sqlite:///{tmp_path / 'bridge.db'}") as store,
    ):
        vault = TokenVault(store, Fernet(key))
        realm = link_sandbox("quickbooks", store, vault, sandbox.base_url, "acme-qbo")
        tokens, _ = vault.load("acme-qbo")
        assert tokens.extra["refresh_hard_expires_at"]  # asked for at the code exchange, kept
        config = tmp_path / "bridge.toml"
        config.write_text(
            '[store]\nurl = "sqlite:///bridge.db"\n\n'
            f'[[connections]]\nname = "acme-qbo"\nprovider = "quickbooks"\ntenant_id = "{realm}"\n'
            f'base_url = "{sandbox.base_url}"\n\n' + (ROOT / "config" / "demo.toml").read_text()
        )
        rt = Runtime(load_settings(config), store, vault)
        store.schedule_ensure({"acme-qbo": now_utc() + timedelta(days=1)})
        notices = Notices()
        result = _run(rt, "acme-qbo", Metrics(), notices)
    assert result.outcome == outcome
    assert [(k, n) for k, n, _ in notices.said][:1] == [("relink", "acme-qbo")] and said in notices.said[0][2]
