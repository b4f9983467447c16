"""Shared helpers of the security tests: the real `bridge` entry point run in-process, and a QuickBooks
sandbox whose books carry hostile text (markup, emoji codes, terminal escapes) in every text field.

(Named `_text_fixtures` rather than conftest.py: another branch owns tests/security/conftest.py.)
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.store import Store
from bridge_sandbox import Sandbox, default_seed

ROOT = Path(__file__).resolve().parents[2]
AS_OF = ["--as-of", "2026-10-20"]

# Rich markup that closes a tag never opened (MarkupError), a clickable link, hidden text, emoji codes,
# an OSC title change ended by BEL, a clear-screen CSI, a C1 CSI and a bidi override.
HOSTILE_NAME = (
    "Evil [/bold] [link=https://evil.example/pay]pay here[/link][conceal]hidden :x: :warning:"
    "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eftp"
)
HOSTILE_SUFFIX = "[/]:x:\x1b[2J"  # appended to invoice numbers (QuickBooks allows 21 characters)
HOSTILE_LINE = "Consulting [/bold][link=https://evil.example]x[/link] \x1b]0;t\x07"
# What must never reach the terminal raw, and what shows that the text was printed as text.
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "❌", "⚠")


def assert_shown_as_text(text: str) -> None:
    """No control character, bidi override or emoji from the data; escapes shown as `\\x1b`."""
    leaked = [ch for ch in RAW if ch in text]
    assert not leaked, f"{leaked!r} reached the terminal: {text[:2000]!r}"


def hostile_seed() -> dict[str, Any]:
    """The demo books with hostile customer names, invoice numbers and line descriptions at QuickBooks."""
    seed = copy.deepcopy(default_seed())
    books = seed["quickbooks"]
    books["CompanyInfo"]["CompanyName"] = HOSTILE_NAME  # shown by `connections check` and `link`
    for customer in books["Customer"]:
        for key in ("DisplayName", "FullyQualifiedName", "CompanyName", "PrintOnCheckName"):
            if key in customer:
                customer[key] = HOSTILE_NAME
    for invoice in books["Invoice"]:
        invoice["DocNumber"] = f"{invoice['DocNumber']}{HOSTILE_SUFFIX}"[-21:]
        invoice["CustomerRef"]["name"] = HOSTILE_NAME
        for line in invoice.get("Line", []):
            if "Description" in line:
                line["Description"] = HOSTILE_LINE
    return seed


@dataclass
class Book:
    sandbox: Sandbox
    config: Path
    key: str

    def args(self, *more: str) -> list[str]:
        return ["--config", str(self.config), *AS_OF, *more]


def config_text(sandbox: Sandbox, realm: str, name: str = "acme-qbo", extra: str = "") -> str:
    return (
        '[store]\nurl = "sqlite:///bridge.db"\n\n'
        f'[[connections]]\nname = "{name}"\nprovider = "quickbooks"\ntenant_id = "{realm}"\n'
        f'base_url = "{sandbox.base_url}"\ncalls_per_minute = 100000\n{extra}\n'
        + (ROOT / "config" / "demo.toml").read_text()
    )


def linked_book(
    sandbox: Sandbox, folder: Path, monkeypatch: pytest.MonkeyPatch, seed: Any = None, extra: str = ""
) -> Book:
    """Reset the sandbox to `seed`, link QuickBooks into a store in `folder` and write a config beside it."""
    sandbox.reset(seed)
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", key)
    monkeypatch.delenv("BRIDGE_SECRET_KEY_OLD", raising=False)
    with Store.open(f"sqlite:///{folder / 'bridge.db'}") as store:
        realm = link_sandbox("quickbooks", store, TokenVault(store, Fernet(key.encode())), sandbox.base_url, "acme-qbo")
    config = folder / "bridge.toml"
    config.write_text(config_text(sandbox, realm, extra=extra))
    return Book(sandbox, config, key)


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as sandbox:
        yield sandbox
