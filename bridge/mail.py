"""One client e-mail, composed from a rendered message (pure: no I/O, no clock; the date is an argument).

`compose` turns a subject, a text body and an HTML body (derived from the text when the
message has none) into an `email.message.EmailMessage` ready for SMTP:

    multipart/mixed                      (only when a PDF goes with it)
    ├── multipart/alternative
    │   ├── text/plain; charset=utf-8
    │   └── text/html; charset=utf-8
    └── application/pdf                  (the provider's invoice, as an attachment)

Headers: `From` (the `[smtp] from` mailbox), `Reply-To` (`[firm] reply_to`), `To` (the
provider's customer e-mail), `Subject`, `Date`, and a `Message-ID` derived from the action
key, so the same reminder always carries the same id (a receiving server or a person can
see a repeat for what it is). Non-ASCII names and subjects are RFC 2047 encoded by
`email.policy.SMTP`; bodies are quoted-printable or base64, so the message is 7-bit clean.
Everything but `Date` is a function of the inputs: `bridge preview` and the real send make
the same bytes.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

__all__ = [
    "PdfAttachment",
    "compose",
    "html_from_text",
    "message_id",
    "pay_link_line",
    "with_pay_link",
]

# The words that introduce a pay link, per language of the contract's locale (English when not listed).
_PAY_LINK_WORDS: dict[str, str] = {
    "en": "View and pay the invoice online:",
    "ko": "온라인에서 청구서를 확인하고 결제하기:",
    "de": "Rechnung online ansehen und bezahlen:",
    "fr": "Consulter et régler la facture en ligne :",
    "es": "Ver y pagar la factura en línea:",
}
_URL = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class PdfAttachment:
    """The provider's invoice PDF, attached under `filename`."""

    filename: str
    content: bytes


def message_id(action_key: str, sender: str) -> str:
    """`<{first 32 hex digits of sha256(action key)}@{the sender's domain}>`: one id per action, ever."""
    digest = hashlib.sha256(action_key.encode("utf-8")).hexdigest()[:32]
    domain = sender.rpartition("@")[2].rstrip(">").strip() or "bridge.invalid"
    return f"<{digest}@{domain}>"


def pay_link_line(url: str, locale: str) -> str:
    """The line that offers the pay link, in the contract's language."""
    words = _PAY_LINK_WORDS.get(locale.replace("-", "_").split("_", 1)[0].lower(), _PAY_LINK_WORDS["en"])
    return f"{words}\n{url}"


def with_pay_link(text: str, url: str | None, locale: str) -> str:
    """`text` with the pay link added after the body (unchanged without one)."""
    if not url:
        return text
    return f"{text.rstrip()}\n\n{pay_link_line(url, locale)}\n"


def html_from_text(text: str) -> str:
    """A minimal HTML body from the text one: escaped, paragraphs kept, links clickable."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    parts = []
    for paragraph in paragraphs:
        escaped = html.escape(paragraph, quote=True)
        linked = _URL.sub(lambda m: f'<a href="{m[0]}">{m[0]}</a>', escaped)
        parts.append("<p>" + linked.replace("\n", "<br>\n") + "</p>")
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        f'<body style="font-family: sans-serif; line-height: 1.5;">\n{body}\n</body></html>\n'
    )


def compose(
    *,
    action_key: str,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    subject: str,
    text: str,
    html_body: str | None,
    date: datetime,
    reply_to: str | None = None,
    pdf: PdfAttachment | None = None,
) -> EmailMessage:
    """The e-mail, ready for `smtplib` (see the module docstring for its shape).

    `sender` is a mailbox header value (`Name <user@example.com>`); `date` must be aware.
    """
    if date.tzinfo is None:
        raise ValueError("the Date header needs an aware datetime")
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id(action_key, str(message["From"].addresses[0].addr_spec))
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html_body or html_from_text(text), subtype="html", charset="utf-8", cte="quoted-printable")
    if pdf is not None:
        message.add_attachment(pdf.content, maintype="application", subtype="pdf", filename=pdf.filename)
    _settle_boundaries(message, action_key)
    return message


def _settle_boundaries(message: EmailMessage, action_key: str) -> None:
    """Boundaries from the action key instead of random ones (the same inputs make the same bytes). `=_` never
    occurs in quoted-printable or base64 text, so such a boundary cannot collide with a body."""
    stem = hashlib.sha256(b"boundary:" + action_key.encode("utf-8")).hexdigest()[:24]
    for depth, part in enumerate(p for p in message.walk() if p.is_multipart()):
        part.set_boundary(f"=_bridge_{stem}_{depth}")
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]  # only the top of a message says it


def addresses(value: str) -> tuple[Address, ...]:
    """The addresses of a header value (the envelope recipients of `To`)."""
    probe = EmailMessage(policy=SMTP)
    probe["To"] = value
    return tuple(probe["To"].addresses)
