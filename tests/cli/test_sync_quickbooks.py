"""`bridge sync`, `apply`, `ledger`, `renegotiate` end to end against the QuickBooks sandbox."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.cli.books import Book, plan_of


def test_a_dry_run_writes_nothing_to_the_provider(bridge, book: Book) -> None:
    before = book.state()
    plan = plan_of(bridge(*book.args("--json", "sync", "--dry-run")))
    assert plan["actions"] and "applied" not in plan
    assert book.state() == before and book.outbox() == []
    ledger = json.loads(bridge(*book.args("--json", "ledger")).out)
    assert ledger == []


def test_a_real_sync_carries_out_exactly_the_dry_run_plan_and_a_second_plans_nothing(
    bridge, book: Book, tmp_path: Path
) -> None:
    dry = plan_of(bridge(*book.args("--json", "sync", "--dry-run", "--out", str(tmp_path / "plan.json"))))
    real = bridge(*book.args("--json", "sync"))
    assert real.code == 0, real.err
    done = json.loads(real.out)
    planned = sorted(a["key"] for a in dry["actions"])
    assert sorted(a["key"] for a in done["actions"]) == planned
    assert sorted(a["key"] for a in done["applied"]) == planned and done["failed"] == []
    reminders = [a for a in dry["actions"] if a["kind"] == "reminder"]
    assert len(book.outbox()) == len(reminders)
    fees = [a for a in dry["actions"] if a["kind"] == "late_fee"]
    lines = [
        line
        for inv in book.state()["quickbooks"]["Invoice"]
        for line in inv.get("Line", [])
        if str(line.get("Description", "")).startswith("Late fee (no.")
    ]
    assert len(lines) == len(fees)
    again = plan_of(bridge(*book.args("--json", "sync")))
    assert again["actions"] == [] and again["applied"] == []
    assert len(book.outbox()) == len(reminders)  # nobody reminded twice


def test_a_payment_that_lands_before_the_sync_ends_the_reminder(bridge, book: Book) -> None:
    dry = plan_of(bridge(*book.args("--json", "sync", "--dry-run")))
    reminded = next(a for a in dry["actions"] if a["kind"] == "reminder")
    number = reminded["invoice"]["number"]
    book.pay_in_full(number)
    done = plan_of(bridge(*book.args("--json", "sync")))
    assert not [a for a in done["actions"] if a["invoice"]["number"] == number]
    assert {"invoice": number, "code": "paid"}.items() <= next(
        s for s in done["skipped"] if s["invoice"] == number
    ).items()
    assert all(m["invoice_id"] != reminded["invoice"]["id"] for m in book.outbox())


def test_apply_of_a_stale_plan_drops_the_paid_invoices_actions_with_a_reason(
    bridge, book: Book, tmp_path: Path
) -> None:
    plan_path = tmp_path / "plan.json"
    dry = plan_of(bridge(*book.args("--json", "sync", "--dry-run", "--out", str(plan_path))))
    target = next(a for a in dry["actions"] if a["kind"] == "late_fee")
    number = target["invoice"]["number"]
    book.pay_in_full(number)
    applied = bridge(*book.args("--json", "apply", str(plan_path)))
    result = json.loads(applied.out)
    dropped = {f["key"]: f["error"] for f in result["failed"]}
    stale = [a["key"] for a in dry["actions"] if a["invoice"]["number"] == number]
    assert stale and all(dropped[k].startswith("plan_mismatch") and "paid" in dropped[k] for k in stale)
    assert sorted(a["key"] for a in result["applied"]) == sorted(
        a["key"] for a in dry["actions"] if a["invoice"]["number"] != number
    )
    ledger = {e["key"]: e for e in json.loads(bridge(*book.args("--json", "ledger")).out)}
    assert all(ledger[k]["state"] == "dropped" and "invoice is paid" in ledger[k]["error"] for k in stale)
    human = bridge(*book.args("ledger", "--invoice", number))
    assert "dropped" in human.out


def test_renegotiate_accepts_once_per_project_writes_it_back_and_refuses_the_next(bridge, book: Book) -> None:
    invoices = [i for i in book.state()["quickbooks"]["Invoice"] if Decimal(str(i["Balance"])) > 0 and i.get("DueDate")]
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for inv in invoices:
        by_customer.setdefault(inv["CustomerRef"]["value"], []).append(inv)
    first, second = next(v for v in by_customer.values() if len(v) >= 2)[:2]
    from datetime import date, timedelta

    new_due = (date.fromisoformat(first["DueDate"]) + timedelta(days=10)).isoformat()
    accepted = bridge(
        *book.args(
            "renegotiate",
            "--connection",
            "acme-qbo",
            "--invoice",
            first["DocNumber"],
            "--new-due-date",
            new_due,
            "--note",
            "cash flow",
        )
    )
    assert accepted.code == 0, accepted.err
    assert "accepted" in accepted.out and "contracts.standard.renegotiation" in accepted.out
    assert book.invoice(first["DocNumber"])["DueDate"] == new_due
    later = (date.fromisoformat(second["DueDate"]) + timedelta(days=5)).isoformat()
    refused = bridge(
        *book.args("renegotiate", "--connection", "acme-qbo", "--invoice", second["DocNumber"], "--new-due-date", later)
    )
    assert refused.code == 0, refused.err
    assert "refused" in refused.out and "limit_reached" in refused.out and first["DocNumber"] in refused.out
    assert book.invoice(second["DocNumber"])["DueDate"] == second["DueDate"]


def test_an_unknown_connection_is_a_usage_error(bridge, book: Book) -> None:
    result = bridge(*book.args("sync", "--dry-run", "--connection", "nope"))
    assert result.code == 2 and "nope" in result.err


def test_a_missing_secret_key_is_a_clear_error(bridge, book: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRIDGE_SECRET_KEY")
    result = bridge(*book.args("sync", "--dry-run"))
    assert result.code == 2 and "BRIDGE_SECRET_KEY" in result.err and "Fernet.generate_key" in result.err


# The demo end to end (its dry run, then the real sync, all three providers) is
# tests/cli/test_money_truth_cli.py::test_json_demo_dry_run_prints_on_stdout_the_plan_the_real_demo_then_applies.
