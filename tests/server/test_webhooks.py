"""Webhook verification for the three providers, and the sandbox's webhooks in each provider's format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import jsonschema
import pytest
import yaml

from bridge.config import ConnectionSettings
from bridge.server.webhooks import freshbooks_message, sign, verify
from bridge_sandbox.core import Request, Response
from bridge_sandbox.webhooks import (
    Change,
    changes_of,
    freshbooks_fields,
    freshbooks_signature,
    quickbooks_body,
    xero_body,
)

SPECS = Path(__file__).resolve().parents[1] / "specs"
ENV = {"QBO_KEY": "qbo-verifier", "XERO_KEY": "xero-key", "FB_KEY": "fb-verifier", "OTHER_QBO": "other-app"}
XERO_TENANT = "6f9d3c1e-2b7a-4c55-9e1d-0a8f4b2c7d31"
CONNECTIONS = (
    ConnectionSettings(
        name="acme-qbo", provider="quickbooks", tenant_id="9341453215647712", webhook_secret_env="QBO_KEY"
    ),
    ConnectionSettings(name="beta-qbo", provider="quickbooks", tenant_id="555", webhook_secret_env="OTHER_QBO"),
    ConnectionSettings(name="acme-xero", provider="xero", tenant_id=XERO_TENANT, webhook_secret_env="XERO_KEY"),
    ConnectionSettings(name="acme-fb", provider="freshbooks", tenant_id="AbC12x", webhook_secret_env="FB_KEY"),
    ConnectionSettings(name="quiet-fb", provider="freshbooks", tenant_id="ZZZ"),
)
KEY_OF = lambda c: ENV.get(c.webhook_secret_env or "")  # noqa: E731
AT = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def _change(provider: str, tenant: str, entity: str = "invoice", op: str = "update", oid: str = "130") -> Change:
    return Change(provider, tenant, entity, oid, op, AT)


def test_quickbooks_cloudevents_signed_with_the_verifier_token_bring_that_realm_forward() -> None:
    body = quickbooks_body([_change("quickbooks", "9341453215647712")])
    verdict = verify("quickbooks", body, sign("qbo-verifier", body), CONNECTIONS, KEY_OF)
    assert verdict.verified and verdict.connections == ("acme-qbo",) and verdict.unknown_tenants == ()
    event = json.loads(body)[0]
    assert event["specversion"] == "1.0" and event["type"] == "qbo.invoice.updated.v1"


def test_quickbooks_legacy_event_notifications_are_understood_too() -> None:
    body = json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": "9341453215647712",
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": "Payment",
                                "id": "9",
                                "operation": "Create",
                                "lastUpdated": "2026-12-07T10:00:00.000Z",
                            }
                        ]
                    },
                }
            ]
        }
    ).encode()
    verdict = verify("quickbooks", body, sign("qbo-verifier", body), CONNECTIONS, KEY_OF)
    assert verdict.connections == ("acme-qbo",)


def test_a_key_speaks_only_for_its_own_connections() -> None:
    # Signed with the other app's key, naming acme's realm: genuine, but not acme's sender.
    body = quickbooks_body([_change("quickbooks", "9341453215647712")])
    verdict = verify("quickbooks", body, sign("other-app", body), CONNECTIONS, KEY_OF)
    assert verdict.verified and verdict.connections == () and verdict.unknown_tenants == ("9341453215647712",)


@pytest.mark.parametrize("signature", [None, "", "bm90IGl0", sign("qbo-verifier", b"another body")])
def test_a_missing_or_wrong_signature_is_not_verified(signature: str | None) -> None:
    body = quickbooks_body([_change("quickbooks", "9341453215647712")])
    verdict = verify("quickbooks", body, signature, CONNECTIONS, KEY_OF)
    assert not verdict.verified and verdict.connections == ()


def test_xero_intent_to_receive_an_empty_signed_batch_verifies_a_badly_signed_one_does_not() -> None:
    body = json.dumps({"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "X"}).encode()
    good = verify("xero", body, sign("xero-key", body), CONNECTIONS, KEY_OF)
    assert good.verified and good.connections == () and good.unknown_tenants == ()
    assert not verify("xero", body, sign("xero-key", body + b"x"), CONNECTIONS, KEY_OF).verified


def test_xero_batches_from_the_sandbox_verify_and_follow_xeros_own_schema() -> None:
    spec = yaml.safe_load((SPECS / "xero-webhooks.yaml").read_text())
    schema = spec["components"]["schemas"]["WebhookEvent"]
    body = xero_body([_change("xero", XERO_TENANT, oid="0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d")], (7, 7))
    jsonschema.validate(json.loads(body), schema, format_checker=jsonschema.FormatChecker())
    verdict = verify("xero", body, sign("xero-key", body), CONNECTIONS, KEY_OF)
    assert verdict.connections == ("acme-xero",)


def test_freshbooks_signs_json_dumps_of_its_form_fields_as_its_sdk_docs_show() -> None:
    fields = freshbooks_fields(_change("freshbooks", "AbC12x", "payment", "create", "77"))
    body = urlencode(fields).encode()
    assert freshbooks_message(fields) == json.dumps(dict(fields)).encode()  # default separators, order kept
    verdict = verify("freshbooks", body, freshbooks_signature("fb-verifier", fields), CONNECTIONS, KEY_OF)
    assert verdict.verified and verdict.connections == ("acme-fb",)
    assert not verify("freshbooks", body, sign("fb-verifier", body), CONNECTIONS, KEY_OF).verified  # not the raw body


def test_a_provider_with_no_key_configured_verifies_nothing() -> None:
    body = quickbooks_body([_change("quickbooks", "9341453215647712")])
    verdict = verify("quickbooks", body, sign("qbo-verifier", body), CONNECTIONS, lambda c: None)
    assert not verdict.verified and "webhook_secret_env" in verdict.problem


def _request(method: str, path: str, **params: str) -> Request:
    return Request(method, path, "", {}, {}, b"", params=params)


def test_the_sandbox_reads_changes_from_each_providers_own_answers() -> None:
    qbo = Response.json(200, {"Payment": {"Id": "201", "SyncToken": "0"}, "time": "x"})
    assert [
        (c.entity, c.object_id, c.operation)
        for c in changes_of(
            "quickbooks", "write", _request("POST", "/v3/company/1/payment", entity="payment"), qbo, "1", AT
        )
    ] == [("payment", "201", "create")]
    xero = Response.json(200, {"Payments": [{"PaymentID": "p", "Invoice": {"InvoiceID": "i-1"}}]})
    assert [
        (c.entity, c.object_id) for c in changes_of("xero", "payments.create", _request("PUT", "/"), xero, "t", AT)
    ] == [
        ("invoice", "i-1")  # Xero has no payment category: an INVOICE UPDATE
    ]
    fb = Response.json(200, {"response": {"result": {"invoice": {"id": 55}}}})
    assert [
        (c.entity, c.object_id, c.operation)
        for c in changes_of("freshbooks", "invoice.update", _request("PUT", "/", id="55"), fb, "AbC12x", AT)
    ] == [("invoice", "55", "update")]
