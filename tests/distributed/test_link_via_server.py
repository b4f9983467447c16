"""`bridge link PROVIDER --via-server URL`: the provider's redirect lands on the server's
`/oauth/{provider}/callback`, and `bridge link` finishes the link (state, PKCE, exchange, tenant, encrypted tokens).

The server is the real HTTP stack (Starlette on uvicorn, on a free loopback port); the provider is the sandbox,
whose consent page redirects at once to the redirect URI it is given (here, the server's).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from cryptography.fernet import Fernet
from starlette.applications import Starlette

from bridge.auth.vault import TokenVault
from bridge.server.oauth import CallbackBox, oauth_routes
from bridge.store import Store
from bridge_sandbox import Sandbox, default_seed

ROOT = Path(__file__).resolve().parents[2]


class Box(CallbackBox):
    """The server's box, noting which providers' redirects it accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[str] = []

    def deliver(self, provider: str, params: dict[str, str]) -> bool:
        kept = super().deliver(provider, params)
        if kept:
            self.accepted.append(provider)
        return kept


@pytest.fixture
def server() -> Iterator[tuple[str, Box]]:
    """The OAuth routes served on a free loopback port."""
    box = Box()
    config = uvicorn.Config(
        Starlette(routes=oauth_routes(box)), host="127.0.0.1", port=0, log_config=None, lifespan="off"
    )
    app_server = uvicorn.Server(config)
    thread = threading.Thread(target=app_server.run, daemon=True)
    thread.start()
    started = threading.Event()
    while not app_server.started and thread.is_alive():
        started.wait(0.02)
    assert app_server.started, "the server did not start"
    port = app_server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", box
    app_server.should_exit = True
    thread.join(10)


@pytest.fixture
def config(tmp_path: Path, module_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", key)
    for provider in ("QUICKBOOKS", "XERO", "FRESHBOOKS"):
        monkeypatch.delenv(f"BRIDGE_{provider}_CLIENT_ID", raising=False)
        monkeypatch.delenv(f"BRIDGE_{provider}_CLIENT_SECRET", raising=False)
    module_sandbox.reset(default_seed())
    path = tmp_path / "bridge.toml"
    path.write_text('[store]\nurl = "sqlite:///bridge.db"\n\n' + (ROOT / "config" / "demo.toml").read_text())
    return path, key


@pytest.mark.parametrize("provider", ["quickbooks", "xero", "freshbooks"])
def test_linking_through_the_server_stores_the_tokens_and_the_connection_works(
    bridge: Callable[..., Any],
    module_sandbox: Sandbox,
    config: tuple[Path, str],
    server: tuple[str, Box],
    provider: str,
) -> None:
    path, key = config
    url, box = server
    name = f"acme-{provider}"
    linked = bridge(
        "--config", str(path), "link", provider, "--name", name,
        "--base-url", module_sandbox.base_url, "--via-server", url,
    )  # fmt: skip
    assert linked.code == 0, linked.err
    assert f'name = "{name}"' in path.read_text()
    with Store.open(f"sqlite:///{path.parent / 'bridge.db'}") as store:
        tokens, _ = TokenVault(store, Fernet(key.encode())).load(name)
    assert tokens.access_token and tokens.refresh_token
    checked = bridge("--config", str(path), "connections", "check", name)
    assert checked.code == 0, checked.err
    # The redirect came through the server (once), and the server kept nothing after it was collected.
    assert box.accepted == [provider]
    assert box._slots == {}


def test_a_redirect_nobody_announced_is_refused_and_not_kept(server: tuple[str, Box]) -> None:
    url, _ = server
    answer = requests.get(f"{url}/oauth/xero/callback", params={"code": "c0de", "state": "forged"}, timeout=10)
    assert answer.status_code == 400
    assert requests.post(f"{url}/oauth/xero/result", json={"state": "forged"}, timeout=10).status_code == 404


def test_the_redirect_is_handed_out_once_and_only_for_its_provider_and_state(server: tuple[str, Box]) -> None:
    url, _ = server
    state = "s-" + "x" * 30

    def callback(provider: str, code: str) -> int:
        return requests.get(
            f"{url}/oauth/{provider}/callback", params={"state": state, "code": code}, timeout=10
        ).status_code

    def result(asked: str) -> requests.Response:
        return requests.post(f"{url}/oauth/xero/result", json={"state": asked}, timeout=10)

    assert requests.post(f"{url}/oauth/xero/start", json={"state": state}, timeout=10).status_code == 201
    assert result(state).status_code == 202
    assert callback("quickbooks", "a") == 400  # another provider's redirect with this state is not this attempt's
    assert callback("xero", "c0de") == 200
    assert callback("xero", "evil") == 400  # a second redirect for the same state does not replace the first
    assert result("other").status_code == 404
    first = result(state)
    assert first.status_code == 200 and first.json()["params"] == {"state": state, "code": "c0de"}
    assert result(state).status_code == 404


def test_an_unknown_provider_or_a_bad_body_is_refused(server: tuple[str, Box]) -> None:
    url, _ = server
    assert requests.post(f"{url}/oauth/nosuch/start", json={"state": "s"}, timeout=10).status_code == 404
    assert requests.post(f"{url}/oauth/xero/start", data=b"state=s", timeout=10).status_code == 400
    assert requests.post(f"{url}/oauth/xero/start", json={"state": 5}, timeout=10).status_code == 400


def test_via_server_wants_https_for_a_real_provider(bridge: Callable[..., Any], config: tuple[Path, str]) -> None:
    path, _ = config
    refused = bridge(
        "--config", str(path), "link", "freshbooks", "--client-id", "x", "--via-server", "http://bridge.example.com"
    )
    assert refused.code == 2
    assert "https" in refused.err and "--via-server" in refused.err
    both = bridge("--config", str(path), "link", "xero", "--manual", "--via-server", "https://bridge.example.com")
    assert both.code == 2 and "--manual" in both.err
