"""What the sandbox sends for a real change to its books: Xero's batch, checked against Xero's own webhook
schema (tests/specs/xero-webhooks.yaml) and signed as Xero signs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml
from cryptography.fernet import Fernet

from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.server.webhooks import sign
from bridge.store import Store
from bridge_sandbox import Sandbox, WebhookSettings
from tests.server.conftest import wait_until

SPECS = Path(__file__).resolve().parents[1] / "specs"


class _Receiver(BaseHTTPRequestHandler):
    got: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.got.append((self.path, dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    got: list[tuple[str, dict[str, str], bytes]] = []
    handler = type("Receiver", (_Receiver,), {"got": got})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", got
    server.shutdown()
    server.server_close()


def test_a_xero_payment_sends_an_invoice_update_batch_that_follows_xeros_schema(receiver, tmp_path: Path) -> None:
    url, got = receiver
    with Sandbox(rate_limits=False, webhooks=WebhookSettings(url, "xero-key")) as sandbox:
        key = Fernet(Fernet.generate_key())
        with Store.open(f"sqlite:///{tmp_path / 'bridge.db'}") as store:
            vault = TokenVault(store, key)
            tenant = link_sandbox("xero", store, vault, sandbox.base_url, "acme-xero")
            tokens, _ = vault.load("acme-xero")
        invoices = sandbox.state()["xero"]["Invoices"]
        unpaid = next(i for i in invoices if i["Status"] == "AUTHORISED" and Decimal(str(i["AmountDue"])) > 0)
        answer = requests.put(
            f"{sandbox.base_url}/api.xro/2.0/Payments",
            headers={"Authorization": f"Bearer {tokens.access_token}", "xero-tenant-id": tenant},
            json={"Invoice": {"InvoiceID": unpaid["InvoiceID"]}, "Account": {"Code": "090"}, "Amount": "1.00"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        wait_until(lambda: got, "the sandbox's webhook")
    path, headers, body = got[0]
    assert path == "/hooks/xero"
    assert {k.lower(): v for k, v in headers.items()}["x-xero-signature"] == sign("xero-key", body)
    batch = json.loads(body)
    schema = yaml.safe_load((SPECS / "xero-webhooks.yaml").read_text())["components"]["schemas"]["WebhookEvent"]
    jsonschema.validate(batch, schema, format_checker=jsonschema.FormatChecker())
    [event] = batch["events"]
    assert event["resourceId"] == unpaid["InvoiceID"] and event["tenantId"] == tenant
    assert (event["eventCategory"], event["eventType"]) == ("INVOICE", "UPDATE")  # Xero has no payment category
