"""The SMTP channel end to end: the emulated books, `bridge` in-process, a real SMTP server (aiosmtpd) in-process
with STARTTLS (a certificate made here) and AUTH. What arrives is what `bridge preview --out` wrote."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge import clock
from bridge_sandbox import Sandbox
from bridge_sandbox.smtp import SandboxSmtp
from tests.runner import Result, run_bridge
from tests.torture.harness import AS_OF, Trial

LOGIN, PASSWORD = "accounts@mapleandfinch.example", "correct horse battery staple"
SENDER = "Maple & Finch Accounts <accounts@mapleandfinch.example>"


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own authority), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bridge test mail server")])
    now = clock.now_utc()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class Mailbox:
    """The mail server's side: what it accepted, and the faults it is told to answer with (in order)."""

    host: str
    port: int
    cert: Path
    received: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str | None] = field(default_factory=list)

    def roll(self) -> str | None:
        return self.faults.pop(0) if self.faults else None

    def messages(self) -> list[EmailMessage]:
        out = []
        for item in self.received:
            parsed = message_from_bytes(item["raw"], policy=default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as running:
        yield running


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    cert, key = _certificate(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    box = Mailbox("127.0.0.1", 0, cert)
    server = SandboxSmtp(box.received.append, box.roll, tls=tls, logins={LOGIN: PASSWORD})
    box.port = server.port
    server.start()
    try:
        yield box
    finally:
        server.stop()


Bridge = Callable[..., Result]


@pytest.fixture
def bridge(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Bridge:
    return run_bridge(capsys, monkeypatch)


def _trial(
    sandbox: Sandbox, mailbox: Mailbox, folder: Path, monkeypatch: pytest.MonkeyPatch, providers: tuple[str, ...]
) -> Trial:
    """Books linked to the sandbox, the contracts' reminders by SMTP through `mailbox` (STARTTLS, AUTH)."""
    trial = Trial(sandbox, folder, providers)
    head = (
        '[firm]\nname = "Maple & Finch Design"\nreply_to = "accounts@mapleandfinch.example"\n\n'
        f'[smtp]\nhost = "{mailbox.host}"\nport = {mailbox.port}\nsecurity = "starttls"\n'
        f'username = "{LOGIN}"\npassword_env = "BRIDGE_TEST_SMTP_PASSWORD"\nfrom = "{SENDER}"\n'
        "attach_pdf = true\ninclude_pay_link = true\n\n"
    )
    text = trial.config.read_text()
    assert 'channel = "provider"' in text
    trial.config.write_text(head + text.replace('channel = "provider"', 'channel = "smtp"'))
    for name, value in trial.env().items():
        if name.startswith("BRIDGE_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)
    monkeypatch.setenv("BRIDGE_TEST_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", str(mailbox.cert))  # the system's trust store, for this test: our CA
    return trial


def _args(trial: Trial, *args: str) -> list[str]:
    return ["--config", str(trial.config), "--as-of", AS_OF, *args]


def _without_date(raw: bytes) -> tuple[list[tuple[str, str]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    message = message_from_bytes(head + b"\r\n\r\n", policy=default)
    return [(k, str(v)) for k, v in message.items() if k.lower() != "date"], body


def test_what_arrives_is_what_preview_wrote_with_the_amount_after_the_runs_fees(
    bridge: Bridge, sandbox: Sandbox, mailbox: Mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trial = _trial(sandbox, mailbox, tmp_path / "books", monkeypatch, ("quickbooks", "xero", "freshbooks"))
    out = tmp_path / "eml"
    shown = bridge(*_args(trial, "preview", "--out", str(out)))
    assert shown.code == 0, shown.err
    assert mailbox.received == []  # a preview sends nothing
    written = {p.name: p.read_bytes() for p in out.glob("*.eml")}
    assert len(written) >= 10

    result = bridge(*_args(trial, "--json", "sync"))
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    by_smtp = [a for a in plan["actions"] if a.get("channel") == "smtp" and a["kind"] == "reminder"]
    assert len(by_smtp) == len(written) == len(mailbox.received)
    assert {a["key"] for a in plan["applied"]} >= {a["key"] for a in by_smtp}
    assert not plan["failed"]

    arrived = {str(m["Message-ID"]): item["raw"] for m, item in zip(mailbox.messages(), mailbox.received, strict=True)}
    previewed = {str(message_from_bytes(raw, policy=default)["Message-ID"]): raw for raw in written.values()}
    assert arrived.keys() == previewed.keys()
    fee_this_run = {
        _message_id(a["key"]) for a in by_smtp if Decimal(a["balance"]) != Decimal(a["invoice"]["amount_due"])
    }
    assert fee_this_run  # some reminders state a balance that includes this run's late fee
    for message_id, raw in arrived.items():
        if message_id not in fee_this_run:
            assert _without_date(raw) == _without_date(previewed[message_id]), message_id
            continue
        # The provider's PDF is fetched at the send: by then it shows this run's fee, which the preview (before the
        # fee was written) could not. Everything else is byte for byte the same.
        assert _without_date(_pdf_blanked(raw)) == _without_date(_pdf_blanked(previewed[message_id])), message_id

    after_fees = 0
    for action, message in _pairs(by_smtp, mailbox.messages()):
        assert message["To"] == action["to"]
        assert message["Reply-To"] == "accounts@mapleandfinch.example"
        assert [p.get_filename() for p in message.iter_attachments()] == [f"invoice-{action['invoice']['number']}.pdf"]
        pdf = next(message.iter_attachments()).get_content()
        assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
        text = message.get_body(preferencelist=("plain",))
        assert text is not None
        balance = Decimal(action["balance"])
        assert f"{balance:,.2f}" in text.get_content()
        if balance != Decimal(action["invoice"]["amount_due"]):
            after_fees += 1
            assert f"{Decimal(action['invoice']['amount_due']):,.2f}" not in text.get_content()
        html = message.get_body(preferencelist=("html",))
        assert html is not None and f"{balance:,.2f}" in html.get_content()
    assert after_fees >= 1

    again = bridge(*_args(trial, "--json", "sync"))
    assert again.code == 0, again.err
    assert len(mailbox.received) == len(by_smtp)  # nothing sent twice


def _message_id(key: str) -> str:
    from bridge.mail import message_id

    return message_id(key, SENDER)


def _pdf_blanked(raw: bytes) -> bytes:
    """The message with its PDF attachment's base64 lines removed."""
    head, _, rest = raw.partition(b"Content-Type: application/pdf")
    part_head, _, part_rest = rest.partition(b"\r\n\r\n")
    _, _, tail = part_rest.partition(b"\r\n\r\n")
    return head + b"Content-Type: application/pdf" + part_head + b"\r\n\r\n" + tail


def _pairs(actions: list[dict[str, Any]], messages: list[EmailMessage]) -> list[tuple[dict[str, Any], EmailMessage]]:
    """Each reminder with the message that carried it (the Message-ID is the action key's)."""
    from bridge.mail import message_id

    by_id = {str(m["Message-ID"]): m for m in messages}
    return [(a, by_id[message_id(a["key"], SENDER)]) for a in actions]


def test_4xx_is_retried_5xx_fails_with_the_servers_words_and_a_lost_answer_is_in_doubt_never_resent(
    bridge: Bridge, sandbox: Sandbox, mailbox: Mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trial = _trial(sandbox, mailbox, tmp_path / "books", monkeypatch, ("xero",))
    # In the order the reminders go: deferred then accepted, refused, accepted but the answer lost, then all fine.
    mailbox.faults = ["450", None, "554", "drop_after_data"]
    result = bridge(*_args(trial, "--json", "sync"))
    assert result.code == 3, result.err
    plan = json.loads(result.out)
    reminders = sorted((a for a in plan["actions"] if a.get("channel") == "smtp"), key=lambda a: a["key"])
    assert len(reminders) >= 4
    ledger = trial.ledger()
    states = [ledger[a["key"]].state for a in reminders]
    assert states.count("failed") == 1 and states.count("in_doubt") == 1
    failed = next(ledger[a["key"]] for a in reminders if ledger[a["key"]].state == "failed")
    assert "554 5.7.1 Message refused by policy" in (failed.error or "")
    doubt = next(ledger[a["key"]] for a in reminders if ledger[a["key"]].state == "in_doubt")
    assert "answer was lost" in (doubt.error or "")
    ids = [str(m["Message-ID"]) for m in mailbox.messages()]
    # Every one applied or in doubt arrived (the one retried after its 450 included), the refused one did not.
    assert sorted(ids) == sorted(
        _message_id(a["key"]) for a in reminders if ledger[a["key"]].state in ("applied", "in_doubt")
    )
    assert states.count("applied") >= 2, states

    again = bridge(*_args(trial, "--json", "sync"))
    assert again.code in (0, 3), again.err
    ids = [str(m["Message-ID"]) for m in mailbox.messages()]
    assert len(set(ids)) == len(ids)  # the one in doubt is never sent again
    assert trial.ledger()[doubt.key].state == "in_doubt"


def test_a_refused_login_fails_the_reminders_with_the_servers_words(
    bridge: Bridge, sandbox: Sandbox, mailbox: Mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trial = _trial(sandbox, mailbox, tmp_path / "books", monkeypatch, ("xero",))
    monkeypatch.setenv("BRIDGE_TEST_SMTP_PASSWORD", "wrong")
    result = bridge(*_args(trial, "--json", "sync"))
    assert result.code == 3, result.err
    plan = json.loads(result.out)
    assert plan["failed"]
    assert all("refused the login" in f["error"] and "535" in f["error"] for f in plan["failed"])
    assert mailbox.received == []
    by_smtp = {a["key"] for a in plan["actions"] if a.get("channel") == "smtp"}
    assert by_smtp and {f["key"] for f in plan["failed"]} == by_smtp
    assert {trial.ledger()[key].state for key in by_smtp} == {"failed"}


def test_without_starttls_nothing_is_sent_in_clear(
    bridge: Bridge, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = SandboxSmtp(lambda item: None)  # no STARTTLS offered
    plain.start()
    try:
        box = Mailbox(plain.host, plain.port, tmp_path / "none.pem")
        (tmp_path / "none.pem").write_text("")
        trial = _trial(sandbox, box, tmp_path / "books", monkeypatch, ("xero",))
        result = bridge(*_args(trial, "--json", "sync"))
    finally:
        plain.stop()
    plan = json.loads(result.out)
    assert plan["failed"] and all("does not offer STARTTLS" in f["error"] for f in plan["failed"])
