"""The Xero emulator's response bodies validated against Xero's official OpenAPI files (openapi-core).

`validate_xero(...)` is shared with test_xero_sdk.py, which validates every Invoices, Payments, Contacts
and Connections body its xero-python clients receive. This module walks the whole default seed.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from bridge_sandbox import Sandbox

SPECS = Path(__file__).resolve().parents[1] / "specs"  # Xero's official OpenAPI files (MIT, see LICENSE there)
ACCOUNTING_SPEC = SPECS / "xero_accounting.yaml"
IDENTITY_SPEC = SPECS / "xero-identity.yaml"
TENANT = "6f9d3c1e-2b7a-4c55-9e1d-0a8f4b2c7d31"


@cache
def _openapi(path: Path) -> Any:
    from jsonschema_path import SchemaPath
    from openapi_core import Config, OpenAPI

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=loader)
    # The spec file itself is not re-validated (slow); responses are validated against it.
    return OpenAPI(SchemaPath.from_dict(spec), config=Config(spec_validator_cls=None))


def specs_present() -> bool:
    """Whether tests/specs holds the official Xero files (it does: they are part of the repository)."""
    return ACCOUNTING_SPEC.is_file() and IDENTITY_SPEC.is_file()


# The spec's spelling of each fixed path segment the connector uses (xero-python and Xero mix cases).
_SEGMENTS = {
    name.lower(): name
    for name in (
        "Invoices",
        "Payments",
        "Contacts",
        "History",
        "InvoiceReminders",
        "Settings",
        "Organisation",
        "Currencies",
        "Accounts",
        "TaxRates",
        "BrandingThemes",
        "Users",
    )
}


def _spec_path(path: str) -> tuple[Path, str] | None:
    """(spec file, the path as the spec spells it) for a sandbox path we validate, else None."""
    if path.lower().rstrip("/") == "/connections":
        return IDENTITY_SPEC, "/Connections"
    prefix = "/api.xro/2.0/"
    if not path.lower().startswith(prefix):
        return None
    parts = path[len(prefix) :].strip("/").split("/")
    if parts[0].lower() not in _SEGMENTS:
        return None
    # Ids stay as they are; fixed segments take the documented spelling.
    return ACCOUNTING_SPEC, prefix + "/".join(_SEGMENTS.get(p.lower(), p) for p in parts)


def validate_xero(method: str, url: str, status: int, body: bytes, content_type: str) -> bool:
    """Validate one sandbox response against the official spec; False when the path is not one we check."""
    from openapi_core.testing import MockRequest, MockResponse

    found = _spec_path(urlsplit(url).path)
    if found is None or not body:
        return False
    spec_file, path = found
    request = MockRequest("https://api.xero.com", method.lower(), path)
    response = MockResponse(body, status_code=status, content_type=content_type.split(";")[0] or "application/json")
    _openapi(spec_file).validate_response(request, response)
    return True


def test_default_seed_conforms_to_the_official_spec() -> None:
    if not specs_present():
        pytest.skip(f"the official Xero OpenAPI files are not in {SPECS}")
    with Sandbox(rate_limits=False) as sandbox:
        base = sandbox.base_url
        code_url = requests.get(
            base + "/identity/connect/authorize",
            params={"response_type": "code", "client_id": "c", "redirect_uri": "http://localhost/cb", "scope": "x"},
            allow_redirects=False,
            timeout=5,
        ).headers["Location"]
        code = code_url.split("code=")[1].split("&")[0]
        token = requests.post(
            base + "/connect/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": "http://localhost/cb"},
            auth=("c", "s"),
            timeout=5,
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": TENANT, "Accept": "application/json"}
        checked = 0
        urls = [
            base + "/connections",
            base + "/api.xro/2.0/Invoices",
            base + "/api.xro/2.0/Invoices?page=1&pageSize=1000",
            base + "/api.xro/2.0/Payments",
            base + "/api.xro/2.0/Payments?page=1",
            base + "/api.xro/2.0/Contacts",
            # What clients nobody here wrote read first (tap-xero's access check is Currencies).
            base + "/api.xro/2.0/Organisation",
            base + "/api.xro/2.0/Currencies",
            base + "/api.xro/2.0/Accounts",
            base + "/api.xro/2.0/TaxRates",
            base + "/api.xro/2.0/BrandingThemes",
            base + "/api.xro/2.0/Users",
        ]
        state = sandbox.state()["xero"]
        urls += [base + "/api.xro/2.0/Invoices/" + inv["InvoiceID"] for inv in state["Invoices"]]
        for url in urls:
            answer = requests.get(url, headers=headers, timeout=5)
            assert answer.status_code == 200, (url, answer.text)
            assert validate_xero("GET", url, 200, answer.content, answer.headers["Content-Type"])
            checked += 1
        assert checked == len(urls)


def test_reference_lists_take_if_modified_since_and_where_and_round_trip_through_the_state() -> None:
    from bridge_sandbox.xero_reference import default_lists

    accounts = default_lists(TENANT, "USD")["Accounts"]
    accounts[1] = {**accounts[1], "UpdatedDateUTC": "/Date(1767225600000+0000)/"}  # 2026-01-01
    seed = {"xero": {"tenant_id": TENANT, "Accounts": accounts}}
    with Sandbox(seed, rate_limits=False) as sandbox:
        base = sandbox.base_url
        code_url = requests.get(
            base + "/identity/connect/authorize",
            params={"response_type": "code", "client_id": "c", "redirect_uri": "http://localhost/cb", "scope": "x"},
            allow_redirects=False,
            timeout=5,
        ).headers["Location"]
        code = code_url.split("code=")[1].split("&")[0]
        token = requests.post(
            base + "/connect/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": "http://localhost/cb"},
            auth=("c", "s"),
            timeout=5,
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": TENANT, "Accept": "application/json"}
        url = base + "/api.xro/2.0/Accounts"
        since = {**headers, "If-Modified-Since": "2026-01-01T00:00:00"}
        assert [a["Code"] for a in requests.get(url, headers=since, timeout=5).json()["Accounts"]] == ["200"]
        where = requests.get(url, headers=headers, params={"where": 'Type=="BANK"'}, timeout=5).json()
        assert [a["Code"] for a in where["Accounts"]] == ["090"]
        assert sandbox.state()["xero"]["Accounts"] == accounts
        assert "Currencies" not in sandbox.state()["xero"]  # not seeded, not written back
