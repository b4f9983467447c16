"""A real `bridge serve` (a process, uvicorn on a loopback port) beside a sandbox that sends it webhooks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.store import Store
from bridge_sandbox import Sandbox, WebhookSettings
from tests.cli.qbo import Book

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_KEY = "sandbox-webhook-key-for-tests"
WEBHOOK_ENV = "BRIDGE_TEST_QBO_WEBHOOK_KEY"
NAME = "acme-qbo"  # the name tests.cli.qbo.Book pays into


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll `check()` until it returns something true (a generous timeout: no timed assertion)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@dataclass
class Server:
    """A linked QuickBooks book, its config, and (once started) the `bridge serve` process."""

    sandbox: Sandbox
    dir: Path
    key: str
    realm: str
    port: int
    proc: subprocess.Popen[str] | None = None
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.dir / "bridge.toml"

    def env(self) -> dict[str, str]:
        return {**os.environ, "BRIDGE_SECRET_KEY": self.key, WEBHOOK_ENV: WEBHOOK_KEY}

    def start(self, *more: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "--config", str(self.config), "serve", "--port", str(self.port), *more],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=open(self.dir / "serve.log", "w"),  # noqa: SIM115 (closed with the process)
            text=True,
        )
        wait_until(self._healthy, "the server to answer /healthz")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"bridge serve exited {self.proc.returncode}: {self.log_text()}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def log_text(self) -> str:
        path = self.dir / "serve.log"
        return path.read_text() if path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_text().splitlines() if line.strip()]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=120)

    def metrics(self) -> str:
        return requests.get(f"{self.url}/metrics", timeout=10).text

    def metric(self, name: str, **labels: str) -> float:
        """One sample's value from /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def store(self) -> Store:
        return Store.open(f"sqlite:///{self.dir / 'bridge.db'}")

    def pay_in_full(self, number: str) -> None:
        """A client pays at QuickBooks: a Payment for the whole balance (the sandbox then sends its webhook)."""
        Book(self.sandbox, self.config, self.key, self.realm).pay_in_full(number)


def write_config(path: Path, name: str, provider: str, base_url: str, tenant: str, *, webhook_env: bool = True) -> None:
    keys = f'webhook_secret_env = "{WEBHOOK_ENV}"\n' if webhook_env else ""
    path.write_text(
        '[store]\nurl = "sqlite:///bridge.db"\n\n[server]\nworkers = 2\n\n'
        f'[[connections]]\nname = "{name}"\nprovider = "{provider}"\ntenant_id = "{tenant}"\n'
        f'base_url = "{base_url}"\nschedule = "0 7 * * *"\ntimezone = "America/New_York"\n{keys}\n'
        + (ROOT / "config" / "demo.toml").read_text()
    )


def make_server(
    tmp_path: Path, *, provider: str = "quickbooks", name: str = NAME, latency_ms: int = 0, webhooks: bool = True
) -> Iterator[Server]:
    """A sandbox (sending webhooks to the server unless `webhooks` is false), one linked connection, its config."""
    port = free_port()
    settings = WebhookSettings(f"http://127.0.0.1:{port}/webhooks", WEBHOOK_KEY) if webhooks else None
    with Sandbox(rate_limits=False, latency_ms=latency_ms, webhooks=settings) as sandbox:
        key = Fernet.generate_key().decode()
        with Store.open(f"sqlite:///{tmp_path / 'bridge.db'}") as store:
            tenant = link_sandbox(provider, store, TokenVault(store, Fernet(key.encode())), sandbox.base_url, name)
        write_config(tmp_path / "bridge.toml", name, provider, sandbox.base_url, tenant, webhook_env=webhooks)
        server = Server(sandbox, tmp_path, key, tenant, port)
        try:
            yield server
        finally:
            if server.proc is not None and server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from make_server(tmp_path)


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[Server]:
    yield from make_server(tmp_path, latency_ms=40)
