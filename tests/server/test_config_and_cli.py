"""`[server]` and the per-connection server keys are validated like the rest (exit 2, key named);
`bridge serve` without connections says what to do next."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runner import run_bridge


@pytest.fixture
def bridge(capsys, monkeypatch):
    return run_bridge(capsys, monkeypatch)


def _config(tmp_path: Path, server: str = "", connection: str = "") -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(
        f'[store]\nurl = "sqlite:///bridge.db"\n\n[server]\n{server}\n\n'
        '[[connections]]\nname = "acme-qbo"\nprovider = "quickbooks"\ntenant_id = "1"\n'
        f"{connection}\n"
    )
    return path


def test_every_server_key_is_accepted(bridge, tmp_path: Path, monkeypatch) -> None:
    from cryptography.fernet import Fernet

    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("BRIDGE_QUICKBOOKS_CLIENT_ID", "app-id")  # a real service's connection refreshes with these
    monkeypatch.setenv("BRIDGE_QUICKBOOKS_CLIENT_SECRET", "app-secret")
    config = _config(
        tmp_path,
        'host = "0.0.0.0"\nport = 8720\npublic_url = "https://bridge.example.com/"\nbroker = ""\nworkers = 4',
        'schedule = "0 7 * * 1-5"\ntimezone = "Europe/London"\nreview = "required"\n'
        'webhook_secret_env = "BRIDGE_ACME_QBO_WEBHOOK_KEY"',
    )
    result = bridge("--config", str(config), "config", "check")
    assert result.code == 0, result.both


@pytest.mark.parametrize(
    ("server", "connection", "key"),
    [
        ("", 'schedule = "every morning"', "connections[0].schedule"),
        ("", 'schedule = "0 7 * *"', "connections[0].schedule"),
        ("", 'timezone = "Mars/Olympus"', "connections[0].timezone"),
        ("", 'review = "sometimes"', "connections[0].review"),
        (
            "",
            'webhook_secret_env = "a-very-long-webhook-key-pasted-in-here-by-mistake"',
            "connections[0].webhook_secret_env",
        ),
        ("port = 70000", "", "server.port"),
        ('broker = "amqp://127.0.0.1"', "", "server.broker"),
        ('public_url = "bridge.example.com"', "", "server.public_url"),
        ("workers = 0", "", "server.workers"),
        ("wokers = 2", "", "server.wokers"),
    ],
)
def test_a_bad_server_key_is_exit_2_naming_it(bridge, tmp_path: Path, server: str, connection: str, key: str) -> None:
    result = bridge("--config", str(_config(tmp_path, server, connection)), "config", "check")
    assert result.code == 2, result.both
    assert key in result.err


def test_serve_without_connections_says_what_to_do_next(bridge, tmp_path: Path, monkeypatch) -> None:
    from cryptography.fernet import Fernet

    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    config = tmp_path / "bridge.toml"
    config.write_text('[store]\nurl = "sqlite:///bridge.db"\n')
    result = bridge("--config", str(config), "serve", "--port", "0")
    assert result.code == 2
    assert "bridge link" in result.err and "bridge serve" in result.err
