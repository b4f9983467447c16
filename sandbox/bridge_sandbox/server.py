"""One loopback HTTP server hosting every provider emulator, plus `/_sandbox/` control endpoints.

    with Sandbox() as sb:            # default seed, any free port
        base = sb.base_url           # http://127.0.0.1:54321
        ...                          # point the official SDKs at `base`

Control endpoints (never faulted, never rate-limited, never delayed):

    GET  /_sandbox/state      every object now, in the seed file's shape
    GET  /_sandbox/outbox     e-mails the emulated providers were asked to send
    GET  /_sandbox/requests   request log: provider, tenant, method, path, query, status, time, ...
    GET  /_sandbox/webhooks   webhook deliveries so far (with `webhooks=`: every change is sent, signed)
    GET  /_sandbox/faults     the fault settings in force
    POST /_sandbox/faults     {"quickbooks": {"429": 0.2, "seed": 7, "retry_after": 1}, ...}
                              kinds: drop, timeout, 429, 500, 503, expired_token, 429_no_retry_after,
                              lost_response (done, then the connection dropped); flag: stale_synctoken;
                              "routes": ["batch"] draws them on those routes only (by name)
    POST /_sandbox/reset      back to the seed; outbox, request log, faults and rate windows cleared
                              (an optional body {"seed": {...}} replaces the seed first)

Providers are found in `bridge_sandbox.core`'s registry; the built-in modules listed
in `BUILTIN_PROVIDER_MODULES` register themselves on import, and a module that does
not exist yet is skipped, so Xero and FreshBooks plug in by adding their module.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import errno
import importlib
import math
import random
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, cast
from urllib.parse import parse_qs, unquote, urlsplit

from bridge import clock as wall_clock
from bridge_sandbox.chat import ChatCapture
from bridge_sandbox.core import (
    FAULT_KINDS,
    FLAG_FAULTS,
    SMTP_FAULT_KINDS,
    Json,
    Provider,
    RateLimit,
    Request,
    Response,
    Route,
    SandboxError,
    clone,
    dumps,
    loads,
    paused_gc,
    registered_providers,
)
from bridge_sandbox.webhooks import WebhookSender, WebhookSettings, changes_of

BUILTIN_PROVIDER_MODULES: tuple[str, ...] = (
    "bridge_sandbox.quickbooks",
    "bridge_sandbox.xero",
    "bridge_sandbox.freshbooks",
)

DEFAULT_TIMEOUT_SECONDS = 30.0
"""How long a `timeout` fault stalls before dropping the connection (python-quickbooks sets no timeout at all)."""

Clock = Callable[[], datetime]
RateLimitSetting = bool | Literal["published", "strict", "off"] | Mapping[str, Sequence[RateLimit]]
RATE_LIMIT_MODES: tuple[str, ...] = ("published", "strict", "off")
"""`published`: each provider's published limits (the default); `strict`: half of each, at least 1, to see a
client's back-off sooner; `off`: none (bulk loads, benchmarks)."""


def load_builtin_providers() -> dict[str, type[Provider]]:
    """Import the built-in provider modules that exist and return the registry."""
    for module in BUILTIN_PROVIDER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # Only "this provider is not written yet" is skipped; a broken import inside it must surface.
            if exc.name != module:
                raise
    return registered_providers()


# ---------------------------------------------------------------------------------------------------- faults


@dataclass
class FaultSettings:
    """Fault injection for one provider: rates 0..1 per kind, a seeded RNG, and how faults behave."""

    rates: dict[str, float] = field(default_factory=dict)
    kinds: tuple[str, ...] = FAULT_KINDS  # the faults drawn (one at most per request)
    flag_kinds: tuple[str, ...] = FLAG_FAULTS  # the flags drawn independently
    seed: int | None = None
    retry_after: int = 1
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    include_oauth: bool = False
    routes: tuple[str, ...] = ()  # the route names faults are drawn on (e.g. "batch"); every route when empty
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def parse(cls, provider: str, spec: Json) -> FaultSettings:
        """Validate one provider's entry of a faults spec (`smtp`: the SMTP server's, with its own kinds)."""
        if not isinstance(spec, Mapping):
            raise SandboxError(f"faults.{provider}: expected an object, got {type(spec).__name__}")
        settings = cls(kinds=SMTP_FAULT_KINDS, flag_kinds=()) if provider == "smtp" else cls()
        known = {*settings.kinds, *settings.flag_kinds, "seed", "retry_after", "timeout_seconds", "include_oauth"}
        known.add("routes")
        for key, value in spec.items():
            if key not in known:
                raise SandboxError(f"faults.{provider}.{key}: unknown key (known: {', '.join(sorted(known))})")
            if key in settings.kinds or key in settings.flag_kinds:
                rate = _number(provider, key, value)
                if not 0.0 <= rate <= 1.0:
                    raise SandboxError(f"faults.{provider}.{key}: a rate must be between 0 and 1, got {value}")
                settings.rates[key] = rate
            elif key == "seed":
                if value is not None and not isinstance(value, int):
                    raise SandboxError(f"faults.{provider}.seed: expected an integer")
                settings.seed = value
            elif key == "retry_after":
                settings.retry_after = int(_number(provider, key, value))
                if settings.retry_after < 0:
                    raise SandboxError(f"faults.{provider}.retry_after: must be >= 0")
            elif key == "timeout_seconds":
                settings.timeout_seconds = _number(provider, key, value)
            elif key == "routes":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise SandboxError(f"faults.{provider}.routes: expected a list of route names")
                settings.routes = tuple(value)
            else:
                settings.include_oauth = bool(value)
        if sum(settings.rates.get(kind, 0.0) for kind in settings.kinds) > 1.0 + 1e-9:
            raise SandboxError(f"faults.{provider}: the rates of {', '.join(settings.kinds)} add up to more than 1")
        settings.rng = random.Random(settings.seed)
        return settings

    def to_json(self) -> dict[str, Json]:
        """The settings as given (without the RNG state)."""
        out: dict[str, Json] = dict(self.rates)
        out.update(
            seed=self.seed,
            retry_after=self.retry_after,
            timeout_seconds=self.timeout_seconds,
            include_oauth=self.include_oauth,
            routes=list(self.routes),
        )
        return out

    def roll(self) -> tuple[str | None, frozenset[str]]:
        """Draw this request's fault (or None) and its flags; always two draws, so a seed replays exactly."""
        draw, flag_draw = self.rng.random(), self.rng.random()
        fault: str | None = None
        threshold = 0.0
        for kind in self.kinds:
            threshold += self.rates.get(kind, 0.0)
            if draw < threshold:
                fault = kind
                break
        flags = frozenset(f for f in self.flag_kinds if flag_draw < self.rates.get(f, 0.0))
        return fault, flags


def _number(provider: str, key: str, value: Json) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise SandboxError(f"faults.{provider}.{key}: expected a number, got {value!r}")
    try:
        return float(value)  # a rate or a number of seconds, never money
    except (TypeError, ValueError) as exc:
        raise SandboxError(f"faults.{provider}.{key}: expected a number, got {value!r}") from exc


def parse_faults(spec: Json, providers: Sequence[str]) -> dict[str, FaultSettings]:
    """Validate a whole faults spec (`POST /_sandbox/faults`, `--faults`): per provider name."""
    if not isinstance(spec, Mapping):
        raise SandboxError("faults: expected a JSON object keyed by provider")
    out: dict[str, FaultSettings] = {}
    for name, entry in spec.items():
        if name not in providers and name != "smtp":
            raise SandboxError(f"faults.{name}: unknown provider (known: {', '.join(providers)}, smtp)")
        out[name] = FaultSettings.parse(name, entry)
    return out


def read_faults_spec(spec: str | None) -> Json:
    """A faults spec from JSON text or from the path of a JSON file (None or "" → no faults)."""
    if not spec:
        return {}
    text = spec.strip()
    if not text.startswith("{"):
        path = Path(spec)
        if not path.is_file():
            raise SandboxError(f"--faults: {spec!r} is neither JSON text nor an existing file")
        text = path.read_text(encoding="utf-8")
    try:
        return loads(text)
    except ValueError as exc:
        raise SandboxError(f"--faults: not valid JSON: {exc}") from exc


# ---------------------------------------------------------------------------------------------------- rate limits


class RateLimiter:
    """Sliding windows per (provider, tenant, bucket, window). Only accepted requests count."""

    def __init__(self, limits: Mapping[str, Sequence[RateLimit]]) -> None:
        self.limits = {name: tuple(values) for name, values in limits.items()}
        self._hits: dict[tuple[str, str, int], deque[float]] = {}

    def check(self, provider: str, tenant: str, buckets: Sequence[str], now: float) -> tuple[RateLimit, int] | None:
        """Count a request, or return the limit it breaks and the seconds until it would pass."""
        relevant = [(i, lim) for i, lim in enumerate(self.limits.get(provider, ())) if lim.bucket in buckets]
        for index, limit in relevant:
            hits = self._window(provider, tenant, index, limit, now)
            if len(hits) >= limit.max_requests:
                wait = hits[0] + limit.per_seconds - now
                return limit, max(1, math.ceil(wait))
        for index, limit in relevant:
            self._window(provider, tenant, index, limit, now).append(now)
        return None

    def _window(self, provider: str, tenant: str, index: int, limit: RateLimit, now: float) -> deque[float]:
        hits = self._hits.setdefault((provider, tenant, index), deque())
        while hits and hits[0] <= now - limit.per_seconds:
            hits.popleft()
        return hits

    def clear(self) -> None:
        """Forget every window."""
        self._hits.clear()


# ---------------------------------------------------------------------------------------------------- the sandbox


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 makes a sixth simultaneous connect wait a second for a SYN retry:
    # many clients (a server's workers, a concurrency test) must reach the handlers at once, as at a provider.
    request_queue_size = 128
    sandbox: Sandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (reset, broken pipe) is no error of the sandbox: no traceback for it."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as the real APIs: SDK sessions reuse connections, which keeps benchmarks honest.
    protocol_version = "HTTP/1.1"
    server_version = "bridge-sandbox"
    # Headers and body go out in separate writes; with Nagle on, each response would wait ~40 ms for an ACK.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self._sandbox().track(self.connection, True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self._sandbox().track(self.connection, False)

    def _sandbox(self) -> Sandbox:
        return cast(_Server, self.server).sandbox

    def _dispatch(self) -> None:
        self._sandbox().dispatch(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log; `/_sandbox/requests` is the log."""


class Sandbox:
    """The emulators of every registered provider behind one loopback HTTP server.

    `seed`: a seed-file dict (`{"quickbooks": {...}, "xero": {...}, ...}`); None loads the
    default book shipped with the package, `{}` starts every provider empty. Sections for
    providers not emulated yet are kept as given and returned by `state()`.
    `rate_limits`: True or "published" for each provider's published limits, "strict" for half of each,
    False or "off" for none, or a mapping provider → list of `RateLimit` replacing that provider's limits.
    `clock`: the sandbox's wall clock (timestamps, token expiry, CDC windows); default the real one.
    `options`: per provider settings, e.g. `{"quickbooks": {"access_token_ttl": 60}}`.
    `faults`: a faults spec applied at start (same shape as `POST /_sandbox/faults`).
    `webhooks`: where to send a signed webhook for every change to the books (see `bridge_sandbox.webhooks`).
    """

    def __init__(
        self,
        seed: Mapping[str, Json] | None = None,
        latency_ms: int = 0,
        rate_limits: RateLimitSetting = True,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        options: Mapping[str, Mapping[str, Json]] | None = None,
        faults: Json | None = None,
        webhooks: WebhookSettings | None = None,
        smtp_port: int | None = None,
    ) -> None:
        if seed is None:
            from bridge_sandbox.seed import default_seed

            seed = default_seed()
        if not isinstance(seed, Mapping):
            raise SandboxError("seed: expected a JSON object keyed by provider")
        self.latency_ms = max(0, int(latency_ms))
        self.host = host
        self.port = port
        self._clock: Clock = clock or wall_clock.now_utc
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._in_flight: dict[tuple[str, str], int] = {}  # API requests being answered, per provider and tenant
        self._base_url = ""
        self._outbox: list[dict[str, Json]] = []
        self._requests: list[dict[str, Json]] = []
        self.chat = ChatCapture(self.now)  # team-chat webhooks (bridge_sandbox.chat)
        self._smtp_port = smtp_port  # None: no SMTP server; 0: any free port
        self._smtp: Any = None
        # Shared, not copied: providers never mutate seed objects (see bridge_sandbox.core).
        self._seed: dict[str, Json] = dict(seed)

        classes = load_builtin_providers()
        options = options or {}
        unknown = set(options) - set(classes)
        if unknown:
            raise SandboxError(f"options: unknown provider(s) {', '.join(sorted(unknown))}")
        self.providers: dict[str, Provider] = {name: cls(self, options.get(name)) for name, cls in classes.items()}
        self._routes: list[tuple[Provider, Route]] = [(p, r) for p in self.providers.values() for r in p.routes()]
        self._limiter = RateLimiter(self._limits(rate_limits))
        self._initial_faults: Json = faults or {}
        self._faults: dict[str, FaultSettings] = parse_faults(self._initial_faults, list(self.providers))
        self._webhook_settings = webhooks
        self._webhooks: WebhookSender | None = None
        self._load_seed()

    # -------------------------------------------------------------------------------- lifecycle

    def start(self) -> str:
        """Bind and serve in a background thread; returns the base URL."""
        if self._server is not None:
            return self._base_url
        server = _Server((self.host, self.port), _Handler)
        server.sandbox = self
        self._server = server
        self._stopping.clear()
        self._webhooks = WebhookSender()
        host, port = server.server_address[:2]
        self._base_url = f"http://{host if isinstance(host, str) else host.decode()}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="bridge-sandbox", daemon=True
        )
        self._thread.start()
        if self._smtp_port is not None:
            from bridge_sandbox.smtp import SandboxSmtp

            self._smtp = SandboxSmtp(self._deliver_smtp, self._roll_smtp, host=self.host, port=self._smtp_port)
            self._smtp.start()
        return self._base_url

    def stop(self) -> None:
        """Stop serving, wake any stalled handler and close open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.stop()
        self._stopping.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
        if self._webhooks is not None:
            self._webhooks.close()
            self._webhooks = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The base URL (http://127.0.0.1:PORT); raises before `start()`."""
        if not self._base_url:
            raise RuntimeError("the sandbox is not started")
        return self._base_url

    @property
    def smtp_address(self) -> tuple[str, int] | None:
        """(host, port) of the SMTP server, when it runs."""
        return None if self._smtp is None else (self._smtp.host, self._smtp.port)

    def _roll_smtp(self) -> str | None:
        with self._lock:
            settings = self._faults.get("smtp")
            return settings.roll()[0] if settings is not None else None

    def _deliver_smtp(self, received: dict[str, Any]) -> None:
        from bridge_sandbox.smtp import outbox_entry

        entry = outbox_entry(received["from"], received["to"], received["raw"], self.now().isoformat())
        with self._lock:
            self._outbox.append(entry)

    def describe(self) -> dict[str, dict[str, str]]:
        """Entry points per provider (what `bridge sandbox serve` prints)."""
        return {name: p.describe(self.base_url) for name, p in self.providers.items()}

    # -------------------------------------------------------------------------------- SandboxContext

    def now(self) -> datetime:
        """The sandbox clock."""
        return self._clock()

    def record_email(
        self,
        *,
        provider: str,
        tenant: str,
        invoice_id: str,
        to: str,
        subject: str,
        body: str,
        cc: Sequence[str] = (),
        bcc: Sequence[str] = (),
    ) -> None:
        """Append an e-mail to the outbox (called by providers, under the lock); copies only when there are."""
        entry: dict[str, Json] = {
            "channel": "provider",
            "provider": provider,
            "tenant": tenant,
            "invoice_id": invoice_id,
            "to": to,
        }
        if cc:
            entry["cc"] = list(cc)
        if bcc:
            entry["bcc"] = list(bcc)
        entry.update(subject=subject, body=body, sent_at=self.now().isoformat())
        self._outbox.append(entry)

    # -------------------------------------------------------------------------------- inspection and control

    def state(self) -> dict[str, Json]:
        """Every object now, in the seed file's shape (a deep copy, safe to change and to seed another sandbox)."""
        with self._lock, paused_gc():
            return cast(dict[str, Json], clone(self._state_view()))

    def state_json(self) -> str:
        """`state()` as JSON text, without the intermediate copy (what `GET /_sandbox/state` sends)."""
        with self._lock, paused_gc():
            return dumps(self._state_view())

    def _state_view(self) -> dict[str, Json]:
        # Shares stored objects: only for copying or serializing under the lock.
        out: dict[str, Json] = {key: value for key, value in self._seed.items() if key not in self.providers}
        for name, provider in self.providers.items():
            out[name] = provider.dump()
        return out

    def outbox(self) -> list[dict[str, Json]]:
        """Every e-mail sent so far."""
        with self._lock:
            return copy.deepcopy(self._outbox)

    def requests(self) -> list[dict[str, Json]]:
        """The request log (provider routes only, not `/_sandbox/`)."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def faults(self) -> dict[str, dict[str, Json]]:
        """The fault settings in force."""
        with self._lock:
            return {name: settings.to_json() for name, settings in self._faults.items()}

    def set_faults(self, spec: Json) -> None:
        """Replace the fault settings of the providers named in `spec` (`{}` for one provider clears it)."""
        parsed = parse_faults(spec, list(self.providers))
        with self._lock:
            self._faults.update(parsed)

    def reset(self, seed: Mapping[str, Json] | None = None) -> None:
        """Back to the seed (or to a new one): data, outbox, request log, faults and rate windows."""
        with self._lock:
            if seed is not None:
                self._seed = dict(seed)
            self._outbox.clear()
            self._requests.clear()
            self.chat.clear()
            self._faults = parse_faults(self._initial_faults, list(self.providers))
            self._limiter.clear()
            self._load_seed()

    # -------------------------------------------------------------------------------- internals

    def _load_seed(self) -> None:
        for name, provider in self.providers.items():
            try:
                provider.load(self._seed.get(name))
            except (KeyError, TypeError, ValueError) as exc:
                raise SandboxError(f"seed.{name}: {exc}") from exc

    def _limits(self, setting: RateLimitSetting) -> dict[str, Sequence[RateLimit]]:
        if setting is False or setting == "off":
            return {}
        limits: dict[str, Sequence[RateLimit]] = {n: p.default_rate_limits for n, p in self.providers.items()}
        if setting == "strict":
            return {
                n: tuple(dataclasses.replace(lim, max_requests=max(1, lim.max_requests // 2)) for lim in values)
                for n, values in limits.items()
            }
        if isinstance(setting, Mapping):
            for name, values in setting.items():
                if name not in self.providers:
                    raise SandboxError(f"rate_limits: unknown provider {name}")
                limits[name] = tuple(values)
        return limits

    def track(self, conn: socket.socket, open_: bool) -> None:
        """Remember open connections so `stop()` can close idle keep-alive sockets."""
        with self._lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _sleep(self, seconds: float) -> None:
        # Interruptible, so stop() never waits for a stalled "timeout" fault.
        if seconds > 0:
            self._stopping.wait(seconds)

    def dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one HTTP request (called on the handler's thread)."""
        started = time.monotonic()
        split = urlsplit(handler.path)
        path = unquote(split.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        request = Request(
            method=handler.command,
            path=path,
            query_string=split.query,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k: v for k, v in handler.headers.items()},
            body=body,
        )
        channel = self.chat.channel_of(request)
        if channel is not None:
            self._write(handler, self.chat.receive(channel, request))
            return
        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            self._write(handler, self._control(request))
            return

        matched = self._match(request)
        entry: dict[str, Json] = {
            "provider": None,
            "tenant": None,
            "route": None,
            "method": request.method,
            "path": path,
            "query": split.query,
            "status": None,
            "time": self.now().isoformat(),
        }
        if matched is not None:
            entry["provider"] = matched[0].name
            entry["tenant"] = matched[0].tenant_of(request)
            entry["route"] = matched[1].name or None
        with self._lock:
            # Logged on arrival, so the log is in request order; status and timing are filled in below.
            self._requests.append(entry)
        if matched is None:
            response: Response | None = Response.json(404, {"error": "not_found", "path": path})
        else:
            slot = self._enter(matched[0], matched[1], entry)
            try:
                if slot is None:
                    entry["fault"] = "concurrent_limit"
                    response = matched[0].concurrency_response()
                else:
                    response = self._serve(matched[0], matched[1], request, entry["tenant"], entry)
                if response is not None:
                    self._sleep(self.latency_ms / 1000)
            finally:
                self._leave(slot)
        with self._lock:
            if response is not None:
                entry["status"] = response.status
                entry.update(response.log)
            entry["duration_ms"] = round((time.monotonic() - started) * 1000, 3)
        if response is None:  # a drop, timeout or lost_response fault: close without answering
            handler.close_connection = True
            return
        self._announce(matched, request, response, entry)
        self._write(handler, response)

    def _announce(
        self, matched: tuple[Provider, Route] | None, request: Request, response: Response, entry: dict[str, Json]
    ) -> None:
        """A webhook for what a successful API write changed (when webhooks are on)."""
        sender = self._webhooks
        if sender is None or matched is None or request.method in ("GET", "HEAD") or response.status >= 400:
            return
        provider, rte = matched
        if not rte.api or response.log.get("replayed") or entry["tenant"] is None:
            return
        settings = self._webhook_settings
        for change in changes_of(provider.name, rte.name, request, response, str(entry["tenant"]), self.now()):
            if settings is not None:
                sender.add(change, f"{settings.url.rstrip('/')}/{provider.name}", settings.key_for(provider.name))
            for url, key in provider.webhook_targets(change):
                sender.add(change, url, key)

    def deliver_form(self, provider: str, url: str, fields: Sequence[tuple[str, str]]) -> None:
        """POST form fields to `url` from the webhook thread (a provider's registration message)."""
        if self._webhooks is not None:
            self._webhooks.add_form(provider, url, fields)

    def webhook_deliveries(self) -> list[dict[str, Json]]:
        """Every webhook delivery attempt so far (empty when webhooks are off)."""
        return self._webhooks.deliveries() if self._webhooks is not None else []

    def _enter(self, provider: Provider, rte: Route, entry: dict[str, Json]) -> tuple[str, str] | None:
        """Count an API request in flight; None when its tenant already has the provider's maximum in flight."""
        tenant = entry["tenant"]
        limit = provider.concurrent_limit()
        key = (provider.name, str(tenant))
        with self._lock:
            counted = rte.api and tenant is not None and limit is not None and self._limiter.limits.get(provider.name)
            if counted and limit is not None and self._in_flight.get(key, 0) >= limit:
                return None
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            return key

    def _leave(self, key: tuple[str, str] | None) -> None:
        if key is not None:
            with self._lock:
                self._in_flight[key] -= 1

    def _match(self, request: Request) -> tuple[Provider, Route] | None:
        for provider, rte in self._routes:
            if rte.method not in (request.method, "*"):
                continue
            found = rte.pattern.fullmatch(request.path)
            if found:
                request.params = {k: v for k, v in found.groupdict().items() if v is not None}
                return provider, rte
        return None

    def _serve(
        self, provider: Provider, rte: Route, request: Request, tenant: str | None, entry: dict[str, Json]
    ) -> Response | None:
        with self._lock:
            settings = self._faults.get(provider.name)
            fault: str | None = None
            drawn = settings is not None and (not settings.routes or rte.name in settings.routes)
            if settings is not None and drawn and (rte.api or settings.include_oauth):
                fault, request.flags = settings.roll()
                if fault == "expired_token" and not rte.api:
                    fault = None  # only API calls carry an access token to expire
            if fault is not None:
                entry["fault"] = fault
            if fault is None and rte.api and tenant is not None:
                broken = self._limiter.check(provider.name, tenant, rte.buckets, time.monotonic())
                if broken is not None:
                    limit, wait = broken
                    entry["fault"] = "rate_limit"
                    return provider.throttle_response(limit, wait)
            if fault is None or fault == "lost_response":
                if request.flags:
                    entry["flags"] = sorted(request.flags)
                try:
                    answer = rte.handler(request)
                except Exception as exc:  # an emulator bug must answer 500, not kill the handler thread
                    entry["error"] = f"{type(exc).__name__}: {exc}"
                    return Response.json(500, {"error": "sandbox_internal_error", "detail": entry["error"]})
                if fault is None:
                    return answer
                entry["status"] = answer.status  # what it did, though the client never hears it
                entry.update(answer.log)
                return None
            if fault in ("drop", "timeout"):
                stall = settings.timeout_seconds if settings is not None and fault == "timeout" else 0.0
            elif fault == "429_no_retry_after":
                return provider.fault_response("429", None)
            else:
                return provider.fault_response(fault, settings.retry_after if settings is not None else 1)
        self._sleep(stall)
        return None

    def _control(self, request: Request) -> Response:
        what = request.path.removeprefix("/_sandbox").strip("/")
        try:
            if request.method == "GET" and what == "":
                return Response.json(200, {"base_url": self._base_url, "providers": self.describe()})
            if request.method == "GET" and what == "state":
                return Response(
                    200, self.state_json().encode("utf-8"), [("Content-Type", "application/json;charset=UTF-8")]
                )
            if request.method == "GET" and what == "outbox":
                return Response.json(200, self.outbox())
            if request.method == "GET" and what == "requests":
                return Response.json(200, self.requests())
            if request.method == "GET" and what == "chat":
                return Response.json(200, self.chat.posts())
            if request.method == "POST" and what == "chat/faults":
                self.chat.fail_next(request.json() or {})
                return Response.json(200, {"ok": True})
            if request.method == "GET" and what == "webhooks":
                return Response.json(200, self.webhook_deliveries())
            if what == "faults" and request.method in ("GET", "POST"):
                if request.method == "POST":
                    self.set_faults(request.json() or {})
                return Response.json(200, self.faults())
            if request.method == "POST" and what == "reset":
                body = request.json() if request.body.strip() else None
                seed = body.get("seed") if isinstance(body, Mapping) else None
                self.reset(seed)
                return Response.json(200, {"reset": True})
        except (SandboxError, ValueError) as exc:
            return Response.json(400, {"error": "bad_request", "detail": str(exc)})
        return Response.json(404, {"error": "not_found", "path": request.path})

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, response: Response) -> None:
        try:
            handler.send_response(response.status)
            has_length = False
            for key, value in response.headers:
                has_length = has_length or key.lower() == "content-length"
                handler.send_header(key, value)
            if not has_length:
                handler.send_header("Content-Length", str(len(response.body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True


# ---------------------------------------------------------------------------------------------------- serve()


def serve(
    seed_path: str | Path | None = None,
    port: int = 0,
    latency_ms: int = 0,
    faults_spec: str | None = None,
    *,
    host: str = "127.0.0.1",
    rate_limits: RateLimitSetting = True,
    echo: Callable[[str], None] = print,
    ready: Callable[[Sandbox], None] | None = None,
    stop_event: threading.Event | None = None,
    webhooks: WebhookSettings | None = None,
    smtp_port: int | None = None,
) -> None:
    """Run the sandbox in the foreground until Ctrl-C / SIGTERM (or `stop_event` is set).

    `seed_path`: a seed JSON file (None: the default book). `faults_spec`: JSON text or a path
    to a JSON file, same shape as `POST /_sandbox/faults`. Prints the base URLs via `echo`;
    `ready` is called with the running sandbox (tests, the demo). Raises `SandboxError` on a
    bad seed or faults spec before anything listens.
    """
    from bridge_sandbox.seed import default_seed, read_seed

    seed = read_seed(seed_path) if seed_path is not None else default_seed()
    sandbox = Sandbox(
        seed,
        latency_ms=latency_ms,
        rate_limits=rate_limits,
        host=host,
        port=port,
        faults=read_faults_spec(faults_spec),
        webhooks=webhooks,
        smtp_port=smtp_port,
    )
    stop = stop_event or threading.Event()
    previous: Any = None
    if threading.current_thread() is threading.main_thread():

        def _on_term(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        sandbox.start()
    except OSError as exc:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if exc.errno == errno.EADDRINUSE:
            raise SandboxError(f"port {port} is in use: stop the other process or pass --port") from None
        raise SandboxError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        echo(f"sandbox listening on {sandbox.base_url}")
        for name, info in sandbox.describe().items():
            echo(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in info.items()))
        if sandbox.smtp_address is not None:
            smtp_host, smtp_port_bound = sandbox.smtp_address
            echo(f"  smtp: {smtp_host}:{smtp_port_bound} (security none; messages in /_sandbox/outbox)")
        echo(f"  control: {sandbox.base_url}/_sandbox/ (state, outbox, requests, webhooks, chat, faults, reset)")
        if webhooks is not None:
            echo(f"  webhooks: every change is sent, signed, to {webhooks.url.rstrip('/')}/{{provider}}")
        if ready is not None:
            ready(sandbox)
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.wait(0.5):
                pass
    finally:
        sandbox.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
