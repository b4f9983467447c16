"""Posting notices: each configured channel on its own, retried, reported, never raising into a sync.

    channels = Channels(settings.notify, os.environ)
    for delivery in channels.send(notice):       # one Delivery per channel: ok, attempts, error
        ...
    notifier = Notifier(channels)                 # the same, on a background thread: a run never waits
    notifier.notify(notice)

A channel answering 5xx, 429 or not at all is tried again (tenacity: up to `attempts` tries, exponential
back-off); any other refusal fails at once. The generic webhook's body is signed
`X-Bridge-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from bridge.notify import formats
from bridge.notify.formats import Notice
from bridge.notify.settings import NotifySettings

log = logging.getLogger("bridge.notify")

SIGNATURE_HEADER = "X-Bridge-Signature"
LinkFor = Callable[[str], str]
"""A channel's own link to the page."""
EmailSender = Callable[[Sequence[str], str, str], None]
"""Sends one e-mail (to, subject, text) through `[smtp]`."""


def sign(secret: str, body: bytes) -> str:
    """The generic webhook's signature header value."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of `body` under `secret` (for receivers, and the tests)."""
    return bool(header) and hmac.compare_digest(sign(secret, body), (header or "").strip())


@dataclass(frozen=True)
class Delivery:
    """What became of one notice on one channel."""

    channel: str
    ok: bool
    attempts: int
    error: str = ""


class _Retryable(Exception):
    """A refusal worth trying again (5xx, 429)."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (_Retryable, httpx.TransportError))


class Channels:
    """The configured channels, posting synchronously (see `Notifier` for the background)."""

    def __init__(
        self,
        settings: NotifySettings,
        env: Mapping[str, str],
        *,
        email: EmailSender | None = None,
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self._env = env
        self._email = email
        self._attempts = attempts
        self._backoff = backoff
        self._timeout = timeout

    def wants(self, kind: str) -> bool:
        """True when `[notify].on` lists this kind of notice."""
        return kind in self.settings.on

    def send(self, notice: Notice, link_for: LinkFor | None = None) -> list[Delivery]:
        """Post `notice` to every configured channel (when `[notify].on` lists its kind).

        `link_for(channel)` gives each channel a link of its own (one-time links work once: one per channel).
        """

        def to(channel: str) -> Notice:
            return notice if link_for is None else dataclasses.replace(notice, link=link_for(channel))

        if not self.wants(notice.kind):
            return []
        s = self.settings
        out: list[Delivery] = []
        chats = (
            ("flock", s.flock, formats.flock),
            ("slack", s.slack, formats.slack),
            ("teams", s.teams, formats.teams),
        )
        for name, chat, build in chats:
            if chat is not None:
                out.append(self._post(name, self._env.get(chat.webhook_url_env, ""), build(to(name)), None))
        if s.webhook is not None:
            secret = self._env.get(s.webhook.secret_env, "")
            url = self._env.get(s.webhook.url_env, "")
            if not secret:
                out.append(
                    Delivery("webhook", False, 0, f"${s.webhook.secret_env} is not set: nothing signed, not sent")
                )
            else:
                out.append(self._post("webhook", url, formats.webhook(to("webhook")), secret))
        if s.email is not None:
            out.append(self._mail(s.email.to, to("email")))
        for d in out:
            if not d.ok:
                log.warning(
                    "%s: notice (%s) to %s failed after %d attempt(s): %s",
                    notice.connection,
                    notice.kind,
                    d.channel,
                    d.attempts,
                    d.error,
                )
        return out

    def _post(self, channel: str, url: str, payload: dict[str, Any], secret: str | None) -> Delivery:
        if not url:
            return Delivery(channel, False, 0, "the webhook URL's environment variable is not set")
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        tries = 0

        def once() -> None:
            nonlocal tries
            tries += 1
            with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
                answer = client.post(url, content=body, headers=headers)
            if answer.status_code >= 500 or answer.status_code == 429:
                raise _Retryable(f"HTTP {answer.status_code}")
            if answer.status_code >= 300:
                raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")

        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff, max=8),
            retry=retry_if_exception(_retryable),
            reraise=False,
        )
        try:
            retrying(once)
        except RetryError as exc:
            return Delivery(channel, False, tries, _describe(exc.last_attempt.exception()))
        except Exception as exc:
            return Delivery(channel, False, tries, _describe(exc))
        return Delivery(channel, True, tries)

    def _mail(self, to: Sequence[str], notice: Notice) -> Delivery:
        if self._email is None:
            return Delivery("email", False, 0, "no [smtp] sender in this process: the e-mail digest was not sent")
        subject, text = formats.email([notice])
        try:
            self._email(to, subject, text)
        except Exception as exc:
            return Delivery("email", False, 1, _describe(exc))
        return Delivery("email", True, 1)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Notifier:
    """Channels on one background thread: `notify` returns at once; a slow or dead channel never holds a run."""

    def __init__(self, channels: Channels) -> None:
        self.channels = channels
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-notify")
        self.sent: list[Future[list[Delivery]]] = []  # what was handed over, in order (for reports and tests)

    def notify(self, notice: Notice, link_for: LinkFor | None = None) -> Future[list[Delivery]]:
        """Send in the background; the future holds each channel's delivery."""
        future = self._pool.submit(self._safe, notice, link_for)
        self.sent.append(future)
        return future

    def _safe(self, notice: Notice, link_for: LinkFor | None) -> list[Delivery]:
        try:
            return self.channels.send(notice, link_for)
        except Exception:  # a bug in a format must not kill the thread for the next notice
            log.exception("%s: notice (%s) could not be built", notice.connection, notice.kind)
            return [Delivery("all", False, 0, "the notice could not be built")]

    def close(self) -> None:
        """Wait for the notices in flight, then stop the thread."""
        self._pool.shutdown(wait=True)
