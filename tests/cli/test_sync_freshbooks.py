"""`bridge sync`, `apply`, `ledger`, `renegotiate` end to end against the FreshBooks sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.store import Store
from bridge_sandbox import Sandbox, default_seed

ROOT = Path(__file__).resolve().parents[2]
AS_OF = ["--as-of", "2026-10-20"]


@dataclass
class Book:
    sandbox: Sandbox
    config: Path

    def args(self, *more: str) -> list[str]:
        return ["--config", str(self.config), *AS_OF, *more]

    def invoices(self) -> list[dict[str, Any]]:
        return list(self.sandbox.state()["freshbooks"]["invoices"])  # type: ignore[call-overload,index]

    def invoice(self, number: str) -> dict[str, Any]:
        return next(i for i in self.invoices() if i["invoice_number"] == number)


def link(sandbox: Sandbox, folder: Path, key: str) -> Book:
    store = Store.open(f"sqlite:///{folder / 'bridge.db'}")
    account = link_sandbox("freshbooks", store, TokenVault(store, Fernet(key.encode())), sandbox.base_url, "acme-fb")
    store.close()
    config = folder / "bridge.toml"
    config.write_text(
        '[store]\nurl = "sqlite:///bridge.db"\n\n'
        f'[[connections]]\nname = "acme-fb"\nprovider = "freshbooks"\ntenant_id = "{account}"\n'
        f'base_url = "{sandbox.base_url}"\ncalls_per_minute = 100000\n\n' + (ROOT / "config" / "demo.toml").read_text()
    )
    return Book(sandbox, config)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", key)
    return key


@pytest.fixture
def book(module_sandbox: Sandbox, tmp_path: Path, secret: str) -> Book:
    module_sandbox.reset(default_seed())
    return link(module_sandbox, tmp_path, secret)


def plan_of(result: Any) -> dict[str, Any]:
    assert result.code in (0, 3), result.err
    return dict(json.loads(result.out))


def fee_lines(book: Book) -> list[dict[str, Any]]:
    return [
        line
        for inv in book.invoices()
        if "bridge fee_for=" not in str(inv.get("notes"))
        for line in inv.get("lines", [])
        if str(line.get("description", "")).startswith("Late fee (no.")
    ]


def test_a_dry_run_writes_nothing_to_freshbooks(bridge: Callable[..., Any], book: Book) -> None:
    before = book.sandbox.state()
    plan = plan_of(bridge(*book.args("--json", "sync", "--dry-run")))
    assert plan["actions"] and "applied" not in plan
    assert {a["connection"] for a in plan["actions"]} == {"acme-fb"}
    assert book.sandbox.state() == before and book.sandbox.outbox() == []
    assert json.loads(bridge(*book.args("--json", "ledger")).out) == []


def test_a_verbose_dry_run_shows_each_message_subject_and_first_lines(bridge: Callable[..., Any], book: Book) -> None:
    plan = plan_of(bridge(*book.args("--json", "sync", "--dry-run")))
    reminders = [a for a in plan["actions"] if a["kind"] == "reminder" and a.get("subject")]
    assert reminders, "FreshBooks sends the contract's own words"
    shown = bridge(*book.args("-v", "sync", "--dry-run"))
    assert shown.code in (0, 3), shown.err
    text = " ".join(shown.out.split())  # the table may wrap; the words stay in order
    assert "Messages" in shown.out
    for action in reminders:
        first = [line for line in action["body"].splitlines() if line.strip()][:3]
        assert " ".join(f"Subject: {action['subject']}".split()) in text
        assert all(" ".join(line.split()) in text for line in first)
    quiet = bridge(*book.args("sync", "--dry-run"))
    assert "Messages" not in quiet.out


def test_preview_writes_the_contract_language_signed_by_the_firm_with_the_same_words_in_html(
    bridge: Callable[..., Any], book: Book, tmp_path: Path
) -> None:
    import email
    import email.policy
    import re

    from bridge.messages import html_body

    config = book.config.read_text().replace("[contracts.standard]\n", '[contracts.standard]\nlocale = "ko_KR"\n', 1)
    config = config.replace('channel = "provider"', 'channel = "smtp"')
    firm = '[firm]\nname = "메이플 & 핀치 <디자인>"\n\n[smtp]\nhost = "127.0.0.1"\nport = 2525\nsecurity = "none"\n'
    firm += 'from = "Accounts <accounts@mapleandfinch.example>"\nattach_pdf = false\ninclude_pay_link = false\n\n'
    book.config.write_text(firm + config)
    out = tmp_path / "eml"
    shown = bridge(*book.args("preview", "--out", str(out)))
    assert shown.code in (0, 3), shown.err
    files = sorted(out.glob("*.eml"))
    assert files
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
        assert "담당자님께" in text and "청구서" in text, text
        assert text.rstrip().endswith("메이플 & 핀치 <디자인> 드림")
        assert re.search(r"US\$[\d,]+\.\d\d", text)  # the locale's way with dollars
        assert "메이플 &amp; 핀치 &lt;디자인&gt; 드림" in html and "<디자인>" not in html
        assert html.replace("\r\n", "\n") == html_body(
            text.replace("\r\n", "\n"), subject=str(message["Subject"]), lang="ko"
        )


def test_a_real_sync_carries_out_exactly_the_dry_run_plan_and_a_second_plans_nothing(
    bridge: Callable[..., Any], book: Book
) -> None:
    dry = plan_of(bridge(*book.args("--json", "sync", "--dry-run")))
    real = bridge(*book.args("--json", "sync"))
    assert real.code == 0, real.err
    done = json.loads(real.out)
    planned = sorted(a["key"] for a in dry["actions"])
    assert sorted(a["key"] for a in done["actions"]) == planned
    assert sorted(a["key"] for a in done["applied"]) == planned and done["failed"] == []
    reminders = [a for a in dry["actions"] if a["kind"] == "reminder"]
    mails = book.sandbox.outbox()
    assert len(mails) == len(reminders)
    # The contract's own polite subject and body went out, not FreshBooks' invoice template.
    assert sorted(m["subject"] for m in mails) == sorted(a["subject"] for a in reminders)
    fees = [a for a in dry["actions"] if a["kind"] == "late_fee"]
    assert len(fee_lines(book)) == len(fees)
    again = plan_of(bridge(*book.args("--json", "sync")))
    assert again["actions"] == [] and again["applied"] == []
    assert len(book.sandbox.outbox()) == len(reminders)  # nobody reminded twice


def test_freshbooks_own_fee_is_a_foreign_fee_and_its_clients_are_warned_of(
    bridge: Callable[..., Any], book: Book
) -> None:
    plan = plan_of(bridge(*book.args("--json", "sync", "--dry-run")))
    warnings = [(w["invoice"], w["code"]) for w in plan["warnings"] if w["connection"] == "acme-fb"]
    assert warnings.count((None, "provider_late_fees_possible")) == 2  # once per client allowing them
    assert ("0000004", "foreign_late_fee") in warnings
    fees = {a["occurrence"] for a in plan["actions"] if a["kind"] == "late_fee" and a["invoice"]["number"] == "0000004"}
    assert 1 not in fees and fees  # FreshBooks' own fee took occurrence 1: nothing charged on top of it


def test_a_reviewed_plan_is_applied_and_a_changed_invoice_is_dropped(
    bridge: Callable[..., Any], book: Book, tmp_path: Path
) -> None:
    out = tmp_path / "plan.json"
    plan_of(bridge(*book.args("--json", "sync", "--dry-run", "--out", str(out))))
    planned = json.loads(out.read_text())
    target = next(a for a in planned["actions"] if a["kind"] == "late_fee")
    state = book.sandbox.state()
    for inv in state["freshbooks"]["invoices"]:  # type: ignore[index,union-attr]
        if str(inv["id"]) == target["invoice"]["id"]:  # type: ignore[index]
            inv["due_date"] = "2026-12-31"  # type: ignore[index]
    book.sandbox.reset(state)
    applied = json.loads(bridge(*book.args("--json", "apply", str(out))).out)
    dropped = {f["key"] for f in applied["failed"]}
    on_target = {a["key"] for a in planned["actions"] if a["invoice"]["id"] == target["invoice"]["id"]}
    assert on_target <= dropped
    assert {a["key"] for a in applied["applied"]} == {a["key"] for a in planned["actions"]} - on_target


def test_renegotiate_writes_the_new_due_date_back_to_freshbooks(bridge: Callable[..., Any], book: Book) -> None:
    target = next(
        i
        for i in book.invoices()
        if i["status"] in (2, 3) and i["vis_state"] == 0 and Decimal(i["paid"]["amount"]) == 0
    )
    new_due = (date.fromisoformat(target["due_date"]) + timedelta(days=10)).isoformat()
    args = ["renegotiate", "--connection", "acme-fb", "--invoice", target["invoice_number"], "--new-due-date", new_due]
    accepted = bridge(*book.args(*args))
    assert accepted.code == 0, accepted.err
    assert "accepted" in accepted.out
    assert book.invoice(target["invoice_number"])["due_date"] == new_due


def test_an_email_whose_answer_was_lost_is_reported_in_doubt_and_not_sent_again(
    bridge: Callable[..., Any], book: Book
) -> None:
    book.sandbox.providers["freshbooks"].fail_next_emails_after_sending = 1  # type: ignore[attr-defined]
    first = bridge(*book.args("--json", "sync"))
    assert first.code == 3, first.err  # partial: one action's outcome is unknown
    done = json.loads(first.out)
    doubtful = [f for f in done["failed"] if "outcome unknown" in f["error"]]
    assert len(doubtful) == 1 and doubtful[0]["key"].startswith("reminder:")
    sent = len(book.sandbox.outbox())
    again = plan_of(bridge(*book.args("--json", "sync")))
    assert again["actions"] == [] and len(book.sandbox.outbox()) == sent
    ledger = json.loads(bridge(*book.args("--json", "ledger")).out)
    assert [e["state"] for e in ledger if e["key"] == doubtful[0]["key"]] == ["in_doubt"]
