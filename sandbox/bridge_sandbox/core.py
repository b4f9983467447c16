"""What the sandbox server and its provider emulators share.

The server (`bridge_sandbox.server`) owns the socket, the lock, the request log,
the outbox, fault injection and rate limiting. A provider emulator owns its
routes, its data and its wire formats. The contract between them:

- a provider is a `Provider` subclass registered with `@register_provider`;
- it lists `Route`s (method, path regex, handler); the server matches a request
  against every provider's routes in registration order, first match wins;
- a handler takes a `Request` and returns a `Response`; it runs under the
  sandbox lock, so it may touch provider state freely but must never sleep;
- `api=True` routes get injected faults and rate limits, `api=False` routes
  (OAuth consent, discovery) only the configured latency;
- `load` / `dump` move the provider's part of the seed file in and out, and
  `dump(load(x))` must equal `x` so a state seeds an identical sandbox;
- stored objects are copy-on-write: a provider never mutates an object it was
  seeded with or has stored, it replaces it. So a seed is shared, not copied, by
  `load` and `reset` (10,000-invoice books load in milliseconds), and `dump` may
  return the stored objects themselves (the server copies before handing them out).

Money travels as `Decimal` end to end: bodies are parsed with
`parse_float=Decimal` and `dumps` writes a `Decimal` as a bare JSON number.
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import urlencode

Json = Any
"""A JSON value as `json.loads(..., parse_float=Decimal)` returns it."""

FAULT_KINDS: tuple[str, ...] = (
    "drop",
    "timeout",
    "429",
    "500",
    "503",
    "expired_token",
    "429_no_retry_after",
    "lost_response",
)
"""Faults that replace the answer to a request, in the order the dice are read (new kinds go last, so an
existing seed replays the same faults). All but `lost_response` answer without doing the request;
`lost_response` does it and then drops the connection, as when the answer is lost on the way back."""

FLAG_FAULTS: tuple[str, ...] = ("stale_synctoken",)
# The SMTP server's faults (`{"smtp": {...}}`): an answer to the end of DATA, or a dropped line once it is accepted.
SMTP_FAULT_KINDS: tuple[str, ...] = ("421", "450", "554", "drop_after_data")
"""Faults that only change how a handler behaves (drawn on every API request, used by writes)."""


def invoice_pdf(*lines: str) -> bytes:
    """A small valid one-page PDF (header, four objects, exact cross-reference table) showing `lines`:
    what an emulator answers for an invoice's PDF."""

    def literal(text: str) -> str:
        ascii_text = text.encode("ascii", "replace").decode("ascii")
        return "(" + ascii_text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"

    shown = "".join(f"{literal(line)} Tj 0 -18 Td " for line in lines)
    stream = f"BT /F1 12 Tf 72 720 Td {shown}ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("ascii")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii")
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode("ascii")
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode("ascii")
    return out


def pdf_response(pdf: bytes) -> Response:
    """An `application/pdf` answer."""
    return Response(200, pdf, [("Content-Type", "application/pdf")])


class SandboxError(ValueError):
    """A bad seed, fault spec or option given to the sandbox."""


# ---------------------------------------------------------------------------------------------------- JSON with Decimal

_DEC_OPEN = "\x00dec:"
_DEC_CLOSE = "\x00"
# json.dumps always escapes control characters, so the markers come out as \u0000 and cannot clash with real text.
_DEC_RE = re.compile(r'"\\u0000dec:([^"\\]*)\\u0000"')


class _DecimalEncoder(json.JSONEncoder):
    def default(self, o: object) -> object:
        if isinstance(o, Decimal):
            return f"{_DEC_OPEN}{o}{_DEC_CLOSE}"
        return super().default(o)


def dumps(value: Json, *, indent: int | None = None) -> str:
    """JSON text for `value`, writing each `Decimal` as a bare number with its exact digits."""
    separators = (",", ": ") if indent is not None else (",", ":")
    text = json.dumps(value, cls=_DecimalEncoder, ensure_ascii=False, indent=indent, separators=separators)
    return _DEC_RE.sub(r"\1", text)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic JSON trees.

    Building 10,000-invoice books allocates millions of containers; the collector's passes over
    them cost more than the building itself, and plain JSON data has no cycles to collect.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def clone(value: Json) -> Json:
    """A deep copy of plain JSON data (dicts, lists, scalars); several times faster than `copy.deepcopy`."""
    if type(value) is dict:
        return {key: clone(item) for key, item in value.items()}
    if type(value) is list:
        return [clone(item) for item in value]
    return value


def loads(text: str | bytes) -> Json:
    """Parse JSON text with every non-integer number as a `Decimal` (never a float)."""
    return json.loads(text, parse_float=Decimal)


# ---------------------------------------------------------------------------------------------------- HTTP


@dataclass
class Request:
    """One HTTP request as a handler sees it."""

    method: str
    path: str
    query_string: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()

    def arg(self, name: str) -> str | None:
        """The first value of query parameter `name`, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        """A request header, looked up case-insensitively."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def json(self) -> Json:
        """The body parsed as JSON (Decimal for non-integers); ValueError when it is not JSON."""
        return loads(self.body.decode("utf-8") or "null")


@dataclass
class Response:
    """What a handler answers. `log` adds fields to this request's entry in the request log."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    log: dict[str, Json] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Json, headers: Sequence[tuple[str, str]] = ()) -> Response:
        """A JSON response (`Decimal` written as numbers)."""
        hdrs = [("Content-Type", "application/json;charset=UTF-8"), *headers]
        return cls(status, dumps(value).encode("utf-8"), hdrs)

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Response:
        """A plain-text (or other textual) response."""
        return cls(status, text.encode("utf-8"), [("Content-Type", content_type)])

    @classmethod
    def redirect(cls, location: str) -> Response:
        """A 302 redirect."""
        return cls(302, b"", [("Location", location)])

    def header(self, name: str) -> str | None:
        """A response header, looked up case-insensitively."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Consent:
    """A valid request to a sandbox authorize endpoint (which consents at once)."""

    client_id: str
    redirect_uri: str
    state: str | None
    scope: str

    def redirect(self, code: str, **extra: str) -> Response:
        """Back to the app with the code, the state it sent, and any provider extras (e.g. realmId)."""
        separator = "&" if "?" in self.redirect_uri else "?"
        params = {"code": code, **({"state": self.state} if self.state else {}), **extra}
        return Response.redirect(self.redirect_uri + separator + urlencode(params))


def consent(request: Request) -> Consent | Response:
    """Check an authorize request the way both providers do; an error response when it is not valid."""
    client_id, redirect_uri = request.arg("client_id"), request.arg("redirect_uri")
    if not client_id or not redirect_uri:
        return Response.text(400, "client_id and redirect_uri are required")
    state = request.arg("state")
    if request.arg("response_type") != "code":
        separator = "&" if "?" in redirect_uri else "?"
        params = {"error": "unsupported_response_type", **({"state": state} if state else {})}
        return Response.redirect(redirect_uri + separator + urlencode(params))
    return Consent(client_id, redirect_uri, state, request.arg("scope") or "")


def oauth_error(status: int, error: str, description: str = "") -> Response:
    """An OAuth 2.0 error body (RFC 6749 §5.2)."""
    body: dict[str, Json] = {"error": error}
    if description:
        body["error_description"] = description
    return Response.json(status, body)


def oauth_client_id(request: Request, form: Mapping[str, list[str]], *, form_needs_secret: bool) -> str | None:
    """The client id from HTTP Basic auth, or from the form (with its secret when the provider requires it)."""
    header = request.header("Authorization") or ""
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    if form.get("client_id") and (form.get("client_secret") or not form_needs_secret):
        return form["client_id"][0]
    return None


@dataclass(frozen=True)
class Route:
    """A path a provider answers. `pattern` is matched in full against the URL-decoded path."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    api: bool = True
    buckets: tuple[str, ...] = ("api",)
    name: str = ""


def route(
    method: str,
    pattern: str,
    handler: Handler,
    *,
    api: bool = True,
    buckets: tuple[str, ...] = ("api",),
    ignore_case: bool = True,
    name: str = "",
) -> Route:
    """Build a `Route`; paths match case-insensitively by default (the SDKs disagree on case)."""
    flags = re.IGNORECASE if ignore_case else 0
    return Route(method.upper(), re.compile(pattern, flags), handler, api=api, buckets=buckets, name=name)


@dataclass(frozen=True)
class RateLimit:
    """At most `max_requests` requests per `per_seconds` seconds, per tenant, in the named bucket."""

    max_requests: int
    per_seconds: float
    bucket: str = "api"


# ---------------------------------------------------------------------------------------------------- providers


class SandboxContext(Protocol):
    """What the server offers a provider."""

    @property
    def base_url(self) -> str:
        """The server's base URL, e.g. http://127.0.0.1:54321 (empty before start)."""
        ...

    def now(self) -> datetime:
        """The sandbox clock (timezone-aware)."""
        ...

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
        """Add one e-mail to the outbox (`cc`, `bcc`: the copies the provider sent, listed only when there are)."""
        ...

    def deliver_form(self, provider: str, url: str, fields: Sequence[tuple[str, str]]) -> None:
        """POST form fields to `url` soon, from another thread (never under the sandbox lock)."""
        ...


class Provider(ABC):
    """One emulated provider. Subclasses set `name` and `default_rate_limits`."""

    name: ClassVar[str] = ""
    default_rate_limits: ClassVar[tuple[RateLimit, ...]] = ()

    def __init__(self, ctx: SandboxContext, options: Mapping[str, Json] | None = None) -> None:
        self.ctx = ctx
        self.options: Mapping[str, Json] = dict(options or {})

    @abstractmethod
    def routes(self) -> Sequence[Route]:
        """Every route this provider answers."""

    @abstractmethod
    def load(self, seed: Json | None) -> None:
        """Replace all data with this provider's section of a seed file (None: an empty book); never mutate it."""

    @abstractmethod
    def dump(self) -> Json:
        """This provider's section of the seed file, as the data stands now (may share stored objects)."""

    @abstractmethod
    def fault_response(self, kind: str, retry_after: int | None) -> Response:
        """The provider's own answer for an injected fault: "429", "500", "503" or "expired_token".

        `retry_after` is the 429's Retry-After in seconds; None sends the 429 without one."""

    @abstractmethod
    def throttle_response(self, limit: RateLimit, retry_after: int) -> Response:
        """The provider's own answer when a published rate limit is exceeded."""

    def concurrent_limit(self) -> int | None:
        """How many API requests of one tenant may be in flight at once (None: no such limit)."""
        return None

    def concurrency_response(self) -> Response:
        """The answer to a request over the concurrent limit."""
        return Response.text(429, "Too many concurrent requests")

    def tenant_of(self, request: Request) -> str | None:
        """The tenant a request is for (rate limits are per tenant); by default the `tenant` path group."""
        return request.params.get("tenant")

    def describe(self, base_url: str) -> dict[str, str]:
        """Human-readable entry points (printed by `bridge sandbox serve`)."""
        return {"base_url": base_url}

    def webhook_targets(self, change: Any) -> list[tuple[str, str]]:
        """Where the provider itself sends a change (a `bridge_sandbox.webhooks.Change`), beyond `--webhook-url`:
        (address, signing key) pairs registered through its API. None by default."""
        return []


P = TypeVar("P", bound=type[Provider])
_REGISTRY: dict[str, type[Provider]] = {}


S = TypeVar("S")


def settings_from(cls: type[S], provider: str, options: Mapping[str, Any]) -> S:
    """A provider's settings dataclass from `Sandbox(options={provider: {...}})`; unknown keys are refused."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"options.{provider}: unknown setting(s) {', '.join(sorted(unknown))}")
    return cls(**dict(options))


def register_provider(cls: P) -> P:
    """Class decorator: make a provider emulator available to every new `Sandbox`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no provider name")
    _REGISTRY[cls.name] = cls
    return cls


def registered_providers() -> dict[str, type[Provider]]:
    """The registered provider classes by name, in registration order."""
    return dict(_REGISTRY)
