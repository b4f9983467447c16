"""Sandbox books linked to a fresh store, one way for every provider: the fixtures the CLI tests share.

`book` links the provider a test module names in `PROVIDER` (QuickBooks when it names none) to a fresh store,
with the demo contracts; `link` does the same for a sandbox of a test's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.store import Store
from bridge_sandbox import Sandbox, default_seed

ROOT = Path(__file__).resolve().parents[2]
AS_OF = ["--as-of", "2026-10-20"]
# Per provider: the connection's name, where the emulator keeps invoices and the field of their number, and the
# connection's own pace (Xero's and FreshBooks' real limits would make a test wait for minutes).
_PROVIDERS = {
    "quickbooks": ("acme-qbo", "Invoice", "DocNumber", ""),
    "xero": ("acme-xero", "Invoices", "InvoiceNumber", "calls_per_minute = 100000\n"),
    "freshbooks": ("acme-fb", "invoices", "invoice_number", "calls_per_minute = 100000\n"),
}


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as sandbox:
        yield sandbox


@dataclass
class Book:
    """One provider's sandbox book, linked as the connection `name` in the config at `config`."""

    sandbox: Sandbox
    config: Path
    key: str
    provider: str
    tenant: str

    @property
    def name(self) -> str:
        return _PROVIDERS[self.provider][0]

    def args(self, *more: str) -> list[str]:
        return ["--config", str(self.config), *AS_OF, *more]

    def state(self) -> dict[str, Any]:
        return self.sandbox.state()

    def outbox(self) -> list[Any]:
        return self.sandbox.outbox()

    def invoices(self) -> list[dict[str, Any]]:
        return list(self.state()[self.provider][_PROVIDERS[self.provider][1]])

    def invoice(self, number: str) -> dict[str, Any]:
        field = _PROVIDERS[self.provider][2]
        return next(i for i in self.invoices() if i[field] == number)

    def pay_in_full(self, number: str) -> None:
        """A client pays: a Payment lands at QuickBooks for the whole balance."""
        assert self.provider == "quickbooks"
        inv = self.invoice(number)
        store = Store.open(f"sqlite:///{self.config.parent / 'bridge.db'}")
        tokens, _ = TokenVault(store, Fernet(self.key.encode())).load(self.name)
        store.close()
        body = {
            "CustomerRef": inv["CustomerRef"],
            "TotalAmt": str(inv["Balance"]),
            "TxnDate": "2026-10-20",
            "Line": [{"Amount": str(inv["Balance"]), "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
        }
        response = requests.post(
            f"{self.sandbox.base_url}/v3/company/{self.tenant}/payment",
            headers={
                "Authorization": f"Bearer {tokens.access_token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            data=json.dumps(body),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert Decimal(str(self.invoice(number)["Balance"])) == 0


def link(sandbox: Sandbox, folder: Path, key: str, provider: str = "quickbooks", *, extra: str = "") -> Book:
    """Link `provider`'s sandbox book into a store in `folder` under `key`; its config (with `extra` in the
    connection's table) beside it, with the demo contracts."""
    name, _, _, pace = _PROVIDERS[provider]
    store = Store.open(f"sqlite:///{folder / 'bridge.db'}")
    tenant = link_sandbox(provider, store, TokenVault(store, Fernet(key.encode())), sandbox.base_url, name)
    store.close()
    config = folder / "bridge.toml"
    config.write_text(
        '[store]\nurl = "sqlite:///bridge.db"\n\n'
        f'[[connections]]\nname = "{name}"\nprovider = "{provider}"\ntenant_id = "{tenant}"\n'
        f'base_url = "{sandbox.base_url}"\n{pace}{extra}\n' + (ROOT / "config" / "demo.toml").read_text()
    )
    return Book(sandbox, config, key, provider, tenant)


def fresh_book(provider: str, sandbox: Sandbox, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Book:
    """The demo books, seeded afresh, with `provider`'s linked under a new secret key."""
    sandbox.reset(default_seed())
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", key)
    return link(sandbox, folder, key, provider)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A new secret key, in BRIDGE_SECRET_KEY."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", key)
    return key


@pytest.fixture
def book(
    request: pytest.FixtureRequest, module_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Book:
    """The book of the provider the test module names in `PROVIDER` (QuickBooks by default)."""
    return fresh_book(getattr(request.module, "PROVIDER", "quickbooks"), module_sandbox, tmp_path, monkeypatch)


def plan_of(result: Any) -> dict[str, Any]:
    assert result.code in (0, 3), result.err
    return dict(json.loads(result.out))
