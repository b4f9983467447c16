"""`bridge sync`, `apply`, `ledger`, `renegotiate` end to end against the FreshBooks sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.cli.books import Book, plan_of

PROVIDER = "freshbooks"  # the `book` fixture links this provider


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
