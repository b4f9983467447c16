"""The sandbox's SMTP server (aiosmtpd): what the bridge's SMTP channel sends lands in `/_sandbox/outbox`.

Each accepted message becomes one outbox entry with `channel: "smtp"`: the envelope, every
header as received, the text and HTML parts, attachment names and the raw text. Faults
(`POST /_sandbox/faults` with an `smtp` entry) answer the end of DATA with 421, 450 or 554, or
accept the message and drop the connection before answering (`drop_after_data`: delivered, but
the sender never hears so).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from bridge_sandbox.core import Json

__all__ = ["SandboxSmtp", "outbox_entry"]

_ANSWERS = {
    "421": "421 4.3.2 Service not available, closing transmission channel (injected fault)",
    "450": "450 4.2.1 Mailbox busy, try again later (injected fault)",
    "554": "554 5.7.1 Message refused by policy (injected fault)",
}


def outbox_entry(envelope_from: str, envelope_to: list[str], raw: bytes, sent_at: str) -> dict[str, Json]:
    """The outbox's view of one received message."""
    parsed = message_from_bytes(raw, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    return {
        "channel": "smtp",
        "provider": "smtp",
        "tenant": None,
        "invoice_id": None,
        "message_id": str(parsed.get("Message-ID", "")),
        "from": str(parsed.get("From", "")),
        "to": str(parsed.get("To", "")),
        "envelope": {"from": envelope_from, "to": list(envelope_to)},
        "subject": str(parsed.get("Subject", "")),
        "body": text.get_content() if text is not None else "",
        "html": html.get_content() if html is not None else "",
        "attachments": [part.get_filename() or "" for part in parsed.iter_attachments()],
        "headers": [[name, str(value)] for name, value in parsed.items()],
        "raw": raw.decode("utf-8", "replace"),
        "sent_at": sent_at,
    }


class _Handler:
    def __init__(self, deliver: Callable[[dict[str, Any]], None], roll: Callable[[], str | None]) -> None:
        self.deliver = deliver
        self.roll = roll

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        fault = self.roll()
        if fault in _ANSWERS:
            return _ANSWERS[fault]
        raw = envelope.original_content or (envelope.content if isinstance(envelope.content, bytes) else b"")
        self.deliver({"from": envelope.mail_from or "", "to": list(envelope.rcpt_tos), "raw": raw})
        transport = server.transport
        if fault == "drop_after_data" and isinstance(transport, asyncio.Transport):
            transport.abort()  # delivered; the answer is never sent
        return "250 2.0.0 OK: queued"


class SandboxSmtp:
    """An SMTP server on loopback feeding `deliver`; optionally STARTTLS (`tls`) and AUTH (`logins`)."""

    def __init__(
        self,
        deliver: Callable[[dict[str, Any]], None],
        roll: Callable[[], str | None] = lambda: None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        logins: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or _free_port(host)
        kwargs: dict[str, Any] = {"tls_context": tls, "require_starttls": tls is not None}
        if logins is not None:
            accepted = dict(logins)

            def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                ok = isinstance(data, LoginPassword) and accepted.get(data.login.decode()) == data.password.decode()
                return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 235 or 535

            kwargs.update(authenticator=authenticate, auth_required=True, auth_require_tls=tls is not None)
        self.controller = Controller(_Handler(deliver, roll), hostname=host, port=self.port, ready_timeout=10, **kwargs)

    def start(self) -> None:
        """Serve in aiosmtpd's own thread."""
        self.controller.start()

    def stop(self) -> None:
        """Stop serving and close the port."""
        self.controller.stop()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
