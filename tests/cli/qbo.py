"""A QuickBooks sandbox book linked to a fresh store: the fixtures the CLI tests share."""

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
from bridge_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
AS_OF = ["--as-of", "2026-10-20"]


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as sandbox:
        yield sandbox


@dataclass
class Book:
    sandbox: Sandbox
    config: Path
    key: str
    realm: str

    def args(self, *more: str) -> list[str]:
        return ["--config", str(self.config), *AS_OF, *more]

    def state(self) -> dict[str, Any]:
        return self.sandbox.state()

    def outbox(self) -> list[Any]:
        return self.sandbox.outbox()

    def invoice(self, number: str) -> dict[str, Any]:
        return next(i for i in self.state()["quickbooks"]["Invoice"] if i["DocNumber"] == number)

    def pay_in_full(self, number: str) -> None:
        """A client pays: a Payment lands at QuickBooks for the whole balance."""
        inv = self.invoice(number)
        store = Store.open(f"sqlite:///{self.config.parent / 'bridge.db'}")
        tokens, _ = TokenVault(store, Fernet(self.key.encode())).load("acme-qbo")
        store.close()
        body = {
            "CustomerRef": inv["CustomerRef"],
            "TotalAmt": str(inv["Balance"]),
            "TxnDate": "2026-10-20",
            "Line": [{"Amount": str(inv["Balance"]), "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
        }
        response = requests.post(
            f"{self.sandbox.base_url}/v3/company/{self.realm}/payment",
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


@pytest.fixture
def book(module_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Book]:
    module_sandbox.reset()
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", key)
    store = Store.open(f"sqlite:///{tmp_path / 'bridge.db'}")
    realm = link_sandbox(
        "quickbooks", store, TokenVault(store, Fernet(key.encode())), module_sandbox.base_url, "acme-qbo"
    )
    store.close()
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[store]\nurl = "sqlite:///bridge.db"\n\n'
        f'[[connections]]\nname = "acme-qbo"\nprovider = "quickbooks"\ntenant_id = "{realm}"\n'
        f'base_url = "{module_sandbox.base_url}"\n\n' + (ROOT / "config" / "demo.toml").read_text()
    )
    yield Book(module_sandbox, config, key, realm)


def plan_of(result: Any) -> dict[str, Any]:
    assert result.code in (0, 3), result.err
    return dict(json.loads(result.out))
