"""`bridge ledger` for accountants: filters by state, kind, dates and customer; `--csv` for a spreadsheet;
totals per currency under the table."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bridge.plan import Action
from bridge.render import LEDGER_CSV_COLUMNS, ledger_csv
from bridge.store.rows import LedgerEntry
from tests.cli.qbo import Book, plan_of


def _ledger(bridge: Any, book: Book, *filters: str) -> list[dict[str, Any]]:
    result = bridge(*book.args("--json", "ledger", *filters))
    assert result.code == 0, result.err
    return list(json.loads(result.out))


def test_filters_and_the_csv_export_agree_with_the_ledger(bridge, book: Book, tmp_path: Path) -> None:
    applied = plan_of(bridge(*book.args("--json", "sync", "--yes")))
    assert applied["applied"], "the demo book gets reminders and fees"
    everything = _ledger(bridge, book)
    fees = _ledger(bridge, book, "--kind", "late_fee")
    assert fees and {e["kind"] for e in fees} == {"late_fee"}
    assert {e["key"] for e in fees} == {e["key"] for e in everything if e["kind"] == "late_fee"}
    assert _ledger(bridge, book, "--state", "applied", "--state", "in_doubt") == [
        e for e in everything if e["state"] in ("applied", "in_doubt")
    ]
    one = everything[0]["customer"]
    assert one
    by_customer = _ledger(bridge, book, "--customer", one.upper()[:5])
    assert by_customer and all(one.upper()[:5].casefold() in e["customer"].casefold() for e in by_customer)
    day = everything[0]["date"]
    assert _ledger(bridge, book, "--since", day, "--until", day) == [e for e in everything if e["date"] == day]
    later = bridge(*book.args("ledger", "--since", "2100-01-01"))
    assert later.code == 0 and "No ledger entries match." in later.out

    out = tmp_path / "ledger.csv"
    written = bridge(*book.args("ledger", "--kind", "late_fee", "--csv", str(out)))
    assert written.code == 0, written.err
    assert f"{len(fees)} ledger rows written" in written.err
    assert out.stat().st_mode & 0o777 == 0o600  # customers and amounts: not for every local user
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert list(rows[0]) == list(LEDGER_CSV_COLUMNS)
    assert [(r["key"], r["invoice"], r["customer"], r["state"], r["provider_id"]) for r in rows] == [
        (e["key"], e["invoice"], e["customer"], e["state"], e["response_id"] or "") for e in fees
    ]
    assert [Decimal(r["amount"]) for r in rows] == [Decimal(e["amount"]) for e in fees]
    assert bridge(*book.args("ledger", "--kind", "late_fee", "--csv", "-")).out == out.read_bytes().decode("utf-8")

    # Totals per currency and state under the table, summed from the amounts shown.
    table = bridge(*book.args("ledger", "--kind", "late_fee"))
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for e in fees:
        sums[(e["currency"], e["state"])] += Decimal(e["amount"])
    for (currency, state), total in sums.items():
        assert f"total {state}: {total:.2f} {currency}" in table.out


def _entry(customer: str, number: str) -> LedgerEntry:
    action = Action.from_dict(
        {
            "key": "k1",
            "kind": "late_fee",
            "connection": "c",
            "clause": "contracts.standard.late_fees",
            "reason": "r",
            "amount": "5.00",
            "invoice": {
                "id": "1",
                "number": number,
                "customer": customer,
                "currency": "USD",
                "total": "100.00",
                "amount_due": "100.00",
                "due_date": "2026-09-01",
                "effective_due_date": "2026-09-01",
            },
        }
    )
    now = datetime(2026, 10, 20, 12, tzinfo=UTC)
    return LedgerEntry(
        key="k1",
        connection="c",
        kind="late_fee",
        invoice_id="1",
        invoice_number=number,
        state="applied",
        amount=Decimal("5.00"),
        currency="USD",
        clause=action.clause,
        reason="r",
        form=None,
        response_id="=HYPERLINK(1)",
        error=None,
        attempts=1,
        applied_on=date(2026, 10, 20),
        created_at=now,
        updated_at=now,
        action_json=json.dumps(action.to_dict()),
    )


def test_provider_text_never_becomes_a_spreadsheet_formula() -> None:
    rows = list(csv.reader(io.StringIO(ledger_csv([_entry('=cmd|" /C calc"!A0', "+1-INV")]), newline="")))
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["customer"] == '\'=cmd|" /C calc"!A0'
    assert row["invoice"] == "'+1-INV"
    assert row["provider_id"] == "'=HYPERLINK(1)"
    assert row["amount"] == "5.00" and row["date"] == "2026-10-20"
