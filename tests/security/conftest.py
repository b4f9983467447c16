"""Hostile providers for the security tests: a small HTTP server on 127.0.0.1 that answers as told (the same
page for ever, lying page counts, a body dripped a byte at a time, a token endpoint that never answers), and
a book that links a hostile connection beside a well-behaved one from the sandbox, run through the real
`bridge` command in a subprocess (so a hang shows as a timeout of the test, never as a hung test run)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.fernet import Fernet

from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenSet, TokenVault
from bridge.clock import now_utc
from bridge.store import Store
from bridge_sandbox import Sandbox
from tests.runner import Result, run_bridge

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-10-20"
# The tenant ids the hostile connections use (any will do: the hostile server ignores them).
TENANTS = {"quickbooks": "4620816365000000001", "xero": "b5a3b1f5-0000-4000-8000-000000000001", "freshbooks": "ACCT1"}


@dataclass(frozen=True)
class Hit:
    """One request the hostile server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    at: float
    raw_path: str = ""
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


Reply = Callable[[BaseHTTPRequestHandler, "Hostile", Hit], None]


class Hostile:
    """An HTTP server on 127.0.0.1 whose every answer is `answer(hit)`: a `Reply` that writes to the handler."""

    def __init__(self, answer: Callable[[Hit], Reply]) -> None:
        self.answer = answer
        self.hits: list[Hit] = []
        self.stop = threading.Event()
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                hit = Hit(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    time.monotonic(),
                    self.path,
                    body,
                    tuple(self.headers.items()),
                )
                hostile.hits.append(hit)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up: the point
                    hostile.answer(hit)(self, hostile, hit)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Hostile:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()

    def count(self, fragment: str) -> int:
        """How many requests had `fragment` in their path."""
        return sum(1 for hit in self.hits if fragment in hit.path)


def send_json(body: Any, status: int = 200) -> Reply:
    return send_bytes(json.dumps(body).encode(), status)


def send_bytes(body: bytes, status: int = 200) -> Reply:
    def reply(handler: BaseHTTPRequestHandler, hostile: Hostile, hit: Hit) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return reply


def drip(every: float = 0.5, size: int = 10_000) -> Reply:
    """Headers at once, then a JSON body one byte every `every` seconds (for ever, in practice)."""

    def reply(handler: BaseHTTPRequestHandler, hostile: Hostile, hit: Hit) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(size))
        handler.end_headers()
        handler.wfile.flush()
        for _ in range(size):
            if hostile.stop.wait(every):
                return
            handler.wfile.write(b" ")
            handler.wfile.flush()

    return reply


def drip_headers(every: float = 0.5) -> Reply:
    """The status line, then header bytes one every `every` seconds (for ever, in practice)."""

    def reply(handler: BaseHTTPRequestHandler, hostile: Hostile, hit: Hit) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        handler.wfile.flush()
        for _ in range(60_000):
            if hostile.stop.wait(every):
                return
            handler.wfile.write(b"a")
            handler.wfile.flush()

    return reply


def never_answer(handler: BaseHTTPRequestHandler, hostile: Hostile, hit: Hit) -> None:
    """Read the request, then say nothing until the server stops."""
    hostile.stop.wait(600)


def forward(target: str) -> Reply:
    """Relay the request to `target` (the sandbox) and its answer back: a well-behaved provider, through us."""

    def reply(handler: BaseHTTPRequestHandler, hostile: Hostile, hit: Hit) -> None:
        headers = {k: v for k, v in hit.headers if k.lower() not in ("host", "content-length", "connection")}
        answer = requests.request(hit.method, target + hit.raw_path, headers=headers, data=hit.body, timeout=30)
        handler.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in ("content-length", "content-encoding", "transfer-encoding", "connection"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer.content)))
        handler.end_headers()
        handler.wfile.write(answer.content)

    return reply


@dataclass
class Run:
    code: int
    plan: dict[str, Any]
    stderr: str
    seconds: float

    def errors_of(self, connection: str) -> list[str]:
        return [e["error"] for e in self.plan.get("errors", []) if e["connection"] == connection]

    def actions_of(self, connection: str) -> set[str]:
        return {a["key"] for a in self.plan.get("actions", []) if a["connection"] == connection}

    def applied(self) -> set[str]:
        return {a["key"] for a in self.plan.get("applied", [])}


@dataclass
class Book:
    """A store and a config: linked sandbox connections (well-behaved) and hostile ones (tokens planted)."""

    folder: Path
    sandbox: Sandbox
    key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    blocks: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"sqlite:///{self.folder / 'bridge.db'}"

    def _vault(self, store: Store) -> TokenVault:
        return TokenVault(store, Fernet(self.key.encode()))

    def good(self, provider: str, name: str, *, through: str | None = None) -> None:
        """Link a sandbox connection; `through`: the base URL the connector uses instead (a relay)."""
        with Store.open(self.url) as store:
            tenant = link_sandbox(provider, store, self._vault(store), self.sandbox.base_url, name)
        self.blocks.append(self._block(name, provider, tenant, through or self.sandbox.base_url))

    def hostile(
        self,
        provider: str,
        name: str,
        base_url: str,
        *,
        timeout_seconds: int = 1,
        sync_deadline_seconds: int = 10,
        expired: bool = False,
    ) -> None:
        tenant = TENANTS[provider]
        with Store.open(self.url) as store:
            store.upsert_connection(name, provider, tenant, base_url)
            now = now_utc()
            expires = now - timedelta(hours=1) if expired else now + timedelta(hours=1)
            self._vault(store).save(name, TokenSet("hostile-access", "hostile-refresh", expires))
        extra = f"timeout_seconds = {timeout_seconds}\nsync_deadline_seconds = {sync_deadline_seconds}\n"
        self.blocks.append(self._block(name, provider, tenant, base_url) + extra)

    @staticmethod
    def _block(name: str, provider: str, tenant: str, base_url: str) -> str:
        return (
            f'[[connections]]\nname = "{name}"\nprovider = "{provider}"\ntenant_id = "{tenant}"\n'
            f'base_url = "{base_url}"\ncalls_per_minute = 100000\n'
        )

    @property
    def config(self) -> Path:
        path = self.folder / "bridge.toml"
        path.write_text(
            f'[store]\nurl = "{self.url}"\n\n'
            + "\n".join(self.blocks)
            + "\n"
            + (ROOT / "config" / "demo.toml").read_text()
        )
        return path

    def start(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "BRIDGE_SECRET_KEY": self.key}
        return subprocess.Popen(
            [sys.executable, "-m", "bridge", "--config", str(self.config), "--as-of", AS_OF, "--json", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.folder,
        )

    def run(self, *args: str, within: float = 90) -> Run:
        """Run `bridge ARGS` to its end; the test fails (and the process is killed) if it takes over `within` s."""
        started = time.monotonic()
        proc = self.start(*args)
        try:
            out, err = proc.communicate(timeout=within)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"bridge {' '.join(args)} did not finish within {within} s:\n{err[-3000:]}")
        seconds = time.monotonic() - started
        try:
            plan = json.loads(out) if out.strip() else {}
        except ValueError:
            plan = {"unparsed": out}
        return Run(proc.returncode, plan, err, seconds)


@pytest.fixture
def bridge(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """The real `bridge` entry point in-process (tests/runner.py)."""
    return run_bridge(capsys, monkeypatch)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as box:
        yield box


@pytest.fixture
def book(tmp_path: Path, sandbox: Sandbox) -> Book:
    return Book(tmp_path, sandbox)
