"""Escalation (`reminders.escalate_from_step`, docs/policy.md §4) end to end against the sandbox, per provider.

From the escalation step on, a reminder also reaches the client's other billing contacts (QuickBooks' invoice
`BillEmailCc`/`BillEmailBcc`, Xero's contact persons included in e-mails, FreshBooks' client contacts); earlier
steps reach the client alone; a client with no second contact gets the reminder and one `no_escalation_contact`
warning. What arrives is read where it arrives: the sandbox's SMTP server, or the emulated provider's outbox.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bridge.mail import message_id
from bridge_sandbox import Sandbox, default_seed
from tests.cli.books import AS_OF, Book, link

ESCALATE_FROM = 6  # the seeded clients with second contacts have a reminder at step 6 on the as-of day
SENDER = "Maple & Finch Accounts <accounts@mapleandfinch.example>"
PROVIDERS = ("quickbooks", "xero", "freshbooks")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False, smtp_port=0) as running:
        yield running


def _book(
    sandbox: Sandbox, folder: Path, monkeypatch: pytest.MonkeyPatch, provider: str, channel: str, step: int | None
) -> Book:
    """The demo books afresh, `provider`'s linked; the standard contract escalates from `step` through `channel`."""
    sandbox.reset(default_seed())
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", key)
    book = link(sandbox, folder, key, provider)
    text = book.config.read_text()
    assert text.count('channel = "provider"') == 1
    reminders = f'channel = "{channel}"' + (f"\nescalate_from_step = {step}" if step is not None else "")
    text = text.replace('channel = "provider"', reminders)
    if channel == "smtp":
        assert sandbox.smtp_address is not None
        host, port = sandbox.smtp_address
        text = (
            '[firm]\nname = "Maple & Finch Design"\n\n'
            f'[smtp]\nhost = "{host}"\nport = {port}\nsecurity = "none"\nfrom = "{SENDER}"\n'
            "attach_pdf = false\ninclude_pay_link = false\ntimeout_seconds = 5\n\n" + text
        )
    book.config.write_text(text)
    return book


def _run(bridge: Callable[..., Any], book: Book, as_of: str, *args: str) -> dict[str, Any]:
    result = bridge("--config", str(book.config), "--as-of", as_of, "--json", *args)
    assert result.code == 0, result.err
    return dict(json.loads(result.out))


def _reminders(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The plan's reminders by invoice number."""
    return {a["invoice"]["number"]: a for a in plan["actions"] if a["kind"] == "reminder"}


def _received(book: Book, action: dict[str, Any], since: int = 0) -> list[dict[str, Any]]:
    """Every e-mail the reminder `action` caused (after the outbox's first `since`), as the mail server or the
    emulated provider recorded it."""
    outbox = book.outbox()[since:]
    if action["channel"] == "smtp":
        wanted = message_id(action["key"], SENDER)
        return [m for m in outbox if m["channel"] == "smtp" and m["message_id"] == wanted]
    return [m for m in outbox if m["channel"] == "provider" and m["invoice_id"] == action["invoice"]["id"]]


def _addressed(mail: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(the message's own addressees, every address it reached): To only, and To + Cc + Bcc / the envelope."""
    if mail["channel"] == "smtp":
        return {a.strip() for a in mail["to"].split(",")}, set(mail["envelope"]["to"])
    to = {a.strip() for a in str(mail["to"]).split(",")}
    return to, to | set(mail.get("cc", [])) | set(mail.get("bcc", []))


def _header(mail: dict[str, Any], name: str) -> str | None:
    return next((value for key, value in mail["headers"] if key.lower() == name.lower()), None)


@pytest.mark.parametrize(
    ("provider", "channel"), [*((p, "smtp") for p in PROVIDERS), ("freshbooks", "provider")]
)
def test_copies_reach_the_second_contacts_from_the_escalation_step_and_only_from_it(
    bridge: Callable[..., Any],
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    channel: str,
) -> None:
    book = _book(sandbox, tmp_path, monkeypatch, provider, channel, ESCALATE_FROM)
    today = _reminders(_run(bridge, book, AS_OF[1], "sync", "--dry-run"))
    escalated = {n: a for n, a in today.items() if a.get("cc") or a.get("bcc")}
    assert escalated, "the seed has clients with second contacts at the escalation step"
    assert all(a["step"] >= ESCALATE_FROM for a in escalated.values())
    number, target = sorted(escalated.items())[0]

    # The day before the escalation step fell: an earlier step goes, to the client alone.
    before = (date.fromisoformat(target["step_date"]) - timedelta(days=1)).isoformat()
    early = _run(bridge, book, before, "sync")
    early_reminder = _reminders(early)[number]
    assert early_reminder["step"] < ESCALATE_FROM
    assert "cc" not in early_reminder and "bcc" not in early_reminder
    assert not any(a.get("cc") or a.get("bcc") for a in early["actions"] if a.get("step", 0) < ESCALATE_FROM)
    (first,) = _received(book, early_reminder)
    own, reached = _addressed(first)
    assert own == reached == {early_reminder["to"]}
    if channel == "smtp":
        assert _header(first, "Cc") is None

    # From the escalation step: the same message also reaches every other contact, and the plan lists them all.
    sent_before = len(book.outbox())
    later = _run(bridge, book, AS_OF[1], "sync")
    reminder = _reminders(later)[number]
    assert reminder["key"] in {a["key"] for a in later["applied"]}
    assert reminder["step"] >= ESCALATE_FROM and reminder["cc"] == target["cc"]
    copies = set(reminder.get("cc", [])) | set(reminder.get("bcc", []))
    assert copies and reminder["to"] not in copies
    (mail,) = _received(book, reminder, sent_before)
    own, reached = _addressed(mail)
    assert reached == {reminder["to"]} | copies
    if channel == "smtp":
        assert own == {reminder["to"]}
        cc_header = _header(mail, "Cc")
        assert cc_header is not None and {a.strip() for a in cc_header.split(",")} == set(reminder.get("cc", []))
        for hidden in reminder.get("bcc", []):  # blind copies: envelope only, in no header
            assert hidden not in mail["raw"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_client_without_a_second_contact_gets_the_reminder_and_one_warning(
    bridge: Callable[..., Any], sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    book = _book(sandbox, tmp_path, monkeypatch, provider, "smtp", 3)
    plan = _run(bridge, book, AS_OF[1], "sync")
    alone = [
        a
        for a in plan["actions"]
        if a["kind"] == "reminder" and a["step"] >= 3 and a["clause"] == "contracts.standard.reminders"
        and not a.get("cc") and not a.get("bcc")
    ]  # fmt: skip
    assert alone
    warnings = [w for w in plan["warnings"] if w["code"] == "no_escalation_contact"]
    for action in alone:
        (mail,) = _received(book, action)
        assert _addressed(mail) == ({action["to"]}, {action["to"]})
        naming = [w for w in warnings if action["invoice"]["customer"] in w["detail"]]
        assert len(naming) == 1, naming  # once per client, however many of its invoices escalate
        assert action["invoice"]["number"] in naming[0]["detail"] and action["to"] in naming[0]["detail"]
        assert "escalate_from_step" in naming[0]["detail"]
    # A client that has second contacts is never warned about.
    copied = {a["invoice"]["customer"] for a in plan["actions"] if a.get("cc") or a.get("bcc")}
    assert copied and not any(name in w["detail"] for w in warnings for name in copied)


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_quickbooks_and_xero_copy_on_every_send_so_earlier_steps_are_listed_and_warned(
    bridge: Callable[..., Any], sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    """Their own invoice e-mail goes to the invoice's Cc/Bcc (QuickBooks) or the contact persons included in
    e-mails (Xero) at every send: the plan says so and lists them, from the escalation step and before it."""
    book = _book(sandbox, tmp_path, monkeypatch, provider, "provider", ESCALATE_FROM + 1)
    plan = _run(bridge, book, AS_OF[1], "sync")
    copied = [a for a in plan["actions"] if a["kind"] == "reminder" and a.get("cc")]
    assert copied and all(a["step"] < ESCALATE_FROM + 1 for a in copied)
    (warning,) = [w for w in plan["warnings"] if w["code"] == "provider_copies_every_step"]
    assert "SMTP" in warning["detail"]
    for action in copied:
        (mail,) = _received(book, action)
        assert _addressed(mail)[1] == {action["to"], *action["cc"], *action.get("bcc", [])}


def test_without_escalation_the_plan_lists_no_copies_and_warns_nothing(
    bridge: Callable[..., Any], sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = _book(sandbox, tmp_path, monkeypatch, "freshbooks", "provider", None)
    plan = _run(bridge, book, AS_OF[1], "sync")
    assert not any("cc" in a or "bcc" in a for a in plan["actions"])
    codes = {w["code"] for w in plan["warnings"]}
    assert not codes & {"no_escalation_contact", "provider_copies_every_step", "escalation_cannot_copy"}
    reminders = [a for a in plan["actions"] if a["kind"] == "reminder"]
    assert reminders
    for action in reminders:
        (mail,) = _received(book, action)
        assert _addressed(mail) == ({action["to"]}, {action["to"]})


def test_preview_shows_the_cc(
    bridge: Callable[..., Any], sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = _book(sandbox, tmp_path, monkeypatch, "quickbooks", "smtp", ESCALATE_FROM)
    escalated = [a for a in _reminders(_run(bridge, book, AS_OF[1], "sync", "--dry-run")).values() if a.get("cc")]
    assert escalated
    shown = bridge("--config", str(book.config), "--as-of", AS_OF[1], "preview")
    assert shown.code == 0, shown.err
    text = " ".join(shown.out.split())
    for action in escalated:
        assert f"Cc: {', '.join(action['cc'])}" in text
        if action.get("bcc"):
            assert f"Bcc: {', '.join(action['bcc'])}" in text
    listed = json.loads(bridge("--config", str(book.config), "--as-of", AS_OF[1], "--json", "preview").out)
    by_key = {item["key"]: item for item in listed}
    for action in escalated:
        assert by_key[action["key"]]["cc"] == action["cc"]
        assert ["Cc", ", ".join(action["cc"])] in [list(h) for h in by_key[action["key"]]["headers"].items()]
    assert sandbox.outbox() == []  # a preview sends nothing
