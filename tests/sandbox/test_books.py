"""The shipped default book and the benchmark book generator."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

from bridge_sandbox import Sandbox, build_default_book, default_seed, generate_book
from bridge_sandbox.make_seed import DEFAULT_SEED_PATH
from bridge_sandbox.make_seed import main as make_seed_main


def applied(section: dict[str, Any]) -> dict[str, Decimal]:
    paid: dict[str, Decimal] = {}
    for payment in section["Payment"]:
        for line in payment["Line"]:
            for txn in line["LinkedTxn"]:
                if txn["TxnType"] == "Invoice":
                    paid[txn["TxnId"]] = paid.get(txn["TxnId"], Decimal(0)) + line["Amount"]
    return paid


def assert_consistent(section: dict[str, Any]) -> None:
    paid = applied(section)
    for invoice in section["Invoice"]:
        lines = [line["Amount"] for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
        assert invoice["TotalAmt"] == sum(lines, Decimal(0)), invoice["DocNumber"]
        assert invoice["Balance"] == invoice["TotalAmt"] - paid.get(invoice["Id"], Decimal(0)), invoice["DocNumber"]
    for payment in section["Payment"]:
        applied_total = sum((line["Amount"] for line in payment["Line"]), Decimal(0))
        assert payment["TotalAmt"] - applied_total == payment["UnappliedAmt"]


def test_shipped_seed_matches_the_generator() -> None:
    assert default_seed() == build_default_book()
    assert make_seed_main(["--check", "--out", str(DEFAULT_SEED_PATH)]) == 0


def test_default_book_has_every_case_the_bridge_meets() -> None:
    book = default_seed()["quickbooks"]
    assert book["realm_id"] == "9341453215647712"
    assert_consistent(book)
    invoices = book["Invoice"]
    assert len(invoices) + len(book["Deleted"]) >= 40
    assert 9 <= len(book["Customer"]) <= 12
    as_of = date(2026, 10, 20)
    overdue = [i for i in invoices if i["Balance"] > 0 and date.fromisoformat(i["DueDate"]) < as_of]
    not_due = [i for i in invoices if i["Balance"] > 0 and date.fromisoformat(i["DueDate"]) >= as_of]
    partial = [i for i in invoices if 0 < i["Balance"] < i["TotalAmt"]]
    paid = [i for i in invoices if i["Balance"] == 0 and i["TotalAmt"] > 0]
    assert overdue and not_due and partial and paid
    voided = [i for i in invoices if i.get("PrivateNote") == "Voided"]
    assert len(voided) == 1 and voided[0]["TotalAmt"] == voided[0]["Balance"] == 0
    assert [d["type"] for d in book["Deleted"]] == ["Invoice"]
    qbo_fees = [
        i
        for i in invoices
        for line in i["Line"]
        if line.get("Description") == "Late Fee"
        and line.get("SalesItemLineDetail", {}).get("ItemRef", {}).get("name") == "Late Fee"
    ]
    assert len(qbo_fees) == 1
    projects = [c for c in book["Customer"] if c.get("Job")]
    assert len(projects) == 1 and projects[0]["ParentRef"]["value"]
    assert len([i for i in invoices if i["CustomerRef"]["value"] == projects[0]["Id"]]) == 2
    assert any(len(p["Line"]) == 2 for p in book["Payment"])  # one payment pays two invoices
    assert max(i["TxnDate"] for i in invoices) == "2026-10-20"
    assert all(i["MetaData"]["LastUpdatedTime"] <= "2026-10-21" for i in invoices)
    assert "Late Fee" in {item["Name"] for item in book["Item"]}


def test_generate_book_builds_ten_thousand_of_each_and_a_sandbox_serves_them() -> None:
    # How fast is bench/sync.py's business (it prints the figures); a test only checks what is built.
    book = generate_book(10_000, 10_000, seed=7)
    section = book["quickbooks"]
    assert len(section["Invoice"]) == 10_000 and len(section["Payment"]) == 10_000
    assert_consistent(section)
    assert generate_book(50, 60, seed=7) == generate_book(50, 60, seed=7)
    # Spread like real books: a client re-reading from its last timestamp must not meet hundreds of records
    # sharing one last-updated second.
    for kind in ("Invoice", "Payment"):
        per_second = Counter(o["MetaData"]["LastUpdatedTime"] for o in section[kind])
        assert max(per_second.values()) <= 5, (kind, per_second.most_common(3))
    with Sandbox(book, rate_limits=False) as sandbox:
        assert sandbox.base_url
