"""A fourth provider is a package, not a patch: one registered only through an entry point links and syncs.

The test writes a tiny distribution into its tmp folder (a module and a `*.dist-info/entry_points.txt`
under `bridge.providers`), puts it on sys.path, and runs a small emulator on 127.0.0.1 serving an OAuth
authorize / token endpoint and a list of invoices. Nothing in the bridge names "fakebooks".
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from cryptography.fernet import Fernet

from bridge.providers import load_providers

PLUGIN = '''
"""fakebooks: a provider plugin for the bridge, outside the bridge."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlencode

import requests

from bridge.auth.link import Tenant
from bridge.auth.vault import TokenSet
from bridge.connectors.http import CallStats
from bridge.model import Customer, Invoice, InvoiceStatus
from bridge.providers import Provider

PROVIDER = Provider(
    name="fakebooks",
    display_name="Fake Books",
    tenant_label="ledger id",
    flow="fakebooks_plugin:Flow",
    connector="fakebooks_plugin:factory",
)


class Flow:
    provider = "fakebooks"
    pkce = False

    def __init__(self, base_url):
        self.base_url = base_url

    def authorize_url(self, app, state, challenge):
        query = urlencode({"client_id": app.client_id, "redirect_uri": app.redirect_uri, "state": state})
        return f"{self.base_url}/authorize?{query}"

    def exchange(self, app, params, verifier):
        answer = requests.post(f"{self.base_url}/token", data={"code": params["code"]}, timeout=10)
        answer.raise_for_status()
        body = answer.json()
        now = datetime.now(timezone.utc)
        return TokenSet(body["access_token"], body["refresh_token"], now + timedelta(hours=1))

    def tenants(self, tokens, params):
        return [Tenant("L-1", "Fake Co")]

    def revoke(self, app, tokens):
        return False


class Connector:
    provider = "fakebooks"
    streams = ()

    def __init__(self, connection, vault):
        self.name, self.base_url, self.vault = connection.name, connection.base_url, vault
        self.stats = CallStats()

    def _get(self, path):
        tokens, _ = self.vault.load(self.name)
        answer = requests.get(
            f"{self.base_url}{path}", headers={"Authorization": f"Bearer {tokens.access_token}"}, timeout=10
        )
        self.stats.calls += 1
        answer.raise_for_status()
        return answer.json()

    def _invoice(self, raw):
        return Invoice(
            id=raw["id"],
            number=raw["number"],
            connection=self.name,
            provider="fakebooks",
            customer=Customer(id=raw["customer"], name=raw["customer"], email=raw["email"]),
            currency="USD",
            due_date=date.fromisoformat(raw["due"]),
            total=Decimal("500.00"),
            amount_due=Decimal("500.00"),
            status=InvoiceStatus.OPEN,
        )

    def pull(self, cursors, customers, *, full):
        from bridge.connectors.base import PullResult

        return PullResult(invoices=[(self._invoice(raw), raw) for raw in self._get("/invoices")["invoices"]])

    def read_invoice(self, invoice_id, customers):
        found = [raw for raw in self._get("/invoices")["invoices"] if raw["id"] == invoice_id]
        return (self._invoice(found[0]), found[0]) if found else None

    def apply(self, action, raw_invoice):
        raise NotImplementedError("fakebooks is read-only")

    def flush(self):
        pass

    def evidence(self, action, pending_since):
        raise NotImplementedError

    def check(self):
        return f"Fake Co ({len(self._get('/invoices')['invoices'])} invoices)"


def factory(connection, vault, env):
    return Connector(connection, vault)
'''

CONTRACT = """
[contracts.standard]
applies_to = ["*"]
currency = "USD"

[contracts.standard.reminders]
schedule = [1, 7]
"""

INVOICES = [
    {"id": "f-1", "number": "FB-1001", "customer": "Amy", "email": "amy@example.com", "due": "2026-10-01"},
    {"id": "f-2", "number": "FB-1002", "customer": "Bob", "email": "bob@example.com", "due": "2026-12-01"},
]


class Emulator(BaseHTTPRequestHandler):
    """OAuth (authorize consents at once, token hands out a bearer token) and one list of invoices."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/authorize":
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            target = f"{query['redirect_uri']}?{urlencode({'code': 'the-code', 'state': query['state']})}"
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
        elif url.path == "/invoices" and self.headers.get("Authorization") == "Bearer fake-access":
            self._json(200, {"invoices": INVOICES})
        else:
            self._json(401 if url.path == "/invoices" else 404, {"error": "no"})

    def do_POST(self) -> None:
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode())
        if self.path == "/token" and form.get("code") == ["the-code"]:
            self._json(200, {"access_token": "fake-access", "refresh_token": "fake-refresh", "expires_in": 3600})
        else:
            self._json(400, {"error": "invalid_grant"})

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def emulator() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Emulator)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def install_plugin(folder: Path, monkeypatch: pytest.MonkeyPatch, target: str = "fakebooks_plugin:PROVIDER") -> None:
    """A distribution in `folder`: the module and its entry point, found by importlib.metadata on sys.path."""
    (folder / "fakebooks_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = folder / "fakebooks_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakebooks-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[bridge.providers]\nfakebooks = {target}\n")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "fakebooks_plugin", raising=False)


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    folder = tmp_path / "site"
    folder.mkdir()
    install_plugin(folder, monkeypatch)
    yield
    sys.modules.pop("fakebooks_plugin", None)


def test_a_fourth_provider_from_an_entry_point_links_and_syncs_through_the_cli(
    bridge: Callable[..., Any], plugin: None, emulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    config = tmp_path / "config" / "bridge.toml"
    config.parent.mkdir()
    config.write_text('[store]\nurl = "sqlite:///bridge.db"\n' + CONTRACT)

    helped = bridge("link", "--help")
    assert "fakebooks" in helped.out and "quickbooks" in helped.out

    linked = bridge("--config", str(config), "link", "fakebooks", "--base-url", emulator)
    assert linked.code == 0, linked.err
    assert "Linked fakebooks: Fake Co (2 invoices)" in linked.err
    text = config.read_text()
    assert 'provider = "fakebooks"' in text and 'tenant_id = "L-1"' in text

    checked = bridge("--config", str(config), "config", "check")
    assert (checked.code, checked.out.strip()) == (0, "config OK: 1 connections, 1 contracts"), checked.err

    dry = bridge("--config", str(config), "--as-of", "2026-10-20", "--json", "sync", "--dry-run")
    assert dry.code == 0, dry.err
    plan = json.loads(dry.out)
    assert [(a["connection"], a["kind"], a["invoice"]["number"]) for a in plan["actions"]] == [
        ("fakebooks", "reminder", "FB-1001")
    ]
    human = bridge("--config", str(config), "--as-of", "2026-10-20", "sync", "--dry-run")
    assert human.code == 0 and "FB-1001" in human.out


def test_a_plugin_that_fails_to_load_is_reported_and_the_others_still_load(
    bridge: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, monkeypatch, target="fakebooks_plugin:NO_SUCH_THING")
    found, broken = load_providers()
    assert {"quickbooks", "xero", "freshbooks"} <= set(found) and "fakebooks" not in found
    assert "fakebooks" in broken and "AttributeError" in broken["fakebooks"]
    # A connection of the broken provider still loads (its sync fails alone); `config check` names why.
    config = tmp_path / "bridge.toml"
    config.write_text('[[connections]]\nname = "fb"\nprovider = "fakebooks"\ntenant_id = "L-1"\n' + CONTRACT)
    checked = bridge("--config", str(config), "config", "check")
    assert checked.code == 2
    assert f"{config}: connections[0].provider: the fakebooks provider plugin failed to load" in checked.err
    sys.modules.pop("fakebooks_plugin", None)


def test_an_uninstalled_provider_in_the_config_names_the_installed_ones(
    bridge: Callable[..., Any], tmp_path: Path
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[[connections]]\nname = "acme"\nprovider = "fakebooks"\ntenant_id = "L-1"\n' + CONTRACT)
    ran = bridge("--config", str(config), "sync", "--dry-run")
    assert ran.code == 2
    assert "connections[0].provider: unknown provider 'fakebooks'" in ran.err
    assert "installed: 'freshbooks', 'quickbooks', 'xero'" in ran.err
    refused = bridge("--config", str(config), "link", "fakebooks")
    assert refused.code == 2 and "fakebooks" in refused.err
