"""The sandbox server: control endpoints, fault injection, rate limits, latency, state, serve()."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from quickbooks import QuickBooks
from quickbooks.exceptions import AuthorizationException, QuickbooksException, SevereException, ValidationException
from quickbooks.objects.invoice import Invoice

from bridge_sandbox import RateLimit, Sandbox, SandboxError, serve
from tests.sandbox.conftest import REALM, api, client, get_json, link


def set_faults(sandbox: Sandbox, spec: dict[str, Any]) -> requests.Response:
    return requests.post(sandbox.base_url + "/_sandbox/faults", json=spec, timeout=5)


def authorized_get(sandbox: Sandbox, qb: QuickBooks, path: str, timeout: float = 5) -> requests.Response:
    return requests.get(
        api(sandbox, path),
        params={"minorversion": 75},
        timeout=timeout,
        headers={"Authorization": "Bearer " + qb.auth_client.access_token, "Accept": "application/json"},
    )


# ---------------------------------------------------------------------------------------------------- faults


def test_injected_429_carries_retry_after_and_the_throttle_fault(sandbox: Sandbox, qb: QuickBooks) -> None:
    assert set_faults(sandbox, {"quickbooks": {"429": 1.0, "retry_after": 2}}).status_code == 200
    response = authorized_get(sandbox, qb, "invoice/101")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["Fault"]["Error"][0]["code"] == "3001"
    with pytest.raises(ValidationException) as throttled:
        Invoice.get("101", qb=qb)
    assert throttled.value.error_code == 3001
    # Control and OAuth endpoints are never faulted.
    assert get_json(sandbox.base_url + "/_sandbox/faults")["quickbooks"]["429"] == 1.0
    assert requests.get(sandbox.base_url + "/.well-known/openid_configuration", timeout=5).status_code == 200
    reads = [e for e in sandbox.requests() if e["route"] == "read"]
    assert reads[-1]["fault"] == "429" and reads[-1]["status"] == 429


def test_faults_given_routes_are_drawn_on_those_routes_only(sandbox: Sandbox, qb: QuickBooks) -> None:
    assert set_faults(sandbox, {"quickbooks": {"503": 1.0, "routes": ["batch"]}}).status_code == 200
    assert authorized_get(sandbox, qb, "invoice/101").status_code == 200
    batch = requests.post(
        api(sandbox, "batch"),
        json={"BatchItemRequest": [{"bId": "1", "Query": "SELECT * FROM Invoice"}]},
        timeout=5,
        headers={"Authorization": "Bearer " + qb.auth_client.access_token, "Accept": "application/json"},
    )
    assert batch.status_code == 503
    assert get_json(sandbox.base_url + "/_sandbox/faults")["quickbooks"]["routes"] == ["batch"]
    assert set_faults(sandbox, {"quickbooks": {"503": 1.0, "routes": "batch"}}).status_code == 400


def test_server_errors(sandbox: Sandbox, qb: QuickBooks) -> None:
    set_faults(sandbox, {"quickbooks": {"500": 1.0}})
    with pytest.raises(SevereException):
        Invoice.get("101", qb=qb)
    set_faults(sandbox, {"quickbooks": {"503": 1.0}})
    response = authorized_get(sandbox, qb, "invoice/101")
    assert response.status_code == 503 and response.headers["Content-Type"].startswith("text/html")


def test_faults_with_a_seed_replay_the_same_sequence(sandbox: Sandbox, qb: QuickBooks) -> None:
    def statuses() -> list[int]:
        set_faults(sandbox, {"quickbooks": {"500": 0.3, "429": 0.2, "seed": 42, "retry_after": 0}})
        return [authorized_get(sandbox, qb, "invoice/101").status_code for _ in range(20)]

    first = statuses()
    assert set(first) == {200, 429, 500}
    assert statuses() == first


def test_dropped_connection_and_timeout(sandbox: Sandbox, qb: QuickBooks) -> None:
    set_faults(sandbox, {"quickbooks": {"drop": 1.0}})
    with pytest.raises(requests.ConnectionError):
        authorized_get(sandbox, qb, "invoice/101")
    # The sandbox stalls 3 s before answering: a client waiting 0.2 s gets no answer at all (a Timeout, where
    # an answered call would have returned 200).
    set_faults(sandbox, {"quickbooks": {"timeout": 1.0, "timeout_seconds": 3}})
    with pytest.raises(requests.Timeout):
        authorized_get(sandbox, qb, "invoice/101", timeout=0.2)
    set_faults(sandbox, {"quickbooks": {}})
    assert authorized_get(sandbox, qb, "invoice/101").status_code == 200
    assert [e.get("fault") for e in sandbox.requests()[-3:]] == ["drop", "timeout", None]


def test_429_without_retry_after(sandbox: Sandbox, qb: QuickBooks) -> None:
    set_faults(sandbox, {"quickbooks": {"429_no_retry_after": 1.0}})
    response = authorized_get(sandbox, qb, "invoice/101")
    assert response.status_code == 429 and "Retry-After" not in response.headers
    assert response.json()["Fault"]["Error"][0]["code"] == "3001"
    assert sandbox.requests()[-1]["fault"] == "429_no_retry_after"


def test_lost_response_does_the_request_then_drops_the_connection(sandbox: Sandbox, qb: QuickBooks) -> None:
    invoice = Invoice.get("101", qb=qb)
    set_faults(sandbox, {"quickbooks": {"lost_response": 1.0}})
    body = {"Id": "101", "SyncToken": invoice.SyncToken, "sparse": True, "PrivateNote": "lost on the way back"}
    with pytest.raises(requests.ConnectionError):
        requests.post(
            api(sandbox, "invoice"),
            params={"minorversion": 75},
            json=body,
            timeout=5,
            headers={"Authorization": "Bearer " + qb.auth_client.access_token, "Accept": "application/json"},
        )
    set_faults(sandbox, {"quickbooks": {}})
    assert Invoice.get("101", qb=qb).PrivateNote == "lost on the way back"  # it was done
    lost = [e for e in sandbox.requests() if e.get("fault") == "lost_response"]
    assert lost[-1]["status"] == 200


def test_stale_synctoken_fault_refuses_a_current_token(sandbox: Sandbox, qb: QuickBooks) -> None:
    invoice = Invoice.get("101", qb=qb)
    set_faults(sandbox, {"quickbooks": {"stale_synctoken": 1.0}})
    assert Invoice.get("101", qb=qb).SyncToken == invoice.SyncToken  # reads are untouched
    invoice.sparse = True
    invoice.PrivateNote = "note"
    with pytest.raises(QuickbooksException) as stale:
        invoice.save(qb=qb)
    assert stale.value.error_code == 5010


def test_expired_token_fault_answers_401(sandbox: Sandbox, qb: QuickBooks) -> None:
    set_faults(sandbox, {"quickbooks": {"expired_token": 1.0}})
    with pytest.raises(AuthorizationException) as refused:
        Invoice.get("101", qb=qb)
    assert "Token expired" in refused.value.detail


@pytest.mark.parametrize(
    "spec",
    [
        {"quickbooks": {"429": 1.5}},
        {"quickbooks": {"500": 0.6, "503": 0.6}},
        {"quickbooks": {"teapot": 0.1}},
        {"nowhere": {"500": 0.1}},
        [1, 2],
    ],
)
def test_bad_fault_specs_are_refused(sandbox: Sandbox, spec: Any) -> None:
    response = set_faults(sandbox, spec)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


# ---------------------------------------------------------------------------------------------------- rate limits


def test_a_sequential_client_is_never_refused_for_speed_under_the_published_limits() -> None:
    # Intuit publishes 500 requests a minute and 10 in flight per realm: 30 calls one after another are legal.
    with Sandbox() as sandbox:
        qb = client(sandbox.base_url, link(sandbox.base_url))
        session = requests.Session()
        headers = {"Authorization": "Bearer " + qb.auth_client.access_token}
        statuses = [session.get(api(sandbox, "invoice/101"), headers=headers, timeout=5).status_code for _ in range(30)]
    assert statuses == [200] * 30


def test_more_than_ten_requests_in_flight_for_one_realm_are_throttled() -> None:
    # Every response held back 400 ms, so 14 calls started together are all in flight at once.
    with Sandbox(latency_ms=400) as sandbox:
        qb = client(sandbox.base_url, link(sandbox.base_url))
        headers = {"Authorization": "Bearer " + qb.auth_client.access_token}
        start = threading.Barrier(14)
        answers: list[requests.Response] = []

        def call() -> None:
            start.wait()
            answers.append(requests.get(api(sandbox, "invoice/101"), headers=headers, timeout=10))

        threads = [threading.Thread(target=call) for _ in range(14)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    throttled = [r for r in answers if r.status_code == 429]
    assert len(answers) == 14 and len(throttled) >= 4
    assert throttled[0].json()["Fault"]["Error"][0]["code"] == "3001"
    assert int(throttled[0].headers["Retry-After"]) >= 1


def test_the_per_minute_limit_is_a_setting_and_strict_halves_it() -> None:
    with Sandbox(options={"quickbooks": {"minute_limit": 4}}) as sandbox:
        qb = client(sandbox.base_url, link(sandbox.base_url))
        assert [authorized_get(sandbox, qb, "invoice/101").status_code for _ in range(5)] == [200] * 4 + [429]
    with Sandbox(rate_limits="strict", options={"quickbooks": {"minute_limit": 4}}) as sandbox:
        qb = client(sandbox.base_url, link(sandbox.base_url))
        assert [authorized_get(sandbox, qb, "invoice/101").status_code for _ in range(3)] == [200, 200, 429]
    with Sandbox(rate_limits="off", options={"quickbooks": {"minute_limit": 1}}) as sandbox:
        qb = client(sandbox.base_url, link(sandbox.base_url))
        assert [authorized_get(sandbox, qb, "invoice/101").status_code for _ in range(3)] == [200] * 3


def test_rate_limits_are_configurable() -> None:
    with Sandbox(rate_limits={"quickbooks": [RateLimit(3, 60.0)]}) as sandbox:
        qb = client(sandbox.base_url, link(sandbox.base_url))
        assert [authorized_get(sandbox, qb, "invoice/101").status_code for _ in range(4)] == [200, 200, 200, 429]
        assert get_json(sandbox.base_url + "/_sandbox/requests")[-1]["fault"] == "rate_limit"


def test_latency_is_added_to_every_provider_response() -> None:
    with Sandbox(latency_ms=60, rate_limits=False) as sandbox:
        started = time.monotonic()
        requests.get(sandbox.base_url + "/.well-known/openid_configuration", timeout=5)
        assert time.monotonic() - started >= 0.06


# ---------------------------------------------------------------------------------------------------- state and control


def test_request_log_keeps_the_query_string_apart(sandbox: Sandbox, qb: QuickBooks) -> None:
    Invoice.get("101", qb=qb)
    entry = get_json(sandbox.base_url + "/_sandbox/requests")[-1]
    assert entry["provider"] == "quickbooks" and entry["tenant"] == REALM and entry["method"] == "GET"
    assert entry["path"] == f"/v3/company/{REALM}/invoice/101"
    assert entry["query"] == "minorversion=75"
    assert entry["status"] == 200 and entry["time"]


def test_state_seeds_an_identical_sandbox(sandbox: Sandbox, qb: QuickBooks) -> None:
    invoice = Invoice.get("101", qb=qb)
    invoice.sparse = True
    invoice.PrivateNote = "edited"
    invoice.save(qb=qb)
    Invoice.get("104", qb=qb).delete(qb=qb)
    state = requests.get(sandbox.base_url + "/_sandbox/state", timeout=5).json()
    assert set(state["quickbooks"]) >= {"realm_id", "Customer", "Item", "Invoice", "Payment", "Deleted"}
    with Sandbox(sandbox.state(), rate_limits=False) as copy:
        assert copy.state() == sandbox.state()
        other = client(copy.base_url, link(copy.base_url))
        assert Invoice.get("101", qb=other).PrivateNote == "edited"
        assert Invoice.count(qb=other) == 42


def test_reset_returns_to_the_seed(sandbox: Sandbox, qb: QuickBooks) -> None:
    initial = sandbox.state()
    Invoice.get("101", qb=qb).send(qb=qb)
    set_faults(sandbox, {"quickbooks": {"500": 0.5}})
    assert sandbox.state() != initial and sandbox.outbox()
    assert requests.post(sandbox.base_url + "/_sandbox/reset", timeout=5).json() == {"reset": True}
    assert sandbox.state() == initial
    assert get_json(sandbox.base_url + "/_sandbox/outbox") == []
    assert get_json(sandbox.base_url + "/_sandbox/requests") == []
    assert get_json(sandbox.base_url + "/_sandbox/faults") == {}
    assert Invoice.count(qb=qb) == 43  # tokens survive a reset


def test_unknown_seed_sections_are_kept(sandbox: Sandbox) -> None:
    seed = {"xero_future": {"anything": [1, 2]}, "quickbooks": {"realm_id": "42", "Customer": []}}
    with Sandbox(seed, rate_limits=False) as other:
        state = other.state()
    assert state["xero_future"] == {"anything": [1, 2]}
    assert state["quickbooks"]["realm_id"] == "42" and state["quickbooks"]["Invoice"] == []


def test_bad_seed_is_refused() -> None:
    with pytest.raises(SandboxError):
        Sandbox({"quickbooks": {"Invoice": [{"DocNumber": "no id"}]}})


def test_serve_prints_base_urls_and_applies_faults(tmp_path: Any) -> None:
    lines: list[str] = []
    ready = threading.Event()
    stop = threading.Event()
    box: dict[str, Sandbox] = {}

    def on_ready(sandbox: Sandbox) -> None:
        box["sandbox"] = sandbox
        ready.set()

    faults = tmp_path / "faults.json"
    faults.write_text('{"quickbooks": {"503": 1.0}}', encoding="utf-8")
    worker = threading.Thread(
        target=serve, kwargs={"faults_spec": str(faults), "echo": lines.append, "ready": on_ready, "stop_event": stop}
    )
    worker.start()
    try:
        assert ready.wait(10)
        base = box["sandbox"].base_url
        assert any(base in line for line in lines) and any("quickbooks" in line for line in lines)
        assert get_json(base + "/_sandbox/faults")["quickbooks"]["503"] == 1.0
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()


def test_serve_refuses_bad_faults_text() -> None:
    with pytest.raises(SandboxError):
        serve(faults_spec='{"quickbooks": {"429": 2}}', echo=lambda _line: None)


def test_oauth_faults_only_when_asked(sandbox: Sandbox) -> None:
    token_url = sandbox.base_url + "/oauth2/v1/tokens/bearer"
    form = {"grant_type": "refresh_token", "refresh_token": "unknown"}
    set_faults(sandbox, {"quickbooks": {"503": 1.0}})
    assert requests.post(token_url, data=form, auth=("c", "s"), timeout=5).status_code == 400
    set_faults(sandbox, {"quickbooks": {"503": 1.0, "include_oauth": True}})
    assert requests.post(token_url, data=form, auth=("c", "s"), timeout=5).status_code == 503
