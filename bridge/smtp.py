"""The SMTP channel: a reminder (or a renegotiation answer) sent from the firm's own mailbox.

`SmtpTransport.send` hands one message to the `[smtp]` server with `smtplib`: STARTTLS,
implicit TLS, or plain only to a loopback host (the config refuses anything else), and
AUTH with the password from the environment variable `password_env`. What its failures
mean to the ledger (`bridge.errors`):

- a 4xx answer, or a line that broke before the whole message was sent: `MailDeferred`,
  nothing was accepted, tried again within the retry budget (the connectors' tenacity policy);
- a 5xx answer (to MAIL, RCPT, DATA, the message, or the login): `MailRejected` with the
  server's own words; that reminder fails, nothing was sent;
- the whole message sent and then no answer: `MailLost` (`outcome_unknown`), so the reminder
  is `in_doubt` and never sent again.

`SmtpChannel` wraps a provider connector: every call goes to the provider as before, except
the reminders (and renegotiation answers) whose channel is `smtp`, which it composes
(`bridge.mail`) with the provider's PDF and pay link where `[smtp]` asks for them and the
provider offers them, and sends here. A PDF that cannot be fetched does not stop the reminder:
it goes without, and the result says so. Where the provider keeps an invoice history (Xero),
the reminder is noted there after the server's 250.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from bridge import clock, killpoints
from bridge.config import FirmSettings, SmtpSettings
from bridge.connectors.base import Applied, Connector, Evidence
from bridge.connectors.http import CallStats, RetryPolicy
from bridge.errors import BridgeError, ConfigError, MailDeferred, MailLost, MailRejected
from bridge.mail import PdfAttachment, compose, with_pay_link
from bridge.messages import DEFAULT_SET, html_body, template_language
from bridge.plan import Action, ActionKind

__all__ = ["Composed", "SmtpChannel", "SmtpTransport", "compose_for", "smtp_actions"]

_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")


def _words(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(text.split())}".strip()


class _Conversation:
    """One SMTP session; `handed_over` turns True once the whole message (and its final dot) was written."""

    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp
        self.handed_over = False

    def check(self, code: int, reply: bytes, what: str, ok: Sequence[int] = (250,)) -> None:
        if code in ok:
            return
        words = _words(code, reply)
        if 400 <= code < 500:
            raise MailDeferred(f"the mail server deferred {what}: {words}")
        raise MailRejected(f"the mail server refused {what}: {words}")

    def deliver(self, sender: str, recipients: Sequence[str], data: bytes) -> str:
        smtp = self.smtp
        code, reply = smtp.mail(sender)
        self.check(code, reply, f"the sender {sender}")
        for rcpt in recipients:
            code, reply = smtp.rcpt(rcpt)
            self.check(code, reply, f"the recipient {rcpt}", ok=(250, 251))
        smtp.putcmd("data")
        code, reply = smtp.getreply()
        self.check(code, reply, "the message (DATA)", ok=(354,))
        body = _DOT_AT_LINE_START.sub(b"..", data)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        smtp.send(body + b".\r\n")
        self.handed_over = True
        killpoints.reached("smtp-data-sent")  # the whole message is with the server; its answer not yet read
        code, reply = smtp.getreply()
        self.check(code, reply, "the message")
        return _words(code, reply)


@dataclass
class SmtpTransport:
    """Sends messages through `[smtp]`, one SMTP session per message, under the retry policy."""

    settings: SmtpSettings
    env: Mapping[str, str]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    stats: CallStats = field(default_factory=CallStats)
    # The TLS context (tests trust their own certificate authority here; by default the system's).
    tls: ssl.SSLContext | None = None

    def password(self) -> str | None:
        """The password from `password_env` (needed only with a username); a `ConfigError` when unset."""
        if self.settings.username is None:
            return None
        value = self.env.get(self.settings.password_env)
        if not value:
            raise ConfigError(
                f"smtp.password_env: the environment variable {self.settings.password_env} is not set "
                f"(it holds the password of {self.settings.username} at {self.settings.host})"
            )
        return value

    def send(self, message: EmailMessage, bcc: Sequence[str] = ()) -> str:
        """Hand `message` over (and to the blind copies `bcc`, envelope only: no header names them); returns the
        server's final answer (`250 ...`)."""
        password = self.password()
        data = message.as_bytes()
        sender = str(message["From"].addresses[0].addr_spec)
        recipients = [str(a.addr_spec) for header in ("To", "Cc") for a in (message[header] or _NoAddresses).addresses]
        recipients += [a for a in bcc if a not in recipients]
        return self.policy.call(lambda: self._once(sender, recipients, data, password), self.stats)

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        timeout = float(s.timeout_seconds)
        context = self.tls or ssl.create_default_context()
        if s.security == "ssl":
            return smtplib.SMTP_SSL(s.host, s.effective_port, timeout=timeout, context=context)
        smtp = smtplib.SMTP(s.host, s.effective_port, timeout=timeout)
        if s.security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                smtp.close()
                raise MailRejected(f"{s.host}:{s.effective_port} does not offer STARTTLS; nothing was sent in clear")
            code, reply = smtp.starttls(context=context)
            if code != 220:
                smtp.close()
                raise MailDeferred(f"STARTTLS failed: {_words(code, reply)}")
        return smtp

    def _once(self, sender: str, recipients: Sequence[str], data: bytes, password: str | None) -> str:
        conversation: _Conversation | None = None
        try:
            smtp = self._open()
            conversation = _Conversation(smtp)
            try:
                smtp.ehlo()
                if self.settings.username is not None and password is not None:
                    smtp.login(self.settings.username, password)
                answer = conversation.deliver(sender, recipients, data)
            finally:
                _quit(smtp)
            return answer
        except smtplib.SMTPAuthenticationError as exc:
            raise MailRejected(
                f"the mail server refused the login of {self.settings.username}: "
                f"{_words(exc.smtp_code, exc.smtp_error)}"
            ) from None
        except smtplib.SMTPResponseException as exc:  # 421 on connect, a refused EHLO, ...
            code = exc.smtp_code
            cls = MailDeferred if 400 <= code < 500 else MailRejected
            raise cls(f"the mail server answered {_words(code, exc.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as exc:  # broken line, timeout, TLS failure, refused connection
            where = f"{self.settings.host}:{self.settings.effective_port}"
            if conversation is not None and conversation.handed_over:
                raise MailLost(
                    f"the message was sent to {where} but its answer was lost ({type(exc).__name__}: {exc}); "
                    "it may have been accepted: not sent again"
                ) from None
            raise MailDeferred(f"could not hand the message to {where} ({type(exc).__name__}: {exc})") from None


class _NoAddresses:
    addresses: tuple[Any, ...] = ()


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


# -- what goes out ------------------------------------------------------------------------------


def smtp_actions(action: Action) -> bool:
    """True for a message this channel sends: a reminder or a renegotiation answer whose channel is smtp."""
    return (
        action.channel == "smtp"
        and action.kind
        in (
            ActionKind.REMINDER,
            ActionKind.RENEGOTIATION_REFUSED,
            ActionKind.UPDATE_DUE_DATE,
        )
        and bool(action.to)
        and action.subject is not None
        and action.body is not None
    )


@dataclass(frozen=True)
class Composed:
    """One e-mail as it will be received, and what could not go with it."""

    message: EmailMessage
    attachments: tuple[str, ...]
    pay_link: str | None
    notes: tuple[str, ...]  # e.g. the PDF that could not be fetched
    bcc: tuple[str, ...] = ()  # blind copies: envelope recipients, in no header


def compose_for(
    action: Action,
    connector: Connector,
    smtp: SmtpSettings,
    firm: FirmSettings | None,
    locale: str,
    date: datetime,
) -> Composed:
    """The e-mail `action` sends, with the provider's PDF and pay link as `[smtp]` asks and the provider offers.

    A PDF or pay link that cannot be fetched is left out and said in `notes`; the message goes regardless.
    """
    assert action.subject is not None and action.body is not None and action.to
    notes: list[str] = []
    pdf: PdfAttachment | None = None
    link: str | None = None
    invoice_id, number = action.invoice.id, action.invoice.number
    if smtp.attach_pdf:
        fetched = _fetch(lambda: connector.invoice_pdf(invoice_id), "the invoice PDF", notes)  # type: ignore[attr-defined]
        if isinstance(fetched, bytes) and fetched:
            pdf = PdfAttachment(f"invoice-{_file_safe(number)}.pdf", fetched)
    if smtp.include_pay_link and action.kind is ActionKind.REMINDER:
        fetched = _fetch(lambda: connector.pay_link(invoice_id), "the pay link", notes)  # type: ignore[attr-defined]
        link = fetched if isinstance(fetched, str) and fetched else None
    text = with_pay_link(action.body, link, locale)
    message = compose(
        action_key=action.key,
        sender=smtp.from_,
        to=[action.to],
        cc=action.cc,
        subject=action.subject,
        text=text,
        # The same words as the text, escaped; only the provider's pay link is made clickable.
        html_body=html_body(
            text, subject=action.subject, lang=template_language(DEFAULT_SET, locale), links=[link] if link else []
        ),
        date=date,
        reply_to=firm.reply_to if firm else None,
        pdf=pdf,
    )
    return Composed(message, (pdf.filename,) if pdf else (), link, tuple(notes), action.bcc)


def _fetch(get: Callable[[], Any], what: str, notes: list[str]) -> Any:
    try:
        value = get()
    except AttributeError:
        notes.append(f"{what}: this provider's connector cannot fetch it; sent without")
        return None
    except BridgeError as exc:
        notes.append(f"{what} could not be fetched ({exc}); sent without")
        return None
    if value is None:
        notes.append(f"{what}: the provider offers none for this invoice; sent without")
    return value


def _file_safe(number: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", number).strip("._") or "invoice"


class SmtpChannel:
    """A provider connector whose `smtp`-channel messages go through the firm's mailbox instead.

    Everything else (pull, read, fees, due dates, flush) is the provider connector's, unchanged.
    """

    def __init__(
        self,
        connector: Connector,
        transport: SmtpTransport,
        firm: FirmSettings | None,
        locale_of: Callable[[Action], str],
        now: Callable[[], datetime] = clock.now_utc,
    ) -> None:
        self.inner = connector
        self.transport = transport
        self.firm = firm
        self.locale_of = locale_of
        self.now = now
        self.sent_notes: dict[str, tuple[str, ...]] = {}  # per action key: what did not go with the message

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def apply(self, action: Action, raw_invoice: Mapping[str, Any]) -> Applied:
        """An smtp-channel message: composed and sent here; the rest: the provider connector's.

        An accepted renegotiation writes its new due date first (exactly once, as ever); its answer then goes
        as well as it can: a failed or lost answer is said in the result, never undoes the due date."""
        if not smtp_actions(action):
            return self.inner.apply(action, raw_invoice)
        if action.kind is ActionKind.UPDATE_DUE_DATE:
            written = self.inner.apply(action, raw_invoice)
            try:
                sent = self._send(action, raw_invoice)
            except BridgeError as exc:
                return Applied(f"{written.response_id} (answer not sent: {exc})", written.form, written.invoice)
            return Applied(f"{written.response_id} {sent.response_id}", written.form, written.invoice)
        return self._send(action, raw_invoice)

    def _send(self, action: Action, raw_invoice: Mapping[str, Any]) -> Applied:
        composed = compose_for(
            action, self.inner, self.transport.settings, self.firm, self.locale_of(action), self.now()
        )
        self.transport.send(composed.message, composed.bcc)
        self.sent_notes[action.key] = composed.notes
        if getattr(self.inner, "keeps_history", False) and action.kind is ActionKind.REMINDER:
            self.inner.note_sent(action)  # type: ignore[attr-defined]
        return Applied(str(composed.message["Message-ID"]), _form(composed))

    def evidence(self, action: Action, pending_since: str) -> Evidence:
        """An smtp message left pending: no mailbox shows what a killed process handed over, so it is in doubt
        (never sent again) unless the provider's invoice history noted it; the rest is the provider connector's."""
        if not smtp_actions(action) or action.kind is ActionKind.UPDATE_DUE_DATE:
            return self.inner.evidence(action, pending_since)
        if action.kind is ActionKind.REMINDER and getattr(self.inner, "keeps_history", False):
            found = self.inner.evidence(action, pending_since)
            if found.found == "applied":
                return found
        return Evidence("unknown", detail="sent by SMTP: the mail server keeps no record the bridge can ask")


def _form(composed: Composed) -> str:
    parts = ["smtp"]
    if composed.attachments:
        parts.append("pdf")
    if composed.pay_link:
        parts.append("link")
    if composed.notes:
        parts.append("without:" + ",".join("pdf" if "PDF" in n else "link" for n in composed.notes))
    return "+".join(parts)
