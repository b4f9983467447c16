"""`bridge sync`, `ledger`, `renegotiate` end to end against the Xero sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bridge.clock import now_utc
from bridge.mapping.xero import day, wire_date
from bridge_sandbox import Sandbox
from tests.cli.books import Book, link, plan_of

PROVIDER = "xero"  # the `book` fixture links this provider


def fee_lines(book: Book) -> list[dict[str, Any]]:
    return [
        line
        for inv in book.invoices()
        if "bridge fee_for=" not in str(inv.get("Reference"))  # a separate fee invoice is not a fee line
        for line in inv.get("LineItems", [])
        if str(line.get("Description", "")).startswith("Late fee (no.")
    ]


def test_a_dry_run_writes_nothing_to_xero(bridge: Callable[..., Any], book: Book) -> None:
    before = book.sandbox.state()
    plan = plan_of(bridge(*book.args("--json", "sync", "--dry-run")))
    assert plan["actions"] and "applied" not in plan
    assert {a["connection"] for a in plan["actions"]} == {"acme-xero"}
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
    assert len(book.sandbox.outbox()) == len(reminders)
    fees = [a for a in dry["actions"] if a["kind"] == "late_fee"]
    forms = {a["key"]: a["form"] for a in done["applied"]}
    separate = [k for k in forms if k.startswith("late_fee") and forms[k] == "invoice"]
    assert separate, "the seed has partly paid invoices: their fees go on separate invoices"
    fee_invoices = [i for i in book.invoices() if "bridge fee_for=" in str(i.get("Reference"))]
    assert len(fee_lines(book)) + len(fee_invoices) == len(fees) and len(fee_invoices) == len(separate)
    again = plan_of(bridge(*book.args("--json", "sync")))
    assert again["actions"] == [] and again["applied"] == []
    assert len(book.sandbox.outbox()) == len(reminders)  # nobody reminded twice
    skipped = {(s["invoice"], s["code"]) for s in again["skipped"]}
    assert {(i["InvoiceNumber"], "fee_invoice") for i in fee_invoices} <= skipped


def test_renegotiate_writes_the_new_due_date_back_to_xero(bridge: Callable[..., Any], book: Book) -> None:
    target = next(i for i in book.invoices() if i["Status"] == "AUTHORISED" and Decimal(str(i["AmountPaid"])) == 0)
    old_due = day(target["DueDate"], "DueDate")
    assert old_due is not None
    new_due = (old_due + timedelta(days=10)).isoformat()
    args = ["renegotiate", "--connection", "acme-xero", "--invoice", target["InvoiceNumber"], "--new-due-date", new_due]
    accepted = bridge(*book.args(*args))
    assert accepted.code == 0, accepted.err
    assert "accepted" in accepted.out
    assert book.invoice(target["InvoiceNumber"])["DueDate"] == wire_date(date.fromisoformat(new_due))


def test_the_organisations_own_reminders_are_a_plan_warning(bridge: Callable[..., Any], book: Book) -> None:
    state = book.sandbox.state()
    state["xero"]["InvoiceReminders"] = {"Enabled": True}  # type: ignore[call-overload,index]
    book.sandbox.reset(state)
    plan = plan_of(bridge(*book.args("--json", "sync", "--dry-run")))
    codes = [w["code"] for w in plan["warnings"] if w["connection"] == "acme-xero"]
    assert codes == ["provider_email_template", "provider_reminders_enabled"]


def test_near_the_daily_limit_the_rest_waits_for_the_next_run(
    bridge: Callable[..., Any], tmp_path: Path, secret: str
) -> None:
    clock = [now_utc()]
    # 5,000 calls a day in real life; here few enough that the bridge's reserve of 50 is reached mid-sync (the
    # whole sync takes about 30 calls: the fees of every invoice go in one write).
    with Sandbox(rate_limits=False, clock=lambda: clock[0], options={"xero": {"daily_limit": 70}}) as sandbox:
        book = link(sandbox, tmp_path, secret, PROVIDER)
        first = bridge(*book.args("--json", "sync"))
        assert first.code == 0, first.err  # deferred is not failed
        plan = json.loads(first.out)
        deferred = [w for w in plan["warnings"] if w["code"] == "deferred_daily_limit"]
        assert deferred and plan["applied"] and plan["failed"] == []
        assert len(plan["applied"]) + len(deferred) == len(plan["actions"])
        clock[0] += timedelta(days=1)  # a new day: the limit is back
        second = json.loads(bridge(*book.args("--json", "sync")).out)
        assert sorted(a["key"] for a in second["applied"]) == sorted(a["key"] for a in second["actions"])
        assert {a["key"] for a in second["applied"]} >= {
            k for k in (a["key"] for a in plan["actions"]) if k not in {x["key"] for x in plan["applied"]}
        }
        third = json.loads(bridge(*book.args("--json", "sync")).out)
        assert third["actions"] == []


def test_apply_carries_out_a_reviewed_plan_once(bridge: Callable[..., Any], book: Book, tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.json"
    dry = plan_of(bridge(*book.args("--json", "sync", "--dry-run", "--out", str(plan_path))))
    applied = bridge(*book.args("--json", "apply", str(plan_path)))
    assert applied.code == 0, applied.err
    done = json.loads(applied.out)
    assert sorted(a["key"] for a in done["applied"]) == sorted(a["key"] for a in dry["actions"])
    again = json.loads(bridge(*book.args("--json", "apply", str(plan_path))).out)
    assert again["applied"] == [] and again["failed"] == []  # every key is already in the ledger
    assert len(book.sandbox.outbox()) == len([a for a in dry["actions"] if a["kind"] == "reminder"])
