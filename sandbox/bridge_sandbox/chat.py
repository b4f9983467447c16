"""Team-chat webhooks, captured: what Flock, Slack, Teams and a generic webhook receiver would be sent.

Each endpoint takes the post in that service's real shape and answers as the service does; a post in the
wrong shape gets the service's kind of refusal (so a broken notice fails here as it would there):

- Flock incoming webhook: `POST /hooks/sendMessage/{token}`, JSON with `text` or `flockml` (a well-formed
  `<flockml>` document), at most 32,768 characters; answers `{"uid": ...}`.
- Slack incoming webhook: `POST /services/{T}/{B}/{secret}`, JSON with `text` or `blocks` (at most 50); answers
  `ok` as text, `invalid_blocks` / `no_text` with 400.
- Microsoft Teams Workflows webhook: `POST /workflows/{id}/triggers/manual/paths/invoke`, a `message` whose
  attachments are Adaptive Cards; answers 202.
- Generic webhook: `POST /_sandbox/chat/webhook`, any JSON; its headers (the signature) are kept.

`GET /_sandbox/chat` lists every post (channel, path, headers, body, time); `POST /_sandbox/chat/faults` with
`{"flock": 2}` makes the next two Flock posts answer 503 (to see a channel retried).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bridge_sandbox.core import Request, Response

ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("flock", re.compile(r"/hooks/sendMessage/[^/]+")),
    ("slack", re.compile(r"/services/[^/]+/[^/]+/[^/]+")),
    ("teams", re.compile(r"/workflows/[^/]+/triggers/manual/paths/invoke")),
    ("webhook", re.compile(r"/_sandbox/chat/webhook")),
)
KEPT_HEADERS = ("content-type", "x-bridge-signature", "user-agent")


class ChatCapture:
    """The chat endpoints and what they received."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._posts: list[dict[str, Any]] = []
        self._failing: dict[str, int] = {}
        self._ids = itertools.count(1)

    def channel_of(self, request: Request) -> str | None:
        """The chat service a POST is for, or None."""
        if request.method != "POST":
            return None
        return next((name for name, pattern in ROUTES if pattern.fullmatch(request.path)), None)

    def receive(self, channel: str, request: Request) -> Response:
        """Check the post's shape as the service would, record it, answer as the service does."""
        with self._lock:
            if self._failing.get(channel, 0) > 0:
                self._failing[channel] -= 1
                self._record(channel, request, None, 503, "fault injected")
                return Response.text(503, "Service Unavailable")
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return self._refuse(channel, request, None, 400, "invalid_payload")
        problem = {"flock": _flock_problem, "slack": _slack_problem, "teams": _teams_problem}.get(channel, _no_problem)(
            body
        )
        if problem:
            return self._refuse(channel, request, body, 400, problem)
        with self._lock:
            uid = self._record(channel, request, body, 200, "")
        if channel == "flock":
            return Response.json(200, {"uid": f"sandbox-{uid}"})
        if channel == "slack":
            return Response.text(200, "ok")
        if channel == "teams":
            return Response(202)
        return Response.json(200, {"received": True})

    def _refuse(self, channel: str, request: Request, body: Any, status: int, problem: str) -> Response:
        with self._lock:
            self._record(channel, request, body, status, problem)
        if channel == "slack":
            return Response.text(status, problem)
        return Response.json(status, {"error": problem})

    def _record(self, channel: str, request: Request, body: Any, status: int, problem: str) -> int:
        uid = next(self._ids)
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() in KEPT_HEADERS}
        self._posts.append(
            {
                "id": uid,
                "channel": channel,
                "path": request.path,
                "status": status,
                "problem": problem,
                "headers": headers,
                "body": body,
                "raw": request.body.decode("utf-8", "replace"),
                "received_at": self._now().isoformat(),
            }
        )
        return uid

    def posts(self) -> list[dict[str, Any]]:
        """Every post received, oldest first."""
        with self._lock:
            return json.loads(json.dumps(self._posts))  # type: ignore[no-any-return]

    def fail_next(self, counts: dict[str, Any]) -> None:
        """Make the next N posts of each named channel answer 503."""
        with self._lock:
            for channel, n in counts.items():
                if channel not in {name for name, _ in ROUTES}:
                    raise ValueError(f"no chat channel {channel!r}")
                self._failing[channel] = int(n)

    def clear(self) -> None:
        """Forget every post and fault."""
        with self._lock:
            self._posts.clear()
            self._failing.clear()


def _no_problem(body: Any) -> str:
    return ""


def _flock_problem(body: Any) -> str:
    if not isinstance(body, dict) or not (body.get("text") or body.get("flockml")):
        return "a message needs text or flockml"
    if len(json.dumps(body, ensure_ascii=False)) > 32_768:
        return "message too long"
    if body.get("flockml"):
        try:
            root = ET.fromstring(body["flockml"])
        except ET.ParseError as exc:
            return f"flockml is not well-formed: {exc}"
        if root.tag != "flockml":
            return "flockml must be one <flockml> element"
    for attachment in body.get("attachments") or []:
        for button in attachment.get("buttons") or []:
            action = button.get("action") or {}
            if action.get("type") == "openBrowser" and not str(action.get("url", "")).startswith(
                ("http://", "https://")
            ):
                return "an openBrowser button needs a URL"
    return ""


def _slack_problem(body: Any) -> str:
    if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
        return "no_text"
    blocks = body.get("blocks") or []
    if (
        not isinstance(blocks, list)
        or len(blocks) > 50
        or not all(isinstance(b, dict) and b.get("type") for b in blocks)
    ):
        return "invalid_blocks"
    return ""


def _teams_problem(body: Any) -> str:
    if not isinstance(body, dict) or body.get("type") != "message":
        return "the body must be a message"
    attachments = body.get("attachments") or []
    if not attachments:
        return "the message has no attachments"
    for a in attachments:
        if a.get("contentType") != "application/vnd.microsoft.card.adaptive":
            return "only Adaptive Cards are supported"
        content = a.get("content") or {}
        if content.get("type") != "AdaptiveCard" or not content.get("version"):
            return "the attachment is not an Adaptive Card with a version"
    return ""
