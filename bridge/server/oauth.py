"""Linking through the server: the OAuth redirect lands on `GET /oauth/{provider}/callback` under `public_url`.

Intuit production apps and FreshBooks redirect only to https addresses, so a loopback callback on the operator's
machine cannot receive them; the server, with its public https address, can. The flow stays `bridge link`'s own
(`bridge.auth.link.link`: the state and PKCE made and checked there, the code exchanged there, the tenant chosen
there, the tokens stored encrypted there); the server only carries the browser's redirect back to it:

    bridge link PROVIDER --via-server URL
      POST URL/oauth/PROVIDER/start     {"state": S}   the server now waits for that state (10 minutes at most)
      (the browser consents; the provider redirects it to URL/oauth/PROVIDER/callback?code=…&state=S)
      POST URL/oauth/PROVIDER/result    {"state": S}   202 while waiting; 200 {"params": {…}} once, then forgotten

The server keeps no token and no secret: it holds the redirect's parameters, in memory, until the `bridge link`
that knows the state collects them (once). A redirect whose state no link attempt announced gets an error page
and is not kept. States are kept by their SHA-256 only, and sent in request bodies, never in a URL of ours.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bridge import clock

WAIT_SECONDS = 600.0  # how long an announced state waits for its redirect, and the redirect for its collection
MAX_WAITING = 100  # link attempts waiting at once (an unauthenticated POST must not fill the memory)
MAX_STATE = 512

LINKED = (
    "<!doctype html><title>bridge</title><p>Done: the bridge received the provider's answer. Go back to the "
    "terminal where <code>bridge link</code> runs; it finishes the link.</p>"
)
WRONG = (
    "<!doctype html><title>bridge</title><p>This answer does not belong to a link attempt in progress (its state "
    "is unknown or expired). Nothing was linked: start <code>bridge link … --via-server</code> again.</p>"
)


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class _Slot:
    provider: str
    since: float
    params: dict[str, str] | None = None


@dataclass
class CallbackBox:
    """Link attempts waiting for their redirect, by the SHA-256 of their state; thread-safe."""

    now: Callable[[], float] = clock.monotonic
    _slots: dict[str, _Slot] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def expect(self, provider: str, state: str) -> bool:
        """A link attempt announces its state; False when too many wait already."""
        with self._lock:
            self._expire()
            if len(self._slots) >= MAX_WAITING:
                return False
            self._slots[_digest(state)] = _Slot(provider, self.now())
            return True

    def deliver(self, provider: str, params: dict[str, str]) -> bool:
        """The browser's redirect: kept when its state was announced for this provider (and not answered yet)."""
        with self._lock:
            self._expire()
            slot = self._slots.get(_digest(params.get("state", "")))
            if slot is None or slot.provider != provider or slot.params is not None:
                return False
            slot.params = dict(params)
            return True

    def collect(self, provider: str, state: str) -> tuple[str, dict[str, str] | None]:
        """("ready", params) once the redirect came (then forgotten), ("waiting", None), or ("unknown", None)."""
        with self._lock:
            self._expire()
            key = _digest(state)
            slot = self._slots.get(key)
            if slot is None or slot.provider != provider:
                return "unknown", None
            if slot.params is None:
                return "waiting", None
            del self._slots[key]
            return "ready", slot.params

    def _expire(self) -> None:
        cutoff = self.now() - WAIT_SECONDS
        for key in [k for k, s in self._slots.items() if s.since < cutoff]:
            del self._slots[key]


async def _state_of(request: Request) -> str | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    state = body.get("state") if isinstance(body, dict) else None
    return state if isinstance(state, str) and 0 < len(state) <= MAX_STATE else None


def oauth_routes(box: CallbackBox | None = None, providers: Callable[[], set[str]] | None = None) -> list[Route]:
    """The three routes of linking through the server (see the module docstring)."""
    box = box if box is not None else CallbackBox()

    def known(provider: str) -> bool:
        if providers is not None:
            return provider in providers()
        from bridge.providers import load_providers

        return provider in load_providers()[0]

    async def start(request: Request) -> Response:
        provider = request.path_params["provider"]
        state = await _state_of(request)
        if not known(provider):
            return JSONResponse({"error": f"no provider {provider!r} here"}, status_code=404)
        if state is None:
            return JSONResponse({"error": 'expected a JSON body {"state": …}'}, status_code=400)
        if not box.expect(provider, state):
            return JSONResponse({"error": "too many link attempts wait at once; try again shortly"}, status_code=503)
        return JSONResponse({"waiting": True, "seconds": WAIT_SECONDS}, status_code=201)

    async def callback(request: Request) -> Response:
        provider = request.path_params["provider"]
        # The first value of each parameter, as `bridge link` reads a redirect (`query_of`).
        params: dict[str, str] = {}
        for key, value in parse_qsl(request.url.query, keep_blank_values=True):
            params.setdefault(key, value)
        if not known(provider) or not box.deliver(provider, params):
            return HTMLResponse(WRONG, status_code=400)
        return HTMLResponse(LINKED)

    async def result(request: Request) -> Response:
        provider = request.path_params["provider"]
        state = await _state_of(request)
        if state is None:
            return JSONResponse({"error": 'expected a JSON body {"state": …}'}, status_code=400)
        found, params = box.collect(provider, state)
        if found == "ready":
            return JSONResponse({"params": params}, headers={"Cache-Control": "no-store"})
        if found == "waiting":
            return JSONResponse({"waiting": True}, status_code=202)
        return JSONResponse({"error": "no link attempt waits with this state (expired, or collected)"}, status_code=404)

    return [
        Route("/oauth/{provider}/start", start, methods=["POST"]),
        Route("/oauth/{provider}/callback", callback, methods=["GET"]),
        Route("/oauth/{provider}/result", result, methods=["POST"]),
    ]
