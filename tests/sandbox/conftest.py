"""Fixtures: one QuickBooks sandbox per module (reset before each test) and SDK clients linked to it.

The OAuth dance is the real one: intuitlib reads the sandbox's discovery document, the consent
page redirects at once with a code, intuitlib exchanges it for tokens, python-quickbooks uses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from quickbooks import QuickBooks

from bridge_sandbox import Sandbox

REALM = "9341453215647712"
REDIRECT_URI = "http://127.0.0.1:8765/callback"


class FakeClock:
    """A settable sandbox clock."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Linked:
    """An intuitlib client that went through the sandbox's consent, and the realm it chose."""

    auth: AuthClient
    realm: str
    state: str


def link(base_url: str, client_id: str = "bridge-test", client_secret: str = "s3cret") -> Linked:
    """The OAuth authorization-code flow against the sandbox, as `bridge link` does it."""
    auth = AuthClient(
        client_id, client_secret, REDIRECT_URI, environment=base_url + "/.well-known/openid_configuration"
    )
    url = auth.get_authorization_url([Scopes.ACCOUNTING])
    consent = requests.get(url, allow_redirects=False, timeout=5)
    assert consent.status_code == 302, consent.text
    location = consent.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert params["state"] == auth.state_token
    auth.get_bearer_token(params["code"], realm_id=params["realmId"])
    return Linked(auth, params["realmId"], params["state"])


def client(base_url: str, linked: Linked) -> QuickBooks:
    """python-quickbooks pointed at the sandbox."""
    qb = QuickBooks(
        auth_client=linked.auth,
        refresh_token=linked.auth.refresh_token,
        company_id=linked.realm,
        minorversion=75,
        use_decimal=True,
    )
    qb.api_url_v3 = base_url + "/v3"
    return qb


@pytest.fixture(autouse=True)
def _insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests-oauthlib refuses plain http unless told the transport is trusted (loopback here).
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[Sandbox]:
    """One sandbox for the module: default book, no rate limits (tests of limits start their own)."""
    with Sandbox(rate_limits=False) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(module_sandbox: Sandbox) -> Sandbox:
    """The module sandbox, reset to the default book."""
    response = requests.post(module_sandbox.base_url + "/_sandbox/reset", timeout=5)
    assert response.status_code == 200
    return module_sandbox


@pytest.fixture(scope="module")
def module_linked(module_sandbox: Sandbox) -> Linked:
    """Tokens survive a reset (they are not part of the seed), so one link serves the module."""
    return link(module_sandbox.base_url)


@pytest.fixture
def qb(sandbox: Sandbox, module_linked: Linked) -> QuickBooks:
    """A python-quickbooks client on the freshly reset module sandbox."""
    return client(sandbox.base_url, module_linked)


@pytest.fixture
def clock() -> FakeClock:
    """A clock at the default book's as-of date, late afternoon in New York."""
    return FakeClock(datetime(2026, 10, 20, 21, 0, tzinfo=UTC))


def api(sandbox: Sandbox, path: str) -> str:
    """The URL of a v3 API path for the default realm."""
    return f"{sandbox.base_url}/v3/company/{REALM}/{path.lstrip('/')}"


def get_json(url: str, **kwargs: Any) -> Any:
    """GET a JSON document (control endpoints)."""
    response = requests.get(url, timeout=5, **kwargs)
    response.raise_for_status()
    return response.json()
