"""`bridge forgive` end to end against each provider's sandbox: a fee the bridge charged comes off the books once,
is never charged again, and later occurrences follow the contract unless `--all` forgave them for good."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge.store import Store
from bridge_sandbox import Sandbox
from tests.cli.books import Book, fresh_book, plan_of
from tests.torture.harness import occurrences

PROVIDERS = ("quickbooks", "xero", "freshbooks")
Run = Callable[..., Any]


def on(book: Book, day: date, *more: str) -> list[str]:
    """`book`'s arguments as of another day."""
    return ["--config", str(book.config), "--as-of", day.isoformat(), *more]


def charged(bridge: Run, book: Book, form: str) -> dict[str, Any]:
    """Sync as of 2026-10-20; the first late fee it charged in `form` (its planned action)."""
    done = plan_of(bridge(*book.args("--json", "sync")))
    forms = {a["key"]: a["form"] for a in done["applied"]}
    fees = [a for a in done["actions"] if a["kind"] == "late_fee" and forms.get(a["key"]) == form]
    assert fees, f"the demo books charge some late fee as a {form} at {book.provider}"
    return dict(fees[0])


def ledger(book: Book) -> dict[str, Any]:
    with Store.open(f"sqlite:///{book.config.parent / 'bridge.db'}") as store:
        return {e.key: e for e in store.ledger()}


def lines_of(book: Book, number: str) -> list[str]:
    """The descriptions of an invoice's lines at the provider (amount-bearing lines only)."""
    invoice = book.invoice(number)
    if book.provider == "quickbooks":
        return sorted(str(x.get("Description")) for x in invoice["Line"] if x.get("DetailType") != "SubTotalLineDetail")
    if book.provider == "xero":
        return sorted(str(x.get("Description")) for x in invoice["LineItems"])
    return sorted(str(x.get("description")) for x in invoice["lines"])


def voided(book: Book, invoice_id: str) -> bool:
    """Whether the provider shows this (fee) invoice void, or deleted where there is no void (FreshBooks)."""
    key = {"quickbooks": "Id", "xero": "InvoiceID", "freshbooks": "id"}[book.provider]
    invoice = next(i for i in book.invoices() if str(i[key]) == invoice_id)
    if book.provider == "quickbooks":
        return str(invoice.get("PrivateNote")) == "Voided" and str(invoice["TotalAmt"]) in ("0", "0.00")
    if book.provider == "xero":
        return bool(invoice["Status"] == "VOIDED")
    return bool(invoice["vis_state"] == 1)


LATER = date(2026, 11, 19)  # 30 days after the books' day: the demo contract charges every 30 days


def next_key(fee: dict[str, Any], book: Book) -> str:
    """The key of the fee's invoice's next occurrence, after every one charged so far."""
    head, _, _ = fee["key"].rpartition(":")
    charged = [int(k.rpartition(":")[2]) for k in ledger(book) if k.startswith(head + ":")]
    return f"{head}:{max(charged) + 1}"


@pytest.fixture(params=PROVIDERS)
def book(request: pytest.FixtureRequest, module_sandbox: Sandbox, tmp_path: Path, monkeypatch: Any) -> Book:
    return fresh_book(request.param, module_sandbox, tmp_path, monkeypatch)


def test_a_forgiven_fee_line_is_gone_once_never_charged_again_and_the_next_occurrence_is(
    bridge: Run, book: Book
) -> None:
    fee = charged(bridge, book, "line")
    number, description = fee["invoice"]["number"], fee["description"]
    before = lines_of(book, number)
    assert description in before
    done = bridge(*book.args("--json", "forgive", fee["key"], "--note", "good client", "--by", "carol"))
    assert done.code == 0, done.err
    result = json.loads(done.out)
    assert result["outcome"] == "forgiven" and result["form"] == "line" and result["by"] == "carol"
    after = lines_of(book, number)
    assert description not in after and sorted([*after, description]) == before  # that line, and only it
    entry = ledger(book)[result["key"]]
    assert entry.state == "applied" and entry.kind == "forgive_fee" and entry.reason == "forgiven by carol: good client"
    assert entry.amount == -ledger(book)[fee["key"]].amount  # taken back: the ledger's totals net it out
    shown = bridge(*book.args("ledger", "--kind", "forgive_fee"))
    assert shown.code == 0 and "forgiven by carol" in shown.out, shown.out  # who and why, in the note
    # The fee's own entry says so: forgiven, with who and why, still the amount charged.
    listed = bridge(*book.args("--json", "ledger", "--state", "forgiven"))
    assert listed.code == 0, listed.err
    rows = json.loads(listed.out)
    assert [(r["key"], r["state"], r["error"]) for r in rows] == [
        (fee["key"], "forgiven", "forgiven by carol: good client")
    ]
    assert rows[0]["amount"] == f"{ledger(book)[fee['key']].amount:f}" and rows[0]["kind"] == "late_fee"
    csv_rows = bridge(*book.args("ledger", "--state", "forgiven", "--csv", "-")).out.splitlines()
    assert len(csv_rows) == 2 and fee["key"] in csv_rows[1] and ",forgiven," in csv_rows[1]
    # The totals count it once, under forgiven: applied is what stands charged (the other fees), and the
    # forgiving's negative amount is not taken off it a second time.
    entries = ledger(book)
    forgiven_fee = entries[fee["key"]]
    currency = forgiven_fee.currency
    standing = [
        e.amount for e in entries.values() if (e.kind, e.state, e.currency) == ("late_fee", "applied", currency)
    ]
    assert not [e for e in entries.values() if e.kind not in ("late_fee", "forgive_fee") and e.amount is not None]
    table = bridge(*book.args("ledger")).out
    assert f"total forgiven: {forgiven_fee.amount:.2f} {currency}" in table, table
    assert f"total applied: {sum(standing, Decimal(0)):.2f} {currency}" in table, table

    again = bridge(*book.args("--json", "forgive", fee["key"]))  # idempotent: said, nothing written
    assert again.code == 0 and json.loads(again.out)["outcome"] == "already", again.err
    same_day = plan_of(bridge(*book.args("--json", "sync")))
    assert fee["key"] not in {a["key"] for a in same_day["actions"]}
    assert occurrences(book.state()[book.provider], description) == 0

    expected = next_key(fee, book)
    later = plan_of(bridge(*on(book, LATER, "--json", "sync")))
    keys = {a["key"] for a in later["applied"]}
    assert expected in keys and fee["key"] not in keys  # later occurrences follow the contract
    assert occurrences(book.state()[book.provider], description) == 0


def test_all_forgives_every_later_fee_on_the_invoice_and_the_plan_says_why(bridge: Run, book: Book) -> None:
    fee = charged(bridge, book, "line")
    done = bridge(*book.args("--json", "forgive", fee["key"], "--all", "--note", "hardship", "--by", "dan"))
    assert done.code == 0 and json.loads(done.out)["all"] is True, done.err
    expected = next_key(fee, book)
    later = plan_of(bridge(*on(book, LATER, "--json", "sync")))
    invoice = fee["invoice"]["number"]
    assert not [a for a in later["actions"] if a["kind"] == "late_fee" and a["invoice"]["number"] == invoice]
    skip = next(s for s in later["skipped"] if s.get("key") == expected)
    assert skip["code"] == "forgiven" and "forgiven for good by dan: hardship" in skip["detail"]
    # Forgiving for good a fee already forgiven records the rest without writing anything again.
    repeat = bridge(*book.args("--json", "forgive", fee["key"], "--all"))
    assert repeat.code == 0 and json.loads(repeat.out)["outcome"] == "already", repeat.err


def test_a_separate_fee_invoice_is_voided_and_its_fee_never_charged_again(bridge: Run, book: Book) -> None:
    if book.provider != "xero":  # Xero puts the fees of partly paid invoices on their own invoices by itself
        book.config.write_text(book.config.read_text().replace('mode = "line"', 'mode = "invoice"'))
    fee = charged(bridge, book, "invoice")
    fee_invoice = ledger(book)[fee["key"]].response_id
    assert fee_invoice and not voided(book, fee_invoice)
    done = bridge(*book.args("--json", "forgive", fee["key"], "--note", "waived"))
    assert done.code == 0, done.err
    assert json.loads(done.out)["form"] == "invoice" and voided(book, fee_invoice)
    again = plan_of(bridge(*book.args("--json", "sync")))
    assert fee["key"] not in {a["key"] for a in again["actions"]}
    expected = next_key(fee, book)
    later = plan_of(bridge(*on(book, LATER, "--json", "sync")))
    keys = {a["key"] for a in later["applied"]}
    assert expected in keys and fee["key"] not in keys


@pytest.mark.parametrize("book", ["quickbooks"], indirect=True)
def test_what_is_not_an_applied_fee_is_refused_with_nothing_written(bridge: Run, book: Book) -> None:
    done = plan_of(bridge(*book.args("--json", "sync")))
    reminder = next(a["key"] for a in done["applied"] if a["key"].startswith("reminder:"))
    before = book.state()
    for key, says in (
        ("late_fee:acme-qbo:nope:1", "no ledger entry"),
        (reminder, "not a late fee"),
    ):
        refused = bridge(*book.args("forgive", key))
        assert refused.code == 2 and says in refused.err, refused.err
    assert book.state() == before
    assert not [k for k in ledger(book) if k.startswith("forgive:")]


@pytest.mark.parametrize("book", ["quickbooks"], indirect=True)
def test_as_of_is_refused_when_the_connection_is_a_real_provider(bridge: Run, book: Book) -> None:
    fee = charged(bridge, book, "line")
    config = book.config.read_text()
    book.config.write_text(config.replace(f'base_url = "{book.sandbox.base_url}"', 'base_url = "https://qbo.example"'))
    refused = bridge(*book.args("forgive", fee["key"]))
    assert refused.code == 2 and "is for looking, not for writing" in refused.err, refused.err
    assert not [k for k in ledger(book) if k.startswith("forgive:")]
