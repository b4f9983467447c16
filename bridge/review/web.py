"""The review pages: server-rendered HTML (Jinja2), plain forms, no JavaScript.

    routes = review_routes(service)                  # hand them to bridge.server.app.create_app(ctx, routes)

| route | what |
|---|---|
| `GET /review` | the pending plans (and those decided lately) of the connections the user reviews |
| `GET /review/{plan_id}` | one plan grouped by client: each action's clause, explanation, exact message and
  channel; after a decision, the result |
| `POST /review/{plan_id}/approve` | `key` (repeated: the selection), `do` = selected or all, `forgive`
  (repeated), `note` |
| `POST /review/{plan_id}/reject` | `reason` |
| `GET/POST /review/signin`, `POST /review/signout` | name and password |
| `GET /review/link/{token}` | a one-time link from a notice: opens that one plan, once |

Nothing is shown without a session: a page redirects to the sign-in form (303), a form post answers 401. Every
form needs the session's CSRF token (403 without it). A plan of a connection the user does not review, or
another plan than a link's, is 404 (as if it did not exist).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bridge.errors import ConflictError
from bridge.money import format_amount
from bridge.plan import Action, Plan
from bridge.review import auth
from bridge.review.auth import Session
from bridge.review.service import ReviewService
from bridge.store.review import ReviewPlan

log = logging.getLogger("bridge.review")

KIND_WORDS = {
    "reminder": "Reminder",
    "late_fee": "Late fee",
    "update_due_date": "New due date",
    "renegotiation_refused": "Due-date request refused",
}
OUTCOME_WORDS = {
    "applied": "applied",
    "dropped": "dropped as stale",
    "failed": "failed",
    "in_doubt": "in doubt (not sent again)",
    "left": "left out (not selected)",
    "forgiven": "forgiven",
    "rejected": "rejected",
}
SENDS_WORDS = {
    "contract_text": "the contract's message",
    "provider_invoice_email": "the provider's own invoice e-mail (not the contract's text)",
    "nothing": "nothing is sent",
}
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}

Handler = Callable[[Request], Awaitable[Response]]


def counts(plan: Plan) -> str:
    """'3 reminders, 2 late fees (USD 45.00)' for a plan."""
    s = plan.summary()
    parts = [f"{s['reminders']} reminder{'' if s['reminders'] == 1 else 's'}"]
    fees = ", ".join(f"{c} {v}" for c, v in s["late_fee_total"].items())
    parts.append(f"{s['late_fees']} late fee{'' if s['late_fees'] == 1 else 's'}" + (f" ({fees})" if fees else ""))
    other = s["due_date_updates"] + s["renegotiations_refused"]
    if other:
        parts.append(f"{other} other")
    return ", ".join(parts)


def _channel_words(action: Action) -> str:
    channel = {"provider": "through the accounting package", "smtp": "by e-mail from the firm's mailbox"}.get(
        action.channel or "", action.channel or ""
    )
    sends = SENDS_WORDS.get(action.sends or "")
    return f"{channel}: {sends}" if sends and channel else channel or sends or ""


def _money(amount: Decimal, currency: str) -> str:
    return format_amount(amount, currency)


def _groups(plan: Plan) -> list[tuple[str, list[Action]]]:
    groups: dict[str, list[Action]] = {}
    for action in plan.actions:
        groups.setdefault(action.invoice.customer or "(no client name)", []).append(action)
    return sorted(groups.items(), key=lambda kv: kv[0].casefold())


def _outcomes(stored: ReviewPlan) -> list[tuple[str, str, str]]:
    result = stored.result or {}
    rows: list[tuple[str, str, str]] = []
    for part in OUTCOME_WORDS:
        for item in result.get(part, []):
            why = (
                item.get("reason")
                or item.get("error")
                or (f"response id {item['response_id']}" if item.get("response_id") else "")
            )
            rows.append((str(item["key"]), part, str(why)))
    return rows


class _Pages:
    def __init__(self, service: ReviewService, secure: bool) -> None:
        self.service = service
        self.reviews = service.reviews
        self.keys = service.keys
        self.secure = secure
        self.env = Environment(
            loader=PackageLoader("bridge.review", "templates"), autoescape=select_autoescape(["html"])
        )
        self.env.globals.update(
            counts=counts,
            money=_money,
            kind_words=KIND_WORDS,
            outcome_words=OUTCOME_WORDS,
            channel_words=_channel_words,
        )

    # -- plumbing -----------------------------------------------------------------------------------

    def render(self, name: str, session: Session | None, status: int = 200, **values: Any) -> HTMLResponse:
        who = ""
        if session is not None and session.signed_in:
            who = f"one-time link ({session.via})" if session.by_link else f"signed in as {session.user}"
        html = self.env.get_template(name).render(session=session, who=who, **values)
        response = HTMLResponse(html, status_code=status, headers=_HEADERS)
        if session is not None:
            self.set_cookie(response, session)
        return response

    def set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            auth.SESSION_COOKIE,
            self.keys.dump_session(session),
            max_age=self.keys.session_age,
            path="/review",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )

    def session(self, request: Request) -> Session | None:
        return self.keys.load_session(request.cookies.get(auth.SESSION_COOKIE))

    def message(self, session: Session | None, title: str, text: str, status: int) -> HTMLResponse:
        return self.render("message.html", session, status, title=title, text=text)

    def visible(self, session: Session, stored: ReviewPlan | None) -> bool:
        if stored is None:
            return False
        if session.by_link:
            return stored.id == session.plan
        user = self.reviews.user(session.user or "")
        return user is not None and user.may_see(stored.connection)

    def reviewer(self, session: Session, form: Mapping[str, Any]) -> str | None:
        if not session.by_link:
            return session.user
        name = str(form.get("name", "")).strip()
        return f"{name} (one-time link from {session.via or 'a notice'})" if name else None

    # -- pages --------------------------------------------------------------------------------------

    async def signin_form(self, request: Request) -> Response:
        session = self.session(request) or self.keys.new_session(None)
        return self.render("signin.html", session, next=_safe_next(request.query_params.get("next")))

    async def signin(self, request: Request) -> Response:
        form = await request.form()
        session = self.session(request)
        if not auth.csrf_ok(session, form.get("csrf")):
            return self.message(self.keys.new_session(None), "Refused", "The form had expired; sign in again.", 403)
        name = str(form.get("name", "")).strip()
        password = str(form.get("password", ""))
        nxt = _safe_next(str(form.get("next", "")))
        ok, throttled = await run_in_threadpool(self._check, name, password)
        if throttled:
            text = "Too many failed sign-ins for this name; wait 15 minutes and try again."
            return self.render("signin.html", session, 429, next=nxt, message=text, error=True)
        if not ok:
            return self.render("signin.html", session, 401, next=nxt, message="Wrong name or password.", error=True)
        response = RedirectResponse(nxt, status_code=303, headers=_HEADERS)
        self.set_cookie(response, self.keys.new_session(name))  # a new session (and CSRF token) at sign-in
        return response

    def _check(self, name: str, password: str) -> tuple[bool, bool]:
        if auth.throttled(self.reviews, name):
            return False, True
        if auth.check_password(self.reviews.user(name), password):
            self.reviews.clear_failures(name)
            return True, False
        self.reviews.failed_sign_in(name)
        return False, False

    async def signout(self, request: Request) -> Response:
        form = await request.form()
        session = self.session(request)
        if session is None or not session.signed_in:
            return self.message(None, "Not signed in", "There is no session to end.", 401)
        if not auth.csrf_ok(session, form.get("csrf")):
            return self.message(session, "Refused", "The form was not sent from this page (CSRF token).", 403)
        response = RedirectResponse("/review/signin", status_code=303, headers=_HEADERS)
        response.delete_cookie(auth.SESSION_COOKIE, path="/review")
        return response

    async def link(self, request: Request) -> Response:
        try:
            plan_id, token_id, via = self.keys.read_link_token(request.path_params["token"])
        except ValueError as exc:
            return self.message(None, "Link refused", str(exc), 403)
        if not await run_in_threadpool(self.reviews.use_link, token_id):
            return self.message(None, "Link already used", "This link works once; sign in to open the plan.", 410)
        response = RedirectResponse(f"/review/{quote(plan_id)}", status_code=303, headers=_HEADERS)
        self.set_cookie(response, self.keys.new_session("link", plan=plan_id, via=via))
        return response

    async def index(self, request: Request) -> Response:
        session = self.session(request)
        assert session is not None
        stored = await run_in_threadpool(self.reviews.plans, states=("pending", "approved", "rejected"), limit=100)
        shown = [p for p in stored if self.visible(session, p)]
        return self.render(
            "list.html",
            session,
            pending=[p for p in shown if p.state == "pending"],
            decided=[p for p in shown if p.state != "pending"][:20],
        )

    async def plan(self, request: Request) -> Response:
        session = self.session(request)
        assert session is not None
        stored = await run_in_threadpool(self.reviews.get, request.path_params["plan_id"])
        if stored is None or not self.visible(session, stored):
            return self.message(session, "No such plan", "There is no plan here for you.", 404)
        return self._plan_page(session, stored)

    def _plan_page(self, session: Session, stored: ReviewPlan, status: int = 200, **more: Any) -> HTMLResponse:
        return self.render(
            "plan.html",
            session,
            status,
            stored=stored,
            pending=stored.state == "pending",
            groups=_groups(stored.plan),
            result=stored.result,
            outcomes=_outcomes(stored),
            **more,
        )

    async def decide(self, request: Request) -> Response:
        session = self.session(request)
        assert session is not None
        form = await request.form()
        if not auth.csrf_ok(session, form.get("csrf")):
            return self.message(session, "Refused", "The form was not sent from this page (CSRF token).", 403)
        stored = await run_in_threadpool(self.reviews.get, request.path_params["plan_id"])
        if stored is None or not self.visible(session, stored):
            return self.message(session, "No such plan", "There is no plan here for you.", 404)
        by = self.reviewer(session, form)
        if by is None:
            return self._plan_page(session, stored, 400, message="Type your name first.", error=True)
        approving = request.url.path.endswith("/approve")
        try:
            if approving:
                keys = None if form.get("do") == "all" else [str(k) for k in form.getlist("key")]
                forgive = [str(k) for k in form.getlist("forgive")]
                note = str(form.get("note", "")).strip()
                await run_in_threadpool(self.service.approve, stored.id, by, keys=keys, forgive=forgive, note=note)
            else:
                reason = str(form.get("reason", "")).strip()
                if not reason:
                    return self._plan_page(session, stored, 400, message="Say why you reject it.", error=True)
                await run_in_threadpool(self.service.reject, stored.id, by, reason)
        except ConflictError as exc:
            fresh = self.reviews.get(stored.id) or stored
            return self._plan_page(session, fresh, 409, message=str(exc), error=True)
        except ValueError as exc:
            return self._plan_page(session, stored, 400, message=str(exc), error=True)
        return RedirectResponse(f"/review/{quote(stored.id)}", status_code=303, headers=_HEADERS)

    # -- guards -------------------------------------------------------------------------------------

    def signed_in(self, handler: Handler) -> Handler:
        """Pages redirect to the sign-in form without a session; forms answer 401."""

        async def guarded(request: Request) -> Response:
            session = self.session(request)
            if (
                session is not None
                and session.signed_in
                and (session.by_link or await run_in_threadpool(self.reviews.user, session.user or "") is not None)
            ):
                return await handler(request)
            if request.method == "GET":
                target = f"/review/signin?next={quote(request.url.path)}"
                return RedirectResponse(target, status_code=303, headers=_HEADERS)
            return self.message(None, "Sign in first", "This form needs a signed-in session.", 401)

        return guarded


def _safe_next(value: str | None) -> str:
    """Only a path of the review pages (never another site) to go on to after signing in."""
    if value and value.startswith("/review") and not value.startswith("//") and "\\" not in value:
        return value
    return "/review"


def review_routes(service: ReviewService, *, secure: bool | None = None) -> list[BaseRoute]:
    """The review routes, for `create_app(ctx, routes)`. Cookies are Secure when the public URL is HTTPS."""
    pages = _Pages(service, service.public_url.startswith("https://") if secure is None else secure)
    guard = pages.signed_in
    return [
        Route("/review/signin", pages.signin_form, methods=["GET"]),
        Route("/review/signin", pages.signin, methods=["POST"]),
        Route("/review/signout", pages.signout, methods=["POST"]),
        Route("/review/link/{token}", pages.link, methods=["GET"]),
        Route("/review", guard(pages.index), methods=["GET"]),
        Route("/review/{plan_id}", guard(pages.plan), methods=["GET"]),
        Route("/review/{plan_id}/approve", guard(pages.decide), methods=["POST"]),
        Route("/review/{plan_id}/reject", guard(pages.decide), methods=["POST"]),
    ]


def review_app(service: ReviewService, *, secure: bool | None = None) -> Starlette:
    """The review pages alone (tests, `bridge demo --review`); a server mounts `review_routes` instead."""
    return Starlette(routes=review_routes(service, secure=secure))
