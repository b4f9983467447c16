"""`bridge serve`, embedded, end to end: a real process (uvicorn on a loopback port) and the sandbox sending it
webhooks. Waits poll with generous timeouts; nothing asserts how fast."""

from __future__ import annotations

import json
from datetime import timedelta

import requests

from bridge.clock import now_utc
from bridge.server.webhooks import sign
from tests.server.conftest import NAME, WEBHOOK_KEY, Server, wait_until


def _cloud_event(realm: str, invoice_id: str = "130") -> bytes:
    return json.dumps(
        [
            {
                "specversion": "1.0",
                "id": "e-1",
                "source": "intuit.test",
                "type": "qbo.invoice.updated.v1",
                "time": "2026-12-07T10:00:00Z",
                "intuitentityid": invoice_id,
                "intuitaccountid": realm,
                "data": {},
            }
        ]
    ).encode()


def _post(server: Server, body: bytes, signature: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["intuit-signature"] = signature
    return requests.post(f"{server.url}/webhooks/quickbooks", data=body, headers=headers, timeout=10)


def _row(server: Server):
    with server.store() as store:
        return store.schedule([NAME])[0]


def _oldest_unpaid(server: Server) -> tuple[str, str]:
    invoices = server.sandbox.state()["quickbooks"]["Invoice"]
    open_ = [i for i in invoices if str(i.get("Balance")) not in ("0", "0.00") and i.get("PrivateNote") != "Voided"]
    oldest = min(open_, key=lambda i: (i["DueDate"], i["DocNumber"]))
    return str(oldest["DocNumber"]), str(oldest["Id"])


def test_a_payment_made_in_the_sandbox_reaches_a_plan_through_the_webhook(server: Server) -> None:
    server.start()
    first = _row(server)
    # Scheduled for its next 07:00 New York time, not now: only the webhook can make it run soon.
    assert first.trigger == "start" and first.last_run_at is None
    assert first.next_run_at > now_utc() + timedelta(minutes=1)
    number, invoice_id = _oldest_unpaid(server)

    server.pay_in_full(number)

    def synced_after_the_payment():
        row = _row(server)
        if row.last_run_at is None:
            return None
        with server.store() as store:
            invoice = store.invoice(NAME, invoice_id)
        return row if invoice is not None and invoice.status.value == "paid" else None

    row = wait_until(synced_after_the_payment, "the webhook's sync to read the payment")
    assert row.last_outcome in ("ok", "partial"), row.last_detail
    assert server.metric("bridge_webhooks_total", provider="quickbooks", outcome="accepted") >= 1
    assert server.metric("bridge_syncs_total", connection=NAME, outcome=row.last_outcome) >= 1
    assert server.metric("bridge_last_success_timestamp_seconds", connection=NAME) > 0
    with server.store() as store:
        ledger = store.ledger(connection=NAME)
    # The plan acted on the book, and on the paid invoice not at all: no reminder, no fee.
    assert ledger and not [e for e in ledger if e.invoice_number == number]
    assert server.metric("bridge_actions_total", connection=NAME, kind="reminder", state="applied") >= 1
    # The bridge's own writes came back as webhooks too; the server took them as hints, no error.
    deliveries = server.sandbox.webhook_deliveries()
    assert deliveries and {d["status"] for d in deliveries} == {200}
    lines = server.log_lines()  # every line is one JSON object
    assert any("webhook" in line["message"] for line in lines)
    assert server.stop() == 0


def test_a_bad_signature_is_refused_changes_nothing_and_is_counted(server: Server) -> None:
    server.start()
    before = _row(server)
    body = _cloud_event(server.realm)

    assert _post(server, body, sign("not-the-key", body)).status_code == 401
    assert _post(server, body, None).status_code == 401
    assert _post(server, body + b" ", sign(WEBHOOK_KEY, body)).status_code == 401  # the body was changed
    assert _row(server).next_run_at == before.next_run_at
    assert server.metric("bridge_webhooks_total", provider="quickbooks", outcome="bad_signature") == 3

    stranger = _cloud_event("1234567890")
    assert _post(server, stranger, sign(WEBHOOK_KEY, stranger)).status_code == 200
    assert server.metric("bridge_webhooks_total", provider="quickbooks", outcome="unknown_tenant") == 1
    assert _row(server).next_run_at == before.next_run_at

    assert _post(server, body, sign(WEBHOOK_KEY, body)).status_code == 200
    assert server.metric("bridge_webhooks_total", provider="quickbooks", outcome="accepted") == 1
    assert _row(server).next_run_at < before.next_run_at
    assert server.stop() == 0


def test_sigterm_mid_run_finishes_the_action_in_flight_and_leaves_nothing_pending(slow_server: Server) -> None:
    server = slow_server
    server.start()
    body = _cloud_event(server.realm)
    assert _post(server, body, sign(WEBHOOK_KEY, body)).status_code == 200

    def applying():
        with server.store() as store:
            return store.ledger(connection=NAME)

    wait_until(applying, "the run to start applying")
    assert server.stop() == 0

    with server.store() as store:
        ledger = store.ledger(connection=NAME)
        row = store.schedule([NAME])[0]
    assert ledger and not [e for e in ledger if e.state == "pending"]
    assert row.last_outcome == "interrupted" and row.claimed_by is None
    assert row.next_run_at <= now_utc()  # what was not started is due again at once
    assert any("draining" in line["message"] for line in server.log_lines())


def test_metrics_carry_the_documented_names(server: Server) -> None:
    server.start()
    body = _cloud_event(server.realm)
    _post(server, body, sign(WEBHOOK_KEY, body))
    wait_until(lambda: _row(server).last_run_at, "the run")
    text = server.metrics()
    for name in (
        "bridge_syncs_total",
        "bridge_actions_total",
        "bridge_api_calls_total",
        "bridge_last_success_timestamp_seconds",
        "bridge_queue_lag_seconds",
        "bridge_in_doubt",
    ):
        assert f"\n{name}" in text, name
    assert "# TYPE bridge_retries_total counter" in text or "# TYPE bridge_retries counter" in text
    assert requests.get(f"{server.url}/readyz", timeout=10).json() == {"ready": True}
    assert server.stop() == 0
