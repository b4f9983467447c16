"""Bad command lines: each one exits 2, names the argument or file at fault, and writes nothing anywhere.

(The broken configuration files have their own table in tests/unit/test_config.py; here the config
is good and the command line is not.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
GOOD_CONFIG = """[store]
url = "sqlite:///bridge.db"

[[connections]]
name = "acme-xero"
provider = "xero"
tenant_id = "6f9d3c1e-2b7a-4c55-9e1d-0a8f4b2c7d31"
base_url = "http://127.0.0.1:9"

"""

# (id, arguments after `bridge --config CONFIG`, a word the error must contain)
BAD: list[tuple[str, list[str], str]] = [
    ("unknown command", ["frobnicate"], "frobnicate"),
    ("bad as-of", ["--as-of", "2026-13-01", "sync", "--dry-run"], "--as-of"),
    ("as-of not a date", ["--as-of", "yesterday", "sync", "--dry-run"], "--as-of"),
    ("unknown connection", ["sync", "--dry-run", "--connection", "nope"], "nope"),
    ("unknown sync option", ["sync", "--dryrun"], "--dryrun"),
    ("sync out into a folder", ["sync", "--dry-run", "--out", "{tmp}"], "--out"),
    ("apply without a plan", ["apply"], "PLAN.json"),
    ("apply a missing plan", ["apply", "{tmp}/missing.json"], "missing.json"),
    ("apply a plan that is not JSON", ["apply", "{tmp}/garbage.json"], "garbage.json"),
    ("apply a plan of another config", ["apply", "{tmp}/foreign.json"], "ghost"),
    ("evaluate without invoices", ["evaluate"], "--invoices"),
    ("evaluate missing invoices", ["evaluate", "--invoices", "{tmp}/none.json"], "none.json"),
    ("evaluate invoices not JSON", ["evaluate", "--invoices", "{tmp}/garbage.json"], "garbage.json"),
    (
        "evaluate bad history",
        ["evaluate", "--invoices", "{tmp}/invoices.json", "--history", "{tmp}/garbage.json"],
        "garbage.json",
    ),
    (
        "evaluate missing contracts",
        ["evaluate", "--invoices", "{tmp}/invoices.json", "--contracts", "{tmp}/no.toml"],
        "no.toml",
    ),
    (
        "renegotiate without connection",
        ["renegotiate", "--invoice", "INV-1", "--new-due-date", "2026-12-01"],
        "--connection",
    ),
    (
        "renegotiate without invoice",
        ["renegotiate", "--connection", "acme-xero", "--new-due-date", "2026-12-01"],
        "--invoice",
    ),
    (
        "renegotiate without a date",
        ["renegotiate", "--connection", "acme-xero", "--invoice", "INV-1"],
        "--new-due-date",
    ),
    (
        "renegotiate bad date",
        ["renegotiate", "--connection", "acme-xero", "--invoice", "I", "--new-due-date", "soon"],
        "--new-due-date",
    ),
    (
        "renegotiate unknown connection",
        ["renegotiate", "--connection", "nope", "--invoice", "I", "--new-due-date", "2026-12-01"],
        "nope",
    ),
    ("ledger unknown option", ["ledger", "--from", "2026-01-01"], "--from"),
    ("ledger unknown state", ["ledger", "--state", "paid"], "paid"),
    ("link unknown provider", ["link", "sage"], "sage"),
    ("link bad name", ["link", "xero", "--name", "a:b", "--base-url", "http://127.0.0.1:9"], "--name"),
    ("link bad base url", ["link", "xero", "--base-url", "ftp://x"], "--base-url"),
    ("link environment xero lacks", ["link", "xero", "--environment", "sandbox"], "xero offers 'production'"),
    (
        "link environment with an emulator",
        ["link", "quickbooks", "--environment", "sandbox", "--base-url", "http://127.0.0.1:9"],
        "give one or the other",
    ),
    ("link without app credentials", ["link", "xero"], "BRIDGE_XERO_CLIENT_ID"),
    ("link freshbooks without manual", ["link", "freshbooks", "--client-id", "c"], "--manual"),
    ("link with a secret on the command line", ["link", "xero", "--client-secret", "s"], "--client-secret"),
    ("connections unknown verb", ["connections", "rename", "acme-xero"], "rename"),
    ("connections check unknown", ["connections", "check", "nope"], "nope"),
    ("connections remove unknown", ["connections", "remove", "nope"], "nope"),
    ("connections check no name", ["connections", "check"], "NAME"),
    ("sandbox serve bad port", ["sandbox", "serve", "--port", "http"], "--port"),
    ("sandbox serve negative latency", ["sandbox", "serve", "--latency-ms", "-5"], "--latency-ms"),
    ("sandbox serve missing seed", ["sandbox", "serve", "--seed", "{tmp}/seed.json"], "seed.json"),
    ("demo missing contracts", ["demo", "--contracts", "{tmp}/none.toml"], "none.toml"),
    (
        "demo missing seed",
        ["demo", "--contracts", str(ROOT / "config" / "demo.toml"), "--seed", "{tmp}/none.json"],
        "none.json",
    ),
]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    for provider in ("QUICKBOOKS", "XERO", "FRESHBOOKS"):
        monkeypatch.delenv(f"BRIDGE_{provider}_CLIENT_ID", raising=False)
        monkeypatch.delenv(f"BRIDGE_{provider}_CLIENT_SECRET", raising=False)
    (tmp_path / "bridge.toml").write_text(GOOD_CONFIG + (ROOT / "config" / "demo.toml").read_text())
    (tmp_path / "garbage.json").write_text("{not json")
    (tmp_path / "invoices.json").write_text("[]")
    (tmp_path / "foreign.json").write_text(
        '{"version": 1, "as_of": "2026-10-20", "actions": [{"key": "reminder:ghost:1:1", "kind": "reminder", '
        '"connection": "ghost", "provider": "xero", "invoice": {"id": "1", "number": "1", "customer": "c", '
        '"currency": "USD", "total": "1.00", "amount_due": "1.00", "due_date": "2026-10-01", '
        '"effective_due_date": "2026-10-01"}, "clause": "contracts.standard.reminders", "reason": "r", '
        '"step": 1, "message": "overdue", "channel": "provider"}], "skipped": [], "warnings": [], "errors": []}'
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")}


@pytest.mark.parametrize(("args", "word"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_command_line_exits_2_names_the_culprit_and_writes_nothing(
    bridge: Callable[..., Any], folder: Path, args: list[str], word: str
) -> None:
    before = _snapshot(folder)
    argv = [a.replace("{tmp}", str(folder)) for a in args]
    result = bridge("--config", str(folder / "bridge.toml"), *argv)
    assert result.code == 2, (result.code, result.err)
    assert word.replace("{tmp}", str(folder)) in result.err.replace("\n", " "), result.err
    assert _snapshot(folder) == before  # no store, no plan, no config change, no lock file
    assert not [n for n in os.listdir(folder) if n.startswith(".") and n.endswith(".tmp")]


def test_the_table_has_at_least_forty_cases_with_the_config_table() -> None:
    from tests.unit.test_config import BROKEN

    assert len(BAD) + len(BROKEN) >= 40


def _broken_configs() -> list[Any]:
    from tests.unit.test_config import BROKEN

    return [pytest.param(text, key, id=name) for name, text, key, _ in BROKEN]


@pytest.mark.parametrize("command", [["sync", "--dry-run"], ["sync"]], ids=["dry-run", "sync"])
@pytest.mark.parametrize(("text", "key"), _broken_configs())
def test_a_broken_config_exits_2_through_the_cli_naming_file_and_key_and_writes_nothing(
    bridge: Callable[..., Any], folder: Path, text: str, key: str, command: list[str]
) -> None:
    import textwrap

    config = folder / "broken.toml"
    config.write_text(textwrap.dedent(text), encoding="utf-8")
    before = _snapshot(folder)
    result = bridge("--config", str(config), *command)
    assert result.code == 2, (result.code, result.err)
    message = result.err.replace("\n", " ")
    assert str(config) in message and key in message, result.err
    assert _snapshot(folder) == before  # no store, no plan, no lock file, the config untouched
