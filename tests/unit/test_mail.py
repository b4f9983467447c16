"""bridge.mail: one client e-mail from a rendered message, deterministic apart from Date."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest

from bridge.mail import PdfAttachment, compose, html_from_text, message_id, with_pay_link

SENDER = "Maple & Fïnch Accounts <accounts@mapleandfinch.example>"
KEY = "reminder:acme-qbo:130:5"
TEXT = "Dear 김민준,\n\nInvoice 1037 (₩1,500,000) is due.\n\nhttps://pay.example/i/130?x=1&y=2\n\nKind regards,"


def _compose(date: datetime, **overrides: object) -> EmailMessage:
    args: dict[str, object] = {
        "action_key": KEY,
        "sender": SENDER,
        "to": ["김민준 <minjun@client.example>"],
        "subject": "청구서 1037: 결제 안내 — Rappel «facture»",
        "text": TEXT,
        "html_body": None,
        "date": date,
        "reply_to": "accounts@mapleandfinch.example",
        "pdf": PdfAttachment("invoice-1037.pdf", b"%PDF-1.4\n%%EOF\n"),
    }
    args.update(overrides)
    return compose(**args)  # type: ignore[arg-type]


def _lines(text: str) -> str:
    """A part's text with its wire line ends (CRLF) read as newlines."""
    return text.replace("\r\n", "\n")


def _without_date(raw: bytes) -> bytes:
    return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"Date: "))


def test_the_same_action_makes_the_same_bytes_apart_from_the_date() -> None:
    first = _compose(datetime(2026, 10, 20, 9, 0, tzinfo=UTC)).as_bytes()
    later = _compose(datetime(2026, 10, 21, 17, 30, tzinfo=timezone(timedelta(hours=9)))).as_bytes()
    assert first != later
    assert _without_date(first) == _without_date(later)
    assert b"Date: Tue, 20 Oct 2026 09:00:00 +0000\r\n" in first


def test_message_id_is_derived_from_the_action_key_at_the_senders_domain() -> None:
    message = _compose(datetime(2026, 10, 20, tzinfo=UTC))
    digest = hashlib.sha256(KEY.encode()).hexdigest()[:32]
    assert message["Message-ID"] == f"<{digest}@mapleandfinch.example>"
    assert message_id("reminder:acme-qbo:130:6", "a@mapleandfinch.example") != message["Message-ID"]


def test_non_ascii_names_and_subjects_are_encoded_and_the_message_is_7_bit() -> None:
    raw = _compose(datetime(2026, 10, 20, tzinfo=UTC)).as_bytes()
    assert all(byte < 128 for byte in raw)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "=?utf-8?" in head  # RFC 2047 encoded words
    assert "<accounts@mapleandfinch.example>" in head and "<minjun@client.example>" in head
    parsed = message_from_bytes(raw, policy=default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == "청구서 1037: 결제 안내 — Rappel «facture»"
    assert parsed["From"].addresses[0].display_name == "Maple & Fïnch Accounts"
    assert parsed["To"].addresses[0].display_name == "김민준"
    assert parsed["Reply-To"] == "accounts@mapleandfinch.example"


def test_text_and_html_are_alternatives_and_the_pdf_is_attached() -> None:
    parsed = message_from_bytes(_compose(datetime(2026, 10, 20, tzinfo=UTC)).as_bytes(), policy=default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/mixed"
    alternative, attachment = parsed.get_payload()  # type: ignore[misc]
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.get_payload()] == ["text/plain", "text/html"]
    assert attachment.get_filename() == "invoice-1037.pdf"
    assert attachment.get_content() == b"%PDF-1.4\n%%EOF\n"
    text = parsed.get_body(preferencelist=("plain",))
    assert text is not None and _lines(text.get_content()).rstrip("\n") == TEXT
    html = parsed.get_body(preferencelist=("html",))
    assert html is not None
    assert '<a href="https://pay.example/i/130?x=1&amp;y=2">' in html.get_content()


def test_without_a_pdf_the_message_is_just_the_two_alternatives() -> None:
    parsed = message_from_bytes(_compose(datetime(2026, 10, 20, tzinfo=UTC), pdf=None).as_bytes(), policy=default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert not list(parsed.iter_attachments())  # type: ignore[attr-defined]


def test_a_given_html_body_is_used_as_is() -> None:
    parsed = message_from_bytes(
        _compose(datetime(2026, 10, 20, tzinfo=UTC), html_body="<p>Hello <b>there</b></p>\n").as_bytes(),
        policy=default,
    )
    html = parsed.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    assert _lines(html.get_content()) == "<p>Hello <b>there</b></p>\n"


def test_html_from_text_escapes_what_the_text_holds() -> None:
    html = html_from_text("Client <script>alert(1)</script> & Co\nline two\n\nnext")
    assert "<script>" not in html
    assert "Client &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co<br>\nline two" in html
    assert html.count("<p>") == 2


def test_a_naive_date_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        _compose(datetime(2026, 10, 20))  # noqa: DTZ001 (the point: a naive date)


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("en_US", "View and pay the invoice online:"),
        ("ko_KR", "온라인에서 청구서를 확인하고 결제하기:"),
        ("de_DE", "Rechnung online ansehen und bezahlen:"),
        ("fr_FR", "Consulter et régler la facture en ligne :"),
        ("es_ES", "Ver y pagar la factura en línea:"),
        ("pt_BR", "View and pay the invoice online:"),
    ],
)
def test_the_pay_link_is_offered_in_the_contracts_language(locale: str, words: str) -> None:
    assert with_pay_link("Body.\n", "https://pay.example/1", locale) == f"Body.\n\n{words}\nhttps://pay.example/1\n"
    assert with_pay_link("Body.\n", None, locale) == "Body.\n"
