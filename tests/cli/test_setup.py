"""`bridge init` and `bridge config check` (docs/interfaces.md), through the real entry point."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bridge.auth.vault import MAKE_KEY
from bridge.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = Fernet.generate_key().decode()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", value)
    return value


def test_init_writes_a_private_starter_that_config_check_accepts(
    bridge: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.chdir(tmp_path)
    made = bridge("init")
    assert made.code == 0, made.err
    path = tmp_path / "config" / "bridge.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = load_settings(path)
    assert settings.connections == () and [c.name for c in settings.terms.contracts] == ["standard"]
    assert settings.terms.contracts[0].currency == "USD"
    assert "#" in path.read_text()  # commented
    for command in (MAKE_KEY, "export BRIDGE_SECRET_KEY=", "bridge link quickbooks", "bridge sync --dry-run"):
        assert command in made.out
    checked = bridge("config", "check")
    assert (checked.code, checked.out.strip()) == (0, "config OK: 0 connections, 1 contracts"), checked.err
    as_json = bridge("--json", "config", "check")
    assert (as_json.code, json.loads(as_json.out)) == (0, {"ok": True, "problems": [], "warnings": []})


def test_init_never_overwrites_and_dir_puts_the_config_elsewhere(bridge: Callable[..., Any], tmp_path: Path) -> None:
    made = bridge("--json", "init", "--dir", str(tmp_path / "firm"))
    assert made.code == 0, made.err
    path = tmp_path / "firm" / "config" / "bridge.toml"
    told = json.loads(made.out)
    assert told["config"] == str(path)
    assert any(f"--config {path} link quickbooks" in step for step in told["next"])
    path.write_text("# mine\n")
    again = bridge("init", "--dir", str(tmp_path / "firm"))
    assert again.code == 2 and "already exists" in again.err
    assert path.read_text() == "# mine\n"


def test_config_check_lists_every_problem(
    bridge: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    monkeypatch.setenv("BRIDGE_XERO_CLIENT_ID", "app-id")
    monkeypatch.delenv("BRIDGE_XERO_CLIENT_SECRET", raising=False)
    (tmp_path / "db").mkdir()
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[store]\nurl = "sqlite:///db"\n\n[secrets]\nkey_env = "NO_SUCH_KEY_VAR"\n\n'
        '[[connections]]\nname = "acme"\nprovider = "xero"\n\n'
        '[contracts.standard]\napplies_to = ["*"]\ncurrency = "USD"\n'
    )
    checked = bridge("--config", str(config), "config", "check")
    assert checked.code == 2 and checked.out == ""
    lines = checked.err.splitlines()
    assert [line.split(": ")[:2] for line in lines] == [
        [str(config), "store.url"],
        [str(config), "secrets.key_env"],
        [str(config), "connections[0].tenant_id"],
        [str(config), "connections[0] (acme)"],
    ]
    assert "is a folder" in lines[0] and "$NO_SUCH_KEY_VAR is not set" in lines[1]
    assert "the tenant id" in lines[2] and "bridge link xero --name acme" in lines[2]
    # A real service's tokens are refreshed with the app's credentials: the missing one is named.
    assert "BRIDGE_XERO_CLIENT_SECRET not set" in lines[3] and "BRIDGE_XERO_CLIENT_ID" not in lines[3]
    as_json = bridge("--config", str(config), "--json", "config", "check")
    assert as_json.code == 2
    assert json.loads(as_json.out) == {"ok": False, "problems": lines, "warnings": []}


def test_config_check_reports_what_loading_refuses(bridge: Callable[..., Any], tmp_path: Path, key: str) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[contracts.standard]\napplies_to = ["*"]\ncurrency = "USX"\ngrace = 3\n')
    as_json = bridge("--config", str(config), "--json", "config", "check")
    assert as_json.code == 2
    problems = json.loads(as_json.out)["problems"]
    assert len(problems) == 2 and all(p.startswith(f"{config}: contracts.standard.") for p in problems)
    missing = bridge("--config", str(tmp_path / "nope.toml"), "config", "check")
    assert missing.code == 2 and "config file not found" in missing.err


def test_config_check_warns_of_a_locale_whose_language_has_no_messages(
    bridge: Callable[..., Any], tmp_path: Path, key: str
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[store]\nurl = "sqlite:///bridge.db"\n\n'
        '[contracts.tokyo]\napplies_to = ["*"]\ncurrency = "JPY"\nlocale = "ja_JP"\n\n'
        '[contracts.seoul]\napplies_to = ["*"]\ncurrency = "KRW"\nlocale = "ko_KR"\n'
    )
    checked = bridge("--config", str(config), "config", "check")
    assert checked.code == 0, checked.err  # a warning, not a problem: the English words still go out
    assert checked.out.startswith("config OK: ")
    (warning,) = checked.err.splitlines()
    assert warning.startswith(f"warning: {config}: contracts.tokyo.locale: 'ja_JP': ")
    assert "not written in Japanese" in warning and "in English" in warning and "ko" in warning
    as_json = json.loads(bridge("--config", str(config), "--json", "config", "check").out)
    assert as_json["ok"] and as_json["problems"] == [] and len(as_json["warnings"]) == 1


def test_the_example_config_passes(bridge: Callable[..., Any], key: str) -> None:
    checked = bridge("--config", str(ROOT / "config" / "bridge.example.toml"), "config", "check")
    assert checked.code == 0, checked.err
    assert checked.out.startswith("config OK: ")
