"""The HTTP side of `bridge serve`, on one port: health, metrics, provider webhooks, and whatever others mount.

    app = create_app(ServerContext(settings, store, dispatcher, metrics), routes=[Mount("/review", review_app)])

`create_app` takes extra routes and mounts (the review pages, the OAuth callback), so each feature brings
its own routes without touching these.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bridge.config import Settings
from bridge.server.dispatcher import Dispatcher
from bridge.server.metrics import CONTENT_TYPE_LATEST, Metrics
from bridge.server.webhooks import SIGNATURE_HEADERS, verify
from bridge.store import Store

log = logging.getLogger("bridge.server")

MAX_WEBHOOK_BYTES = 1_000_000  # the providers send ids only: anything larger is not theirs


@dataclass
class ServerContext:
    """What the routes need: the settings, the store, the dispatcher (bring a run forward), the metrics."""

    settings: Settings
    store: Store
    dispatcher: Dispatcher
    metrics: Metrics
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # Extra readiness checks (e.g. the broker), each returning a problem or None.
    checks: Sequence[Callable[[], str | None]] = ()


def create_app(ctx: ServerContext, routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The Starlette app: /healthz, /readyz, /metrics, POST /webhooks/{provider}, then `routes`."""

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        problems = await run_in_threadpool(
            lambda: [p for p in (_store_problem(ctx.store), *(c() for c in ctx.checks)) if p]
        )
        if problems:
            return JSONResponse({"ready": False, "problems": problems}, status_code=503)
        return JSONResponse({"ready": True})

    async def metrics(request: Request) -> Response:
        return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def webhook(request: Request) -> Response:
        provider = request.path_params["provider"]
        if provider not in SIGNATURE_HEADERS:
            return PlainTextResponse("no such provider\n", status_code=404)
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BYTES:
            ctx.metrics.webhooks.labels(provider, "too_large").inc()
            return PlainTextResponse("too large\n", status_code=413)
        # The store write runs off the event loop: a busy SQLite writer must not stall the other requests.
        return await run_in_threadpool(_webhook, ctx, provider, body, request.headers.get(SIGNATURE_HEADERS[provider]))

    base: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/webhooks/{provider}", webhook, methods=["POST"]),
    ]
    return Starlette(routes=[*base, *routes])


def _webhook(ctx: ServerContext, provider: str, body: bytes, signature: str | None) -> Response:
    verdict = verify(provider, body, signature, ctx.settings.connections, ctx.env)
    if not verdict.verified:
        if provider == "freshbooks" and b"verifier=" in body:
            # FreshBooks' registration message carries the verifier itself, unsigned (it is the key to come).
            ctx.metrics.webhooks.labels(provider, "registration").inc()
            log.warning(
                "freshbooks: a webhook registration's verifier arrived; confirm the callback with it and put it "
                "in the connection's webhook_secret_env (docs/server.md)"
            )
            return PlainTextResponse("ok\n")
        ctx.metrics.webhooks.labels(provider, "bad_signature").inc()
        log.warning("%s: webhook refused: %s", provider, verdict.problem)
        return PlainTextResponse("bad signature\n", status_code=401)
    for name in verdict.connections:
        moved = ctx.dispatcher.bring_forward(name)
        ctx.metrics.webhooks.labels(provider, "accepted" if moved else "coalesced").inc()
        log.info("%s: webhook from %s: %s", name, provider, "next sync brought forward" if moved else "already due")
    for tenant in verdict.unknown_tenants:
        ctx.metrics.webhooks.labels(provider, "unknown_tenant").inc()
        log.info("%s: webhook for tenant %s, which no connection has: ignored", provider, tenant)
    if not verdict.connections and not verdict.unknown_tenants:
        ctx.metrics.webhooks.labels(provider, "empty").inc()  # Xero's intent-to-receive check, or nothing named
    return PlainTextResponse("ok\n")


def _store_problem(store: Store) -> str | None:
    try:
        store.schedule([])
    except Exception as exc:
        return f"store {store.url} not reachable: {type(exc).__name__}: {exc}"
    return None
