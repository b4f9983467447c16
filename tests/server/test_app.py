"""The HTTP routes in-process (Starlette's test client over the real app, a real store): Xero's intent to
receive, what is refused and what is only counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from starlette.testclient import TestClient

from bridge.auth.vault import TokenVault
from bridge.clock import now_utc
from bridge.config import load_settings
from bridge.server.app import ServerContext, create_app
from bridge.server.dispatcher import Dispatcher, ThreadExecutor
from bridge.server.metrics import Metrics
from bridge.server.webhooks import sign
from bridge.store import Store
from bridge.sync import Runtime

XERO_TENANT = "6f9d3c1e-2b7a-4c55-9e1d-0a8f4b2c7d31"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, Runtime, Metrics]]:
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[store]\nurl = "sqlite:///bridge.db"\n\n'
        f'[[connections]]\nname = "acme-xero"\nprovider = "xero"\ntenant_id = "{XERO_TENANT}"\n'
        'webhook_secret_env = "XERO_KEY"\n\n'
        '[[connections]]\nname = "acme-fb"\nprovider = "freshbooks"\ntenant_id = "AbC12x"\n'
    )
    store = Store.open(f"sqlite:///{tmp_path / 'bridge.db'}")
    rt = Runtime(load_settings(config), store, TokenVault(store, Fernet(Fernet.generate_key())), env={"XERO_KEY": "k"})
    executor = ThreadExecutor(lambda job: None, workers=1)
    dispatcher = Dispatcher(store, rt.settings, executor)
    dispatcher.schedule_all()
    metrics = Metrics()
    with TestClient(create_app(ServerContext(rt, dispatcher, metrics))) as test_client:
        yield test_client, rt, metrics
    executor.drain()
    store.close()


def _batch(*tenants: str) -> bytes:
    events = [
        {
            "resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
            "resourceId": "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
            "eventDateUtc": "2026-12-07T10:00:00.000Z",
            "eventType": "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": tenant,
            "tenantType": "ORGANISATION",
        }
        for tenant in tenants
    ]
    return json.dumps({"events": events, "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "X"}).encode()


def test_xero_intent_to_receive_gets_200_for_a_good_signature_and_401_with_no_body_for_a_bad_one(client) -> None:
    test_client, _rt, metrics = client
    empty = _batch()
    good = test_client.post("/webhooks/xero", content=empty, headers={"x-xero-signature": sign("k", empty)})
    bad = test_client.post("/webhooks/xero", content=empty, headers={"x-xero-signature": sign("other", empty)})
    assert good.status_code == 200 and bad.status_code == 401
    assert metrics.webhooks.labels("xero", "empty")._value.get() == 1
    assert metrics.webhooks.labels("xero", "bad_signature")._value.get() == 1


def test_a_verified_xero_event_brings_its_connection_forward_and_a_burst_coalesces(client) -> None:
    test_client, rt, metrics = client
    before = rt.store.schedule(["acme-xero"])[0].next_run_at
    body = _batch(XERO_TENANT, XERO_TENANT, "00000000-0000-4000-8000-000000000000")
    for _ in range(3):
        assert (
            test_client.post("/webhooks/xero", content=body, headers={"x-xero-signature": sign("k", body)}).status_code
            == 200
        )
    after = rt.store.schedule(["acme-xero"])[0]
    assert after.next_run_at < before and after.next_run_at <= now_utc() + timedelta(seconds=3)
    assert metrics.webhooks.labels("xero", "accepted")._value.get() == 1
    assert metrics.webhooks.labels("xero", "coalesced")._value.get() == 2
    assert metrics.webhooks.labels("xero", "unknown_tenant")._value.get() == 3


def test_freshbooks_without_any_verifier_refuses_signed_events_and_an_unknown_provider_is_404(client) -> None:
    test_client, _rt, _metrics = client
    form = "name=invoice.update&object_id=1&account_id=AbC12x&business_id=1&identity_id=1&user_id=1"
    answer = test_client.post(
        "/webhooks/freshbooks",
        content=form,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-FreshBooks-Hmac-SHA256": "x"},
    )
    assert answer.status_code == 401
    assert test_client.post("/webhooks/sage", content=b"{}").status_code == 404
    assert test_client.post("/webhooks/xero", content=b"x" * 1_000_001).status_code == 413


def test_health_and_readiness(client) -> None:
    test_client, _rt, _metrics = client
    assert test_client.get("/healthz").text == "ok\n"
    assert test_client.get("/readyz").json() == {"ready": True}
    assert "bridge_queue_lag_seconds" in test_client.get("/metrics").text
