"""The estimate check end to end (docs/policy.md §2.1), for each provider against its emulator: estimates and quotes
in the provider's own shape, pulled by `bridge sync`, attached to the invoices they were made from.

An invoice 20% over its accepted estimate gets no reminder and no fee and a warning names both amounts; one 5%
over (within the 10% tolerance) is chased exactly as without the check; one without an estimate too.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bridge.money import format_amount
from bridge_sandbox import Sandbox, default_seed
from tests.cli.books import Book, link, plan_of

CHASING = ("reminder", "late_fee")
OVER, WITHIN = Decimal("1.2"), Decimal("1.05")  # the invoice's total over its estimate's


def _chased(plan: dict[str, Any]) -> dict[str, list[str]]:
    """Invoice number -> the keys of its reminders and fees."""
    out: dict[str, list[str]] = {}
    for a in plan["actions"]:
        if a["kind"] in CHASING:
            out.setdefault(a["invoice"]["number"], []).append(a["key"])
    return out


def after_keys(plan: dict[str, Any], number: str) -> list[str]:
    return _chased(plan).get(number, [])


def _agreed(total: Decimal, factor: Decimal) -> Decimal:
    return (total / factor).quantize(Decimal("0.01"))


def _estimate_qbo(state: dict[str, Any], invoice: dict[str, Any], number: str, total: Decimal) -> None:
    book = state["quickbooks"]
    est_id = str(9000 + len(book.setdefault("Estimate", [])))
    book["Estimate"].append(
        {
            "Id": est_id,
            "SyncToken": "0",
            "DocNumber": number,
            "TxnStatus": "Closed",  # made into the invoice
            "TxnDate": invoice.get("TxnDate"),
            "CustomerRef": dict(invoice["CustomerRef"]),
            "CurrencyRef": dict(invoice.get("CurrencyRef") or {"value": "USD"}),
            "Line": [{"Id": "1", "DetailType": "SalesItemLineDetail", "Amount": str(total)}],
            "TotalAmt": str(total),
            "MetaData": dict(invoice["MetaData"]),
        }
    )
    invoice.setdefault("LinkedTxn", []).append({"TxnId": est_id, "TxnType": "Estimate"})


def _estimate_xero(state: dict[str, Any], invoice: dict[str, Any], number: str, total: Decimal) -> None:
    quotes = state["xero"].setdefault("Quotes", [])
    quotes.append(
        {
            "QuoteID": f"5b0c1d2e-0000-4000-8000-{len(quotes):012d}",
            "QuoteNumber": number,
            "Reference": "",
            "Contact": dict(invoice["Contact"]),
            "LineItems": [],
            "Date": invoice.get("Date"),
            "Status": "INVOICED",
            "CurrencyCode": invoice["CurrencyCode"],
            "SubTotal": str(total),
            "TotalTax": "0.00",
            "Total": str(total),
            "UpdatedDateUTC": invoice["UpdatedDateUTC"],
        }
    )
    invoice["Reference"] = number  # Xero names the quote an invoice came from by the invoice's reference


def _estimate_freshbooks(state: dict[str, Any], invoice: dict[str, Any], number: str, total: Decimal) -> None:
    estimates = state["freshbooks"].setdefault("estimates", [])
    est_id = 801 + len(estimates)
    code = invoice["amount"]["code"]
    estimates.append(
        {
            "id": est_id,
            "estimateid": est_id,
            "estimate_number": number,
            "customerid": invoice["customerid"],
            "amount": {"amount": str(total), "code": code},
            "currency_code": code,
            "ui_status": "invoiced",
            "accepted": True,
            "invoiced": True,
            "updated": invoice["updated"],
            "vis_state": 0,
        }
    )
    invoice["estimateid"] = est_id


_PROVIDERS = {
    # provider: (its invoices in the state, their number field, their total, how an estimate is made)
    "quickbooks": ("Invoice", "DocNumber", lambda i: i["TotalAmt"], _estimate_qbo),
    "xero": ("Invoices", "InvoiceNumber", lambda i: i["Total"], _estimate_xero),
    "freshbooks": ("invoices", "invoice_number", lambda i: i["amount"]["amount"], _estimate_freshbooks),
}


def _with_tolerance(config: Path, percent: str) -> None:
    text = config.read_text()
    for name in ("standard", "other_currencies"):
        header = f"[contracts.{name}]\n"
        text = text.replace(header, f'{header}estimate_tolerance_percent = "{percent}"\n', 1)
    config.write_text(text)


@pytest.fixture(scope="module")
def sandbox() -> Any:
    with Sandbox(rate_limits=False) as sandbox:
        yield sandbox


def _book(sandbox: Sandbox, state: dict[str, Any], folder: Path, provider: str, monkeypatch: Any) -> Book:
    sandbox.reset(state)
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", key)
    folder.mkdir()
    return link(sandbox, folder, key, provider)


@pytest.mark.parametrize("provider", sorted(_PROVIDERS))
def test_an_invoice_over_its_estimate_is_not_chased_and_one_within_or_without_is(
    bridge: Any, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    invoices_key, number_field, total_of, make_estimate = _PROVIDERS[provider]
    plain = _book(sandbox, default_seed(), tmp_path / "plain", provider, monkeypatch)
    before = plan_of(bridge(*plain.args("--json", "sync", "--dry-run")))
    chased = _chased(before)
    over, within, without = sorted(chased)[:3]

    state = default_seed()
    raw = {str(i[number_field]): i for i in state[provider][invoices_key]}
    totals = {n: Decimal(str(total_of(raw[n]))) for n in (over, within)}
    make_estimate(state, raw[over], "EST-OVER", _agreed(totals[over], OVER))
    make_estimate(state, raw[within], "EST-WITHIN", _agreed(totals[within], WITHIN))
    book = _book(sandbox, state, tmp_path / "checked", provider, monkeypatch)
    _with_tolerance(book.config, "10")

    after = plan_of(bridge(*book.args("--json", "sync", "--dry-run")))
    expected = {n: keys for n, keys in chased.items() if n != over}
    assert _chased(after) == expected  # the invoice within tolerance and the one without are chased as before
    assert after_keys(after, within) == chased[within] and after_keys(after, without) == chased[without]
    currency = next(a["invoice"]["currency"] for a in before["actions"] if a["invoice"]["number"] == over)
    billed = f"{format_amount(totals[over], currency)} {currency}"
    agreed = f"{format_amount(_agreed(totals[over], OVER), currency)} {currency}"
    [skip] = [s for s in after["skipped"] if s["invoice"] == over and s["code"] == "exceeds_estimate"]
    assert billed in skip["detail"] and agreed in skip["detail"] and "EST-OVER" in skip["detail"]
    assert "20.0% over" in skip["detail"] and skip["clause"].endswith(".estimate_tolerance_percent")
    [warning] = [w for w in after["warnings"] if w["code"] == "exceeds_estimate"]
    assert warning["invoice"] == over and billed in warning["detail"] and agreed in warning["detail"]
    assert not [s for s in after["skipped"] if s["code"] == "exceeds_estimate" and s["invoice"] != over]

    real = bridge(*book.args("--json", "sync"))
    assert real.code == 0, real.err
    done = json.loads(real.out)
    applied = {a["key"] for a in done["applied"]}
    assert applied >= {k for keys in expected.values() for k in keys}
    assert not applied & set(chased[over])  # no reminder, no fee on the invoice over its estimate
    quiet = plan_of(bridge(*book.args("--json", "sync")))
    assert _chased(quiet) == {} and over in {s["invoice"] for s in quiet["skipped"] if s["code"] == "exceeds_estimate"}
