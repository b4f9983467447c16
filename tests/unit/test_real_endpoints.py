"""Where the bridge goes without an emulator: for each provider and each of its environments, every call the
connector and the link flow start is recorded by a transport that refuses to send, and must be the provider's
documented https host and path with the headers it requires. Nothing leaves the machine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.fernet import Fernet

from bridge import clock
from bridge.auth.link import App
from bridge.auth.vault import TokenSet, TokenVault
from bridge.config import ConnectionSettings
from bridge.errors import BridgeError
from bridge.providers import get as provider_named
from bridge.store import Store

TENANTS = {"quickbooks": "9130355377388855", "xero": "6f9d3c1e-2b7a-4c55-9e1d-0a8f4b2c7d31", "freshbooks": "aBc12"}
# (provider, environment) → the API origin its connector must call.
API = {
    ("quickbooks", "production"): "https://quickbooks.api.intuit.com",
    ("quickbooks", "sandbox"): "https://sandbox-quickbooks.api.intuit.com",
    ("xero", "production"): "https://api.xero.com",
    ("freshbooks", "production"): "https://api.freshbooks.com",
}
# Intuit's discovery documents (intuit-oauth's own switch): the token service is read from them.
DISCOVERY = {
    "production": "https://developer.intuit.com/.well-known/openid_configuration/",
    "sandbox": "https://developer.intuit.com/.well-known/openid_sandbox_configuration/",
}


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[requests.PreparedRequest]]:
    """Every request any `requests` session would send, refused as if nothing listened there."""
    seen: list[requests.PreparedRequest] = []

    def refuse(self: Any, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        seen.append(request)
        raise requests.ConnectionError(ConnectionRefusedError(111, "refused by the recording transport"))

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", refuse)
    yield seen


def _connector(provider: str, environment: str, tmp_path: Path, *, expired: bool = False) -> Any:
    store = Store.open(f"sqlite:///{tmp_path / 'bridge.db'}")
    vault = TokenVault(store, Fernet(Fernet.generate_key()))
    now = clock.now_utc()
    vault.save(
        "real",
        TokenSet(
            access_token="access",
            refresh_token="refresh",
            access_expires_at=now + (timedelta(seconds=-5) if expired else timedelta(hours=1)),
            refresh_expires_at=now + timedelta(days=60),
        ),
    )
    conn = ConnectionSettings(name="real", provider=provider, tenant_id=TENANTS[provider], environment=environment)
    env = {f"BRIDGE_{provider.upper()}_CLIENT_ID": "app-id", f"BRIDGE_{provider.upper()}_CLIENT_SECRET": "app-secret"}
    return provider_named(provider).build_connector(conn, vault, env)


CASES = sorted(API)


@pytest.mark.parametrize(("provider", "environment"), CASES, ids=[f"{p}-{e}" for p, e in CASES])
def test_a_pull_goes_to_the_documented_api_with_the_required_headers(
    provider: str, environment: str, recorded: list[requests.PreparedRequest], tmp_path: Path
) -> None:
    connector = _connector(provider, environment, tmp_path)
    with pytest.raises(BridgeError, match="cannot reach"):
        connector.pull({}, {}, full=True)
    assert recorded, "the pull called nothing"
    origin = API[(provider, environment)]
    tenant = TENANTS[provider]
    for request in recorded:
        url = urlsplit(str(request.url))
        assert f"{url.scheme}://{url.netloc}" == origin, request.url
        assert request.headers["Authorization"] == "Bearer access"
        if provider == "quickbooks":
            assert url.path.startswith(f"/v3/company/{tenant}/"), request.url
            assert parse_qs(url.query)["minorversion"] == ["75"], request.url
        elif provider == "xero":
            assert url.path.startswith("/api.xro/2.0/"), request.url
            assert request.headers["xero-tenant-id"] == tenant
        else:
            assert url.path.startswith(f"/accounting/account/{tenant}/"), request.url


@pytest.mark.parametrize(("provider", "environment"), CASES, ids=[f"{p}-{e}" for p, e in CASES])
def test_a_token_refresh_goes_to_the_documented_token_service(
    provider: str, environment: str, recorded: list[requests.PreparedRequest], tmp_path: Path
) -> None:
    connector = _connector(provider, environment, tmp_path, expired=True)
    with pytest.raises(BridgeError):
        connector.pull({}, {}, full=True)
    first = str(recorded[0].url)
    expected = {
        "quickbooks": DISCOVERY[environment],  # intuit-oauth reads the token endpoint from this first
        "xero": "https://identity.xero.com/connect/token",
        "freshbooks": "https://api.freshbooks.com/auth/oauth/token",
    }[provider]
    assert first == expected
    assert not [r for r in recorded if not str(r.url).startswith("https://")]


@pytest.mark.parametrize(("provider", "environment"), CASES, ids=[f"{p}-{e}" for p, e in CASES])
def test_the_link_flow_starts_at_the_documented_consent_page(
    provider: str, environment: str, recorded: list[requests.PreparedRequest]
) -> None:
    flow = provider_named(provider).link_flow(None, environment)
    app = App("app-id", "app-secret", "https://bridge.example.com/oauth/callback")
    try:
        url = urlsplit(flow.authorize_url(app, "state-1", "challenge" if flow.pkce else None))
    except BridgeError:
        # intuit-oauth reads the environment's discovery document before it can name the consent page.
        assert provider == "quickbooks"
        assert [str(r.url) for r in recorded] == [DISCOVERY[environment]] * len(recorded)
        return
    consent = {
        "xero": "https://login.xero.com/identity/connect/authorize",
        "freshbooks": "https://auth.freshbooks.com/oauth/authorize",
    }[provider]
    assert f"{url.scheme}://{url.netloc}{url.path}".rstrip("/") == consent
    query = parse_qs(url.query)
    assert query["client_id"] == ["app-id"] and query["state"] == ["state-1"]
    assert query["redirect_uri"] == ["https://bridge.example.com/oauth/callback"]
    assert recorded == []


def test_an_environment_the_provider_does_not_have_is_a_config_error() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="xero offers 'production'"):
        ConnectionSettings(name="x", provider="xero", tenant_id="t", environment="sandbox")
    with pytest.raises(ValidationError, match="give one or the other"):
        ConnectionSettings(
            name="q", provider="quickbooks", tenant_id="t", environment="sandbox", base_url="http://127.0.0.1:8765"
        )
