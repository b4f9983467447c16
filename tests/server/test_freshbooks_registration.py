"""FreshBooks' webhook registration, end to end: a callback registered through FreshBooks' API, the verifier
FreshBooks posts to the server, the server confirming it and keeping it (encrypted) as the connection's
webhook key; then a payment at FreshBooks arrives as a signed webhook and runs the connection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from bridge.auth.vault import TokenVault
from tests.server.conftest import Server, make_server, wait_until

NAME = "acme-fb"


@pytest.fixture
def fb_server(tmp_path: Path) -> Iterator[Server]:
    # No --webhook-url: only the callbacks registered through FreshBooks' API get webhooks.
    yield from make_server(tmp_path, provider="freshbooks", name=NAME, webhooks=False)


def _api(server: Server, method: str, path: str, body: object | None = None) -> requests.Response:
    with server.store() as store:
        tokens, _ = TokenVault(store, Fernet(server.key.encode())).load(NAME)
    return requests.request(
        method,
        f"{server.sandbox.base_url}{path}",
        headers={"Authorization": f"Bearer {tokens.access_token}", "Content-Type": "application/json"},
        data=None if body is None else json.dumps(body),
        timeout=10,
    )


def test_a_registered_callback_is_confirmed_by_the_server_and_then_brings_syncs_forward(fb_server: Server) -> None:
    server = fb_server
    server.start()
    account = server.realm
    callbacks = f"/events/account/{account}/events/callbacks"
    created = _api(
        server, "POST", callbacks, {"callback": {"event": "payment.create", "uri": f"{server.url}/webhooks/freshbooks"}}
    )
    assert created.status_code == 200, created.text
    callback = created.json()["response"]["result"]["callback"]
    assert callback["verified"] is False

    def confirmed() -> bool:
        listed = _api(server, "GET", callbacks).json()["response"]["result"]["callbacks"]
        return bool(listed and listed[0]["verified"])

    wait_until(confirmed, "the server to confirm the callback with the verifier FreshBooks sent it")
    assert server.metric("bridge_webhooks_total", provider="freshbooks", outcome="registration") == 1
    with server.store() as store:
        assert TokenVault(store, Fernet(server.key.encode())).webhook_key(NAME)  # kept, encrypted
        before = store.schedule([NAME])[0]
    assert before.last_run_at is None

    invoices = server.sandbox.state()["freshbooks"]["invoices"]
    unpaid = next(
        i for i in invoices if str(i["outstanding"]["amount"]) not in ("0", "0.00") and i.get("vis_state") == 0
    )
    body = {
        "payment": {
            "invoiceid": int(unpaid["id"]),
            "amount": {"amount": str(unpaid["outstanding"]["amount"])},
            "date": "2026-10-19",
        }
    }
    assert _api(server, "POST", f"/accounting/account/{account}/payments/payments", body).status_code == 200

    def ran() -> object:
        with server.store() as store:
            return store.schedule([NAME])[0].last_run_at

    wait_until(ran, "the webhook's run")
    assert server.metric("bridge_webhooks_total", provider="freshbooks", outcome="accepted") >= 1
    assert server.metric("bridge_webhooks_total", provider="freshbooks", outcome="bad_signature") == 0
    deliveries = [d for d in server.sandbox.webhook_deliveries() if "verifier=" not in d["body"]]
    assert deliveries and all(d["status"] == 200 for d in deliveries)
    assert server.stop() == 0
