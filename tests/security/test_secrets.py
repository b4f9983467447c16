"""Finding 6 of issue 15: secrets and private files.

Plans (`--out`) and the config are written through `bridge.files.write_private`: a fresh mkstemp file
beside the target, renamed over it, mode 0600; a symlink planted at the old predictable temporary name
(`.NAME.tmp`) is never followed.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from bridge.auth import link as linking
from bridge.errors import ConfigError
from bridge.files import write_private
from bridge_sandbox import Sandbox
from tests.security._text_fixtures import (
    Book,
    linked_book,
    module_sandbox,  # noqa: F401 (the fixture)
)


@pytest.fixture
def book(module_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Book:  # noqa: F811
    return linked_book(module_sandbox, tmp_path, monkeypatch)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- private files, written atomically ---------------------------------------------------------------


def test_write_private_makes_a_0600_file_and_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "plan.json"
    (tmp_path / ".plan.json.tmp").symlink_to(victim)  # the old fixed temporary name
    old_umask = os.umask(0)
    try:
        write_private(target, "{}")
    finally:
        os.umask(old_umask)
    assert target.read_text() == "{}" and _mode(target) == 0o600
    assert victim.read_text() == "precious"
    # A symlink at the target's own name is replaced, not written through.
    target.unlink()
    target.symlink_to(victim)
    write_private(target, "{}")
    assert not target.is_symlink() and victim.read_text() == "precious"
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == [".plan.json.tmp", "plan.json", "victim"]


def test_a_refused_check_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "bridge.toml"
    target.write_text("old")

    def refuse(path: Path) -> None:
        raise ConfigError("no")

    with pytest.raises(ConfigError):
        write_private(target, "new", check=refuse)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["bridge.toml"]


def test_plan_out_is_private_and_a_planted_symlink_at_the_temp_name_is_not_followed(  # type: ignore[no-untyped-def]
    bridge, book: Book, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "plan.json"
    (tmp_path / ".plan.json.tmp").symlink_to(victim)
    result = bridge(*book.args("--json", "sync", "--dry-run", "--out", str(out)))
    assert result.code == 0, result.err
    assert json.loads(out.read_text())["actions"] and _mode(out) == 0o600
    assert victim.read_text() == "precious"


def test_link_writes_the_config_0600_and_never_through_a_planted_symlink(  # type: ignore[no-untyped-def]
    bridge,
    module_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book = linked_book(module_sandbox, tmp_path, monkeypatch)
    os.chmod(book.config, 0o644)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".bridge.toml.tmp").symlink_to(victim)
    result = bridge("--config", str(book.config), "link", "xero", "--base-url", module_sandbox.base_url)
    assert result.code == 0, result.err
    assert 'provider = "xero"' in book.config.read_text() and _mode(book.config) == 0o600
    assert victim.read_text() == "precious"
    removed = bridge("--config", str(book.config), "connections", "remove", "xero")
    assert removed.code == 0, removed.err
    assert _mode(book.config) == 0o600 and victim.read_text() == "precious"


# -- the link callback server (finding 5) --------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, str]:
    import requests

    answer = requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    return answer.status_code, answer.text


def test_the_callback_server_is_not_stalled_by_idle_or_tls_connections_and_ignores_a_wrong_state() -> None:
    import socket
    import threading
    import time

    port = _free_port()
    idle: list[socket.socket] = []
    answers: list[tuple[int, str]] = []

    def browser(url: str) -> None:
        def visit() -> None:
            idle.append(socket.create_connection(("127.0.0.1", port)))  # connects, never sends a byte
            tls = socket.create_connection(("127.0.0.1", port))
            tls.sendall(bytes.fromhex("16030100a5010000a10303") + b"\x00" * 32)  # a TLS ClientHello's start
            idle.append(tls)
            answers.append(_get(port, "/callback?code=stolen&state=forged"))
            answers.append(_get(port, "/callback?code=x&state=%C3%BC%F0%9F%92%A5"))  # non-ASCII state
            answers.append(_get(port, "/favicon.ico"))
            answers.append(_get(port, "/callback?code=abc&state=the-state"))

        visitor.append(threading.Thread(target=visit, daemon=True))
        visitor[0].start()

    visitor: list[threading.Thread] = []
    started = time.monotonic()
    params = linking.LoopbackCallback(port=port, timeout=20, open_browser=browser)(
        "https://consent.example/authorize?client_id=c&state=the-state"
    )
    elapsed = time.monotonic() - started
    visitor[0].join(10)  # the flow ends once the server has the callback, maybe before the browser read its page
    for sock in idle:
        sock.close()
    assert params == {"code": "abc", "state": "the-state"}
    assert [status for status, _ in answers] == [400, 400, 404, 200]
    assert "does not match" in answers[0][1] and "close this tab" in answers[3][1]
    assert elapsed < 3, f"the flow took {elapsed:.2f} s with an idle connection open"
    print(f"callback with idle and TLS connections open, two wrong states and a 404 first: {elapsed:.2f} s")


def test_a_link_through_the_loopback_server_completes_with_an_idle_connection_open(
    module_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    import socket
    import threading
    import time

    import requests
    from cryptography.fernet import Fernet

    from bridge.auth.vault import TokenVault
    from bridge.store import Store

    module_sandbox.reset()
    port = _free_port()
    app = linking.App("c", "s", f"http://127.0.0.1:{port}/callback")
    held: list[socket.socket] = []
    strays: list[int] = []

    def browser(url: str) -> None:
        def consent() -> None:
            held.append(socket.create_connection(("127.0.0.1", port)))
            strays.append(_get(port, "/callback?code=attacker&state=guess")[0])
            location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
            requests.get(location, timeout=10)

        threading.Thread(target=consent, daemon=True).start()

    started = time.monotonic()
    with Store.open(f"sqlite:///{tmp_path / 'b.db'}") as store:
        vault = TokenVault(store, Fernet(Fernet.generate_key()))
        linked = linking.link(
            store,
            vault,
            "xero",
            name="acme-xero",
            app=app,
            base_url=module_sandbox.base_url,
            receive=linking.LoopbackCallback(port=port, timeout=20, open_browser=browser),
            choose=linking.pick(None),
        )
        assert vault.load("acme-xero")[0].access_token
    elapsed = time.monotonic() - started
    for sock in held:
        sock.close()
    assert linked.tenant.id and strays == [400]
    assert elapsed < 5, f"link took {elapsed:.2f} s with an idle connection open"
    print(f"link with an idle connection open and a stray callback: {elapsed:.2f} s")


def test_a_pasted_address_gets_clear_errors(  # type: ignore[no-untyped-def]
    bridge,
    module_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import re
    from urllib.parse import parse_qs, urlsplit

    from cryptography.fernet import Fernet

    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    config = tmp_path / "bridge.toml"

    def state_of_consent() -> str:
        shown = capsys.readouterr().err.replace("\n", "")
        url = re.search(r"(http://\S+/connect/authorize\?\S+)", shown)
        assert url, shown
        return parse_qs(urlsplit(url.group(1)).query)["state"][0]

    cases = [
        (lambda: "not an address at all", 2, "not the address the consent page sent you to"),
        (lambda: "http://[::1/callback?code=x", 2, "not the address the consent page sent you to"),
        (lambda: "http://127.0.0.1:8719/callback?code=x&state=%C3%BC%E2%82%AC", 1, "does not match"),
        (lambda: "http://127.0.0.1:8719/callback?code=x&state=ü€\u202e", 1, "does not match"),
        (lambda: "http://127.0.0.1:8719/callback?code=x", 1, "carries no state"),
        (lambda: f"http://127.0.0.1:8719/callback?state={state_of_consent()}", 1, "no authorization code"),
    ]
    for pasted, code, message in cases:
        monkeypatch.setattr("click.prompt", lambda *a, pasted=pasted, **k: pasted())
        result = bridge("--config", str(config), "link", "xero", "--manual", "--base-url", module_sandbox.base_url)
        assert result.code == code, (pasted(), result.err)
        assert message in result.err and "Traceback" not in result.err and "TypeError" not in result.err
        assert not config.exists()


# -- the client secret never on the command line -------------------------------------------------------


def test_link_takes_no_client_secret_option(bridge, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = bridge("--config", str(tmp_path / "bridge.toml"), "link", "xero", "--client-secret", "s3cret")
    assert (
        result.code == 2
        and "--client-secret is not taken" in result.err
        and "BRIDGE_<PROVIDER>_CLIENT_SECRET" in result.err
    )
    assert "s3cret" not in result.err
    assert not (tmp_path / "bridge.toml").exists()


def test_link_asks_for_the_secret_at_a_hidden_prompt_on_a_terminal_and_never_shows_it(  # type: ignore[no-untyped-def]
    bridge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.fernet import Fernet

    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    monkeypatch.delenv("BRIDGE_XERO_CLIENT_SECRET", raising=False)
    monkeypatch.setenv("BRIDGE_XERO_CLIENT_ID", "our-app")
    asked: list[dict[str, object]] = []

    def prompt(text: str, **kwargs: object) -> str:
        asked.append({"text": text, **kwargs})
        return "typed-secret-value"

    seen: list[linking.App] = []

    def receive(url: str) -> dict[str, str]:
        raise ConfigError("stop here: the consent is not the point")

    real_app_for = linking.app_for

    def app_for(*args: object, **kwargs: object) -> linking.App:
        app = real_app_for(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(app)
        return app

    monkeypatch.setattr("click.prompt", prompt)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr(linking, "app_for", app_for)
    monkeypatch.setattr(linking, "LoopbackCallback", lambda **kwargs: receive)
    result = bridge("--config", str(tmp_path / "bridge.toml"), "link", "xero")
    assert result.code == 2 and "stop here" in result.err
    assert asked and asked[0]["hide_input"] is True and "client secret" in str(asked[0]["text"])
    assert seen[0].client_secret == "typed-secret-value"
    assert "typed-secret-value" not in result.out + result.err
    # Not on a terminal: no prompt, an error naming the variable.
    asked.clear()
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    headless = bridge("--config", str(tmp_path / "bridge.toml"), "link", "xero")
    assert headless.code == 2 and "BRIDGE_XERO_CLIENT_SECRET" in headless.err and not asked


# -- key rotation ---------------------------------------------------------------------------------------


def test_secrets_rotate_moves_every_token_to_the_new_key_and_sync_works_throughout(  # type: ignore[no-untyped-def]
    bridge, book: Book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.fernet import Fernet

    from bridge.auth.vault import TokenVault
    from bridge.store import Store

    store_url = f"sqlite:///{tmp_path / 'bridge.db'}"
    old, new = book.key, Fernet.generate_key().decode()
    # A second connection, so that more than one token is rotated.
    with Store.open(store_url) as store:
        linking.link_sandbox("xero", store, TokenVault(store, Fernet(old.encode())), book.sandbox.base_url, "acme-xero")
    # The new key alone cannot read what the old one wrote: a clear error naming the variable.
    monkeypatch.setenv("BRIDGE_SECRET_KEY", new)
    locked_out = bridge(*book.args("sync", "--dry-run", "--connection", "acme-qbo"))
    assert locked_out.code != 0 and "BRIDGE_SECRET_KEY_OLD" in locked_out.both
    # During the rotation both keys are given: syncs work.
    monkeypatch.setenv("BRIDGE_SECRET_KEY_OLD", f" {Fernet.generate_key().decode()},{old} ")
    assert bridge(*book.args("sync", "--dry-run", "--connection", "acme-qbo")).code == 0
    rotated = bridge(*book.args("--json", "secrets", "rotate"))
    assert rotated.code == 0, rotated.err
    assert json.loads(rotated.out) == {"reencrypted": 2, "unreadable": []}
    assert "Re-encrypted 2 token(s)" in rotated.err and "can be removed" in " ".join(rotated.err.split())
    # Afterwards the new key alone reads everything, a real sync runs, the old key reads nothing.
    monkeypatch.delenv("BRIDGE_SECRET_KEY_OLD")
    real = bridge(*book.args("sync", "--connection", "acme-qbo"))
    assert real.code == 0, real.err
    with Store.open(store_url) as store:
        for name in ("acme-qbo", "acme-xero"):
            assert TokenVault(store, Fernet(new.encode())).load(name)[0].access_token
            with pytest.raises(Exception, match="cannot be decrypted"):
                TokenVault(store, Fernet(old.encode())).load(name)
    again = bridge(*book.args("secrets", "rotate"))
    assert again.code == 0 and "Re-encrypted 2 token(s)" in again.out


def test_secrets_rotate_reports_tokens_no_key_can_read_and_exits_1(  # type: ignore[no-untyped-def]
    bridge, book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.fernet import Fernet

    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    result = bridge(*book.args("secrets", "rotate"))
    assert result.code == 1 and "No key could read the tokens of acme-qbo" in result.out
    monkeypatch.setenv("BRIDGE_SECRET_KEY_OLD", "not-a-key")
    bad = bridge(*book.args("secrets", "rotate"))
    assert (
        bad.code == 2 and "$BRIDGE_SECRET_KEY_OLD (key 1) is not a Fernet key" in bad.err and "not-a-key" not in bad.err
    )
