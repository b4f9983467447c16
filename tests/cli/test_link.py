"""`bridge link` and `bridge connections` end to end against the sandbox, through the SDKs' own auth clients."""

from __future__ import annotations

import json
import logging
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from bridge.auth import link as linking
from bridge.auth.vault import TokenVault
from bridge.config_edit import upsert_connection
from bridge.errors import AuthError
from bridge.store import Store
from bridge_sandbox import Sandbox, default_seed
from bridge_sandbox.xero_books import build_xero_org

ROOT = Path(__file__).resolve().parents[2]
USER_CONFIG = """# Our firm's bridge: keep this comment
[store]
url = "sqlite:///bridge.db"   # next to this file

"""


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = Fernet.generate_key().decode()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", value)
    for provider in ("QUICKBOOKS", "XERO", "FRESHBOOKS"):
        monkeypatch.delenv(f"BRIDGE_{provider}_CLIENT_ID", raising=False)
        monkeypatch.delenv(f"BRIDGE_{provider}_CLIENT_SECRET", raising=False)
    return value


@pytest.fixture
def config(tmp_path: Path, module_sandbox: Sandbox, key: str) -> Path:
    module_sandbox.reset(default_seed())
    path = tmp_path / "bridge.toml"
    path.write_text(USER_CONFIG + (ROOT / "config" / "demo.toml").read_text())
    return path


def tokens_of(config: Path, key: str, name: str) -> Any:
    with Store.open(f"sqlite:///{config.parent / 'bridge.db'}") as store:
        return TokenVault(store, Fernet(key.encode())).load(name)[0]


@pytest.mark.parametrize(
    ("provider", "name"), [("quickbooks", "acme-qbo"), ("xero", "acme-xero"), ("freshbooks", "acme-freshbooks")]
)
def test_link_writes_the_connection_and_sync_can_use_it_right_after(
    bridge: Callable[..., Any], module_sandbox: Sandbox, config: Path, key: str, provider: str, name: str
) -> None:
    base = module_sandbox.base_url
    linked = bridge("--config", str(config), "link", provider, "--name", name, "--base-url", base)
    assert linked.code == 0, linked.err
    assert f"Linked {name}" in linked.err
    text = config.read_text()
    assert text.startswith("# Our firm's bridge: keep this comment") and "# next to this file" in text
    assert f'name = "{name}"' in text and f'provider = "{provider}"' in text
    assert stat.S_IMODE((config.parent / "bridge.db").stat().st_mode) == 0o600
    dry = bridge("--config", str(config), "--as-of", "2026-10-20", "--json", "sync", "--dry-run")
    assert dry.code == 0, dry.err
    assert {a["connection"] for a in json.loads(dry.out)["actions"]} == {name}
    listed = json.loads(bridge("--config", str(config), "--json", "connections", "list").out)
    assert [(c["name"], c["linked"]) for c in listed] == [(name, True)]
    checked = bridge("--config", str(config), "connections", "check", name)
    assert checked.code == 0 and "ok" in checked.out


def test_a_wrong_or_missing_state_is_refused_and_nothing_is_stored(module_sandbox: Sandbox, tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'b.db'}")
    vault = TokenVault(store, Fernet(Fernet.generate_key()))
    for tamper, message in (({"state": "forged"}, "does not match"), ({"state": ""}, "no state")):

        def receive(url: str, tamper: dict[str, str] = tamper) -> dict[str, str]:
            return {**linking.follow_redirect(url), **tamper}

        with pytest.raises(AuthError, match=message):
            linking.link(
                store,
                vault,
                "xero",
                name="x",
                app=linking.App("c", "s"),
                base_url=module_sandbox.base_url,
                receive=receive,
                choose=linking.pick(None),
            )
    assert store.get_connection("x") is None and store.load_token("x") is None
    store.close()


def test_xero_with_several_organisations_needs_a_choice(bridge: Callable[..., Any], tmp_path: Path, key: str) -> None:
    second = {
        **build_xero_org(),
        "tenant_id": "0b7e3f2a-9c4d-4e1b-8a6f-2d5c7e9b1a30",
        "Organisation": {"Name": "Second Org"},
    }
    with Sandbox({**default_seed(), "xero": [build_xero_org(), second]}, rate_limits=False) as sandbox:
        config = tmp_path / "bridge.toml"
        args = ["--config", str(config), "link", "xero", "--base-url", sandbox.base_url]
        unsure = bridge(*args)
        assert unsure.code == 2 and "--tenant" in unsure.err and "Second Org" in unsure.err
        assert not config.exists()
        chosen = bridge(*args, "--tenant", second["tenant_id"])
        assert chosen.code == 0, chosen.err
        assert second["tenant_id"] in config.read_text()


def test_manual_mode_prints_the_consent_url_and_takes_the_pasted_redirect(
    bridge: Callable[..., Any],
    module_sandbox: Sandbox,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def paste(text: str, **kwargs: Any) -> str:
        shown = capsys.readouterr().err
        url = re.search(r"(http://\S+/connect/authorize\?\S+)", shown.replace("\n", ""))
        assert url, shown
        # What the person does in a browser: consent, then copy the address they are sent to.
        return str(requests.get(url.group(1), allow_redirects=False, timeout=10).headers["Location"])

    monkeypatch.setattr("click.prompt", paste)
    result = bridge("--config", str(config), "link", "xero", "--manual", "--base-url", module_sandbox.base_url)
    assert result.code == 0, result.err
    assert 'provider = "xero"' in config.read_text()


def test_remove_revokes_the_tokens_and_takes_the_connection_out(
    bridge: Callable[..., Any], module_sandbox: Sandbox, config: Path, key: str
) -> None:
    assert bridge("--config", str(config), "link", "xero", "--base-url", module_sandbox.base_url).code == 0
    tokens = tokens_of(config, key, "xero")
    removed = bridge("--config", str(config), "connections", "remove", "xero")
    assert removed.code == 0, removed.err and "revoked" in removed.out
    assert 'name = "xero"' not in config.read_text() and "keep this comment" in config.read_text()
    refused = requests.post(
        f"{module_sandbox.base_url}/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
        auth=linking.SANDBOX_CLIENT,
        timeout=10,
    )
    assert refused.status_code == 400


def test_bad_options_are_usage_errors_that_name_the_option(
    bridge: Callable[..., Any], module_sandbox: Sandbox, config: Path
) -> None:
    bad_name = bridge("--config", str(config), "link", "xero", "--name", "a:b", "--base-url", module_sandbox.base_url)
    assert bad_name.code == 2 and "--name" in bad_name.err
    no_app = bridge("--config", str(config), "link", "xero")
    assert no_app.code == 2 and "BRIDGE_XERO_CLIENT_ID" in no_app.err
    bad_url = bridge("--config", str(config), "link", "xero", "--base-url", "ftp://x")
    assert bad_url.code == 2 and "--base-url" in bad_url.err
    assert "[[connections]]" not in config.read_text()


def test_no_token_code_or_secret_ever_appears_in_output_or_logs(
    bridge: Callable[..., Any],
    module_sandbox: Sandbox,
    config: Path,
    key: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    said: list[str] = []

    def run(*args: str) -> Any:
        result = bridge("--config", str(config), *args)
        said.extend([result.out, result.err])
        return result

    monkeypatch.setenv("BRIDGE_XERO_CLIENT_SECRET", "sandbox-secret-value")
    run("link", "xero", "--base-url", module_sandbox.base_url)
    # The emulator's limits are off here: let the client go faster than Xero's 60 calls a minute.
    upsert_connection(config, {"name": "xero", "calls_per_minute": 100_000})
    first = tokens_of(config, key, "xero")
    run("--as-of", "2026-10-20", "--json", "sync")
    run("-v", "--as-of", "2026-10-20", "sync", "--dry-run")
    second = tokens_of(config, key, "xero")
    # A failure path: the provider forgets the grant (revoked elsewhere), so the next call is refused.
    requests.post(
        f"{module_sandbox.base_url}/connect/revocation",
        data={"token": second.refresh_token},
        auth=linking.SANDBOX_CLIENT,
        timeout=10,
    )
    failed = run("connections", "check", "xero")
    assert failed.code != 0
    secrets_ = {first.access_token, first.refresh_token, second.access_token, second.refresh_token}
    secrets_.add("sandbox-secret-value")
    blob = "\n".join(said) + "\n".join(r.getMessage() for r in caplog.records)
    assert not [s for s in secrets_ if s in blob]
    with Store.open(f"sqlite:///{config.parent / 'bridge.db'}") as store:
        row = store.load_token("xero")
        assert row is not None and first.refresh_token.encode() not in row.ciphertext
        with pytest.raises(AuthError, match="cannot be decrypted"):
            TokenVault(store, Fernet(Fernet.generate_key())).load("xero")


def test_the_loopback_callback_answers_the_browser_once_and_shuts_down() -> None:
    import socket
    import threading

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pages: list[str] = []
    visits: list[threading.Timer] = []

    def browser(url: str) -> None:
        def visit() -> None:
            pages.append(requests.get(f"http://127.0.0.1:{port}/callback?code=abc&state=xyz", timeout=10).text)

        visits.append(threading.Timer(0.2, visit))
        visits[0].start()

    params = linking.LoopbackCallback(port=port, timeout=10, open_browser=browser)("https://consent.example?state=xyz")
    visits[0].join(10)
    assert params == {"code": "abc", "state": "xyz"}
    assert "close this tab" in pages[0]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/callback", timeout=2)  # the server is gone
