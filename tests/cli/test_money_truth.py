"""What the plan says is exactly what happens to the money and the client: regressions of issue 14.

Each test reproduces one broken promise through the public CLI against the QuickBooks sandbox.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge.store import Store
from tests.cli.books import Book, fresh_book, plan_of

CONN = "acme-qbo"


def _open_invoices(book: Book) -> list[dict[str, Any]]:
    return [
        i
        for i in book.state()["quickbooks"]["Invoice"]
        if Decimal(str(i["Balance"])) > 0 and i.get("DueDate") and i.get("CurrencyRef", {}).get("value", "USD") == "USD"
    ]


def _ledger(bridge: Any, book: Book) -> list[dict[str, Any]]:
    result = bridge(*book.args("--json", "ledger"))
    assert result.code == 0, result.err
    return list(json.loads(result.out))


def _renegotiate(bridge: Any, book: Book, number: str, new_due: date, *more: str) -> Any:
    args = ["--json", "renegotiate", "--connection", CONN, "--invoice", number, "--new-due-date", new_due.isoformat()]
    return bridge(*book.args(*args, *more))


def _recorded_requests(book: Book) -> list[Any]:
    store = Store.open(f"sqlite:///{book.config.parent / 'bridge.db'}")
    try:
        return store.renegotiations([CONN])
    finally:
        store.close()


# --------------------------------------------------------------------------- finding 1


def test_a_renegotiation_request_is_written_once_however_many_requests_came_before_it(bridge, book: Book) -> None:
    inv = _open_invoices(book)[0]
    due = date.fromisoformat(inv["DueDate"])
    for days in (60, 45):  # both past max_extension_days = 30: refused
        refused = _renegotiate(bridge, book, inv["DocNumber"], due + timedelta(days=days))
        assert refused.code == 0, refused.err
        assert json.loads(refused.out)["actions"][0]["kind"] == "renegotiation_refused"
    accepted = _renegotiate(bridge, book, inv["DocNumber"], due + timedelta(days=10))
    assert accepted.code == 0, accepted.err
    accepted_key = json.loads(accepted.out)["actions"][0]["key"]
    assert accepted_key == f"renegotiation:{CONN}:{inv['Id']}:3"

    synced = plan_of(bridge(*book.args("--json", "sync")))
    assert not [a for a in synced["actions"] if a["kind"] in ("update_due_date", "renegotiation_refused")]

    kinds = Counter(e["kind"] for e in _ledger(bridge, book))
    assert kinds["update_due_date"] == 1 and kinds["renegotiation_refused"] == 2
    assert book.invoice(inv["DocNumber"])["DueDate"] == (due + timedelta(days=10)).isoformat()


@pytest.mark.parametrize("seed", range(3))
def test_random_renegotiations_and_syncs_yield_one_ledger_entry_and_at_most_one_due_date_write_per_request(
    bridge, book: Book, seed: int
) -> None:
    rng = random.Random(seed)
    invoices = _open_invoices(book)[:3]
    for _ in range(7):
        if rng.random() < 0.3:
            plan_of(bridge(*book.args("--json", "sync")))
            continue
        inv = rng.choice(invoices)
        current = date.fromisoformat(book.invoice(inv["DocNumber"])["DueDate"])
        original = date.fromisoformat(inv["DueDate"])
        new_due = rng.choice(
            [
                original + timedelta(days=rng.randint(1, 30)),  # accepted unless the project used its one
                original + timedelta(days=rng.randint(31, 90)),  # extension_too_long
                current - timedelta(days=rng.randint(0, 5)),  # not_later
            ]
        )
        dry = rng.random() < 0.25
        result = _renegotiate(bridge, book, inv["DocNumber"], new_due, *(["--dry-run"] if dry else []))
        assert result.code == 0, result.err
    plan_of(bridge(*book.args("--json", "sync")))
    plan_of(bridge(*book.args("--json", "sync")))

    requests = _recorded_requests(book)
    entries = [e for e in _ledger(bridge, book) if e["kind"] in ("update_due_date", "renegotiation_refused")]
    keys = Counter(e["key"] for e in entries)
    assert all(n == 1 for n in keys.values()), keys
    assert sorted(keys) == sorted(r.key for r in requests), "one ledger entry per recorded request, no other"
    applied_moves = [e for e in entries if e["kind"] == "update_due_date"]
    assert len(applied_moves) == sum(r.status == "accepted" for r in requests)
    assert all(e["state"] == "applied" for e in entries)
    for r in requests:
        if r.status == "accepted":
            assert book.invoice(r.invoice_number)["DueDate"] == r.new_due_date.isoformat()


# --------------------------------------------------------------------------- finding 2


@pytest.mark.parametrize(
    "command",
    [
        ["sync"],
        ["sync", "--connection", "real-books"],
        ["renegotiate", "--connection", "real-books", "--invoice", "1044", "--new-due-date", "2027-02-01"],
        ["apply", "{plan}"],
    ],
    ids=["sync", "sync-one", "renegotiate", "apply"],
)
def test_as_of_never_writes_to_real_books(bridge, book: Book, tmp_path: Path, command: list[str]) -> None:
    plan = tmp_path / "plan.json"
    dry = bridge(*book.args("--json", "sync", "--dry-run", "--out", str(plan)))
    assert dry.code in (0, 3), dry.err
    data = json.loads(plan.read_text())
    for action in data["actions"]:
        action["connection"] = "real-books"
    plan.write_text(json.dumps(data))
    real = '\n[[connections]]\nname = "real-books"\nprovider = "quickbooks"\ntenant_id = "123"\n'
    book.config.write_text(book.config.read_text().replace("\n[contracts.", real + "\n[contracts.", 1))
    before = (book.state(), sorted(p.name for p in tmp_path.iterdir()), (tmp_path / "bridge.db").read_bytes())

    result = bridge("--config", str(book.config), "--as-of", "2027-01-20", *[a.format(plan=plan) for a in command])

    assert result.code == 2, result.err
    assert "--as-of 2027-01-20 is for looking, not for writing" in result.err and "real-books" in result.err
    after = (book.state(), sorted(p.name for p in tmp_path.iterdir()), (tmp_path / "bridge.db").read_bytes())
    assert after == before


def test_as_of_may_write_to_an_emulator_and_may_look_at_real_books(bridge, book: Book) -> None:
    looked = bridge("--config", str(book.config), "--as-of", "2027-01-20", "--json", "sync", "--dry-run")
    assert looked.code in (0, 3), looked.err
    applied = bridge(*book.args("--json", "sync"))  # the book is an emulator: --as-of is allowed
    assert applied.code == 0, applied.err
    assert json.loads(applied.out)["applied"]


# --------------------------------------------------------------------------- finding 3

FLAT_40 = """
[contracts.flat]
applies_to = ["*"]
currency = "USD"

[contracts.flat.reminders]
schedule = []

[contracts.flat.late_fee]
flat = "40.00"
max_total = "40.00"
every_days = 0
"""


def test_a_contract_amount_is_charged_only_in_the_contract_currency(bridge, tmp_path: Path) -> None:
    invoices = [
        {
            "id": str(n),
            "number": f"INV-{n}",
            "connection": "acme",
            "customer": {"id": "1", "name": "Amy", "email": "amy@example.com"},
            "currency": currency,
            "due_date": "2026-09-01",
            "total": total,
            "amount_due": total,
            "status": "open",
            "lines": [{"description": "Consulting", "amount": total}],
        }
        for n, (currency, total) in enumerate(
            [("USD", "2000.00"), ("JPY", "200000"), ("KWD", "600.000"), ("IDR", "30000000.00")], start=1
        )
    ]
    (tmp_path / "invoices.json").write_text(json.dumps(invoices))
    (tmp_path / "contracts.toml").write_text(FLAT_40)
    result = bridge(
        "--as-of", "2026-10-20", "--json", "evaluate",
        "--invoices", str(tmp_path / "invoices.json"), "--contracts", str(tmp_path / "contracts.toml"),
    )  # fmt: skip
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert [(a["invoice"]["currency"], a["amount"]) for a in plan["actions"]] == [("USD", "40.00")]
    mismatched = {s["invoice"]: s["code"] for s in plan["skipped"]}
    assert mismatched == {"INV-2": "currency_mismatch", "INV-3": "currency_mismatch", "INV-4": "currency_mismatch"}
    (tmp_path / "contracts.toml").write_text(FLAT_40.replace('currency = "USD"\n', ""))
    refused = bridge("--as-of", "2026-10-20", "evaluate", "--invoices", str(tmp_path / "invoices.json"),
                     "--contracts", str(tmp_path / "contracts.toml"))  # fmt: skip
    assert refused.code == 2 and "contracts.flat" in refused.err and "must state its currency" in refused.err


# --------------------------------------------------------------------------- finding 4


def test_a_quickbooks_reminder_shows_no_text_because_quickbooks_sends_its_own_invoice_email(bridge, book: Book) -> None:
    plan = plan_of(bridge(*book.args("--json", "sync", "--dry-run")))
    reminders = [a for a in plan["actions"] if a["kind"] == "reminder"]
    assert reminders
    for a in reminders:
        assert a["sends"] == "provider_invoice_email" and "subject" not in a and "body" not in a
    notes = [w for w in plan["warnings"] if w["code"] == "provider_email_template"]
    assert len(notes) == 1 and notes[0]["connection"] == CONN
    assert "QuickBooks sends its own invoice e-mail" in notes[0]["detail"] and 'channel = "smtp"' in notes[0]["detail"]


def test_a_freshbooks_reminder_states_the_balance_after_the_fees_of_the_same_run(
    bridge, module_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fb = fresh_book("freshbooks", module_sandbox, tmp_path, monkeypatch)
    dry = plan_of(bridge(*fb.args("--json", "sync", "--dry-run")))
    fees: dict[str, Decimal] = {}
    for a in dry["actions"]:
        if a["kind"] == "late_fee" and a["form"] == "line":
            fees[a["invoice"]["id"]] = fees.get(a["invoice"]["id"], Decimal(0)) + Decimal(a["amount"])
    both = [a for a in dry["actions"] if a["kind"] == "reminder" and a["invoice"]["id"] in fees]
    assert both, "the demo book has invoices charged a fee and reminded in the same run"
    for a in both:
        assert a["sends"] == "contract_text"
        assert Decimal(a["balance"]) == Decimal(a["invoice"]["amount_due"]) + fees[a["invoice"]["id"]]

    done = plan_of(bridge(*fb.args("--json", "sync")))
    assert sorted(a["key"] for a in done["applied"]) == sorted(a["key"] for a in dry["actions"])
    mails = {m["invoice_id"]: m for m in module_sandbox.outbox()}
    for a in both:
        owed = Decimal(str(fb.invoice(a["invoice"]["number"])["outstanding"]["amount"]))
        assert owed == Decimal(a["balance"])
        sent = mails[a["invoice"]["id"]]
        assert (sent["subject"], sent["body"]) == (a["subject"], a["body"])
        assert f"{owed:,.2f}" in sent["body"], (owed, sent["body"])


# --------------------------------------------------------------------------- finding 5


def test_apply_carries_out_only_what_todays_evaluation_calls_for(bridge, book: Book, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    plan_of(bridge(*book.args("--json", "sync", "--dry-run", "--out", str(path))))
    data = json.loads(path.read_text())
    fee = next(a for a in data["actions"] if a["kind"] == "late_fee")
    reminder = next(a for a in data["actions"] if a["kind"] == "reminder")
    fee_amount, fee["amount"] = fee["amount"], "9999.99"
    reminder["to"] = "someone-else@evil.example"
    path.write_text(json.dumps(data))

    done = plan_of(bridge(*book.args("--json", "apply", str(path))))

    failed = {f["key"]: f["error"] for f in done["failed"]}
    assert set(failed) == {fee["key"], reminder["key"]}
    assert failed[fee["key"]] == f"plan_mismatch: amount 9999.99 in the plan, {fee_amount} by the contract today"
    assert "someone-else@evil.example" in failed[reminder["key"]] and "plan_mismatch: to" in failed[reminder["key"]]
    others = sorted(a["key"] for a in data["actions"] if a["key"] not in failed)
    assert sorted(a["key"] for a in done["applied"]) == others
    assert all(m["to"] != "someone-else@evil.example" for m in book.outbox())
    lines = [line for inv in book.state()["quickbooks"]["Invoice"] for line in inv.get("Line", [])]
    assert not [line for line in lines if str(line.get("Amount")) == "9999.99"]
    states = {e["key"]: e["state"] for e in json.loads(bridge(*book.args("--json", "ledger")).out)}
    assert states[fee["key"]] == "dropped" and states[reminder["key"]] == "dropped"
    # The real fee and reminder are still owed: the next sync plans them as the contract says.
    again = plan_of(bridge(*book.args("--json", "sync", "--dry-run")))
    assert {fee["key"], reminder["key"]} <= {a["key"] for a in again["actions"]}


def test_apply_of_a_plan_made_for_a_later_day_charges_nothing_that_is_not_owed_today(
    bridge, book: Book, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    later = ["--config", str(book.config), "--as-of", "2027-01-20"]
    plan_of(bridge(*later, "--json", "sync", "--dry-run", "--out", str(path)))
    today = {a["key"] for a in plan_of(bridge(*book.args("--json", "sync", "--dry-run")))["actions"]}
    future = [a for a in json.loads(path.read_text())["actions"] if a["key"] not in today]
    assert future, "a plan three months later holds fee occurrences not owed today"

    done = plan_of(bridge(*book.args("--json", "apply", str(path))))

    applied = {a["key"] for a in done["applied"]}
    assert applied <= today and not applied & {a["key"] for a in future}
    failed = {f["key"]: f["error"] for f in done["failed"]}
    assert all(failed[a["key"]].startswith("plan_mismatch") for a in future)


def test_a_usd_contract_charges_nothing_on_the_xero_books_euro_and_pound_invoices(
    bridge, module_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xero = fresh_book("xero", module_sandbox, tmp_path, monkeypatch)
    text = xero.config.read_text()
    xero.config.write_text(text[: text.index("\n# Invoices in other currencies")] + "\n")  # the USD contract alone
    plan = plan_of(bridge(*xero.args("--json", "sync")))
    others = {i["InvoiceNumber"] for i in xero.invoices() if i.get("CurrencyCode") not in (None, "USD")}
    assert others, "the Xero demo book holds EUR and GBP invoices"
    assert not [a for a in plan["actions"] if a["invoice"]["number"] in others]
    codes = {s["invoice"]: s["code"] for s in plan["skipped"] if s["invoice"] in others}
    open_others = {
        i["InvoiceNumber"] for i in xero.invoices() if i["InvoiceNumber"] in others and i["Status"] == "AUTHORISED"
    }
    assert open_others and all(codes[n] == "currency_mismatch" for n in open_others), codes
    assert all(Decimal(a["amount"]) > 0 for a in plan["actions"] if a["kind"] == "late_fee")
    assert {a["invoice"]["currency"] for a in plan["actions"]} == {"USD"}
