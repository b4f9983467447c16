"""The HTTP side of `bridge serve`, on one port: health, metrics, provider webhooks, and whatever others mount.

    app = create_app(ServerContext(rt, dispatcher, metrics), routes=[Mount("/review", review_app)])

`create_app` takes extra routes and mounts (the review pages, the OAuth callback), so each feature brings
its own routes without touching these.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bridge.config import ConnectionSettings, Settings
from bridge.server.dispatcher import Dispatcher
from bridge.server.metrics import CONTENT_TYPE_LATEST, Metrics
from bridge.server.webhooks import SIGNATURE_HEADERS, registration, verify
from bridge.store import Store
from bridge.sync import Runtime, describe

log = logging.getLogger("bridge.server")

MAX_WEBHOOK_BYTES = 1_000_000  # the providers send ids only: anything larger is not theirs


@dataclass
class ServerContext:
    """What the routes need: the runtime (settings, store, vault, environment), the dispatcher (bring a run
    forward), the metrics, and extra readiness checks (e.g. the broker), each returning a problem or None."""

    rt: Runtime
    dispatcher: Dispatcher
    metrics: Metrics
    checks: Sequence[Callable[[], str | None]] = ()

    @property
    def settings(self) -> Settings:
        """The configuration."""
        return self.rt.settings

    @property
    def store(self) -> Store:
        """The store."""
        return self.rt.store

    @property
    def env(self) -> Mapping[str, str]:
        """The environment the keys are read from."""
        return self.rt.env

    def webhook_key(self, connection: ConnectionSettings) -> str | None:
        """The connection's webhook key: its `webhook_secret_env`, else a verifier the provider handed over."""
        if connection.webhook_secret_env and self.env.get(connection.webhook_secret_env):
            return self.env[connection.webhook_secret_env]
        return self.rt.vault.webhook_key(connection.name)


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
    verdict = verify(provider, body, signature, ctx.settings.connections, ctx.webhook_key)
    if not verdict.verified:
        found = registration(body) if provider == "freshbooks" else None
        if found is not None:
            return _register(ctx, *found)
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


def _register(ctx: ServerContext, callback_id: str, verifier: str, account: str | None) -> Response:
    """FreshBooks' registration message (unsigned: it carries the key to come): confirm the callback through the
    API with the connection's tokens, and keep the verifier (encrypted) as that connection's webhook key."""
    fb = [c for c in ctx.settings.connections if c.provider == "freshbooks"]
    targets = [c for c in fb if c.tenant_id == account] if account else fb[:1] if len(fb) == 1 else []
    if not targets:
        ctx.metrics.webhooks.labels("freshbooks", "unknown_tenant").inc()
        log.info("freshbooks: a registration for account %s, which no connection has: ignored", account)
        return PlainTextResponse("ok\n")
    for conn in targets:
        connectors, broken = ctx.rt.connectors([conn])
        try:
            if conn.name in broken:
                raise RuntimeError(broken[conn.name])
            confirm = getattr(connectors[conn.name], "confirm_webhook", None)
            if confirm is None:
                raise RuntimeError("this connector cannot confirm webhook callbacks")
            # Kept before confirming: FreshBooks may send the first event the moment the callback is confirmed.
            ctx.rt.vault.save_webhook_key(conn.name, verifier)
            confirm(callback_id, verifier)
        except Exception as exc:  # answer FreshBooks anyway; the operator asks it to send the verifier again
            ctx.metrics.webhooks.labels("freshbooks", "registration_failed").inc()
            log.warning("%s: confirming webhook callback %s failed: %s", conn.name, callback_id, describe(exc))
            continue
        ctx.metrics.webhooks.labels("freshbooks", "registration").inc()
        log.info("%s: webhook callback %s confirmed; its verifier is kept as the webhook key", conn.name, callback_id)
    return PlainTextResponse("ok\n")


def _store_problem(store: Store) -> str | None:
    try:
        store.schedule([])
    except Exception as exc:
        return f"store {store.url} not reachable: {type(exc).__name__}: {exc}"
    return None
