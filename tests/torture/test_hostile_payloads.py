"""Hostile provider data: every mapping either maps a record or refuses it with a `DataError` naming why.

Hypothesis takes real records of the default seed (QuickBooks, Xero, FreshBooks invoices and payments)
and damages them: fields removed, replaced by values of the wrong type, huge strings, negative and
absurd amounts, unknown currencies and statuses, dates out of range, nested objects broken. Whatever
comes in, the mapping must not raise anything else (the connector quarantines a `DataError` and goes
on with the other records; any other exception would stop the whole pull), and what it does map is
a valid model record.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import DataError
from bridge.mapping import freshbooks as fbm
from bridge.mapping import quickbooks as qbm
from bridge.mapping import xero as xm
from bridge.model import Invoice, Payment
from bridge_sandbox import default_seed

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.just("x" * 100_000),
    st.sampled_from(
        [
            "",
            "-1",
            "1e400",
            "NaN",
            "Infinity",
            "XXX",
            "ZZZ",
            "9999-99-99",
            "0000-01-01",
            "/Date(99999999999999999)/",
            "/Date(-99999999999999)/",
            "AUTHORISED",
            "DELETED",
            "lots",
            "1,000.00",
            "\x00",
            "٣",
        ]
    ),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@cache
def _seed() -> dict[str, Any]:
    return default_seed()


def _records(provider: str, kind: str) -> list[dict[str, Any]]:
    section = _seed()[provider]
    key = {"quickbooks": {"invoice": "Invoice", "payment": "Payment"},
           "xero": {"invoice": "Invoices", "payment": "Payments"},
           "freshbooks": {"invoice": "invoices", "payment": "payments"}}[provider][kind]  # fmt: skip
    return list(section[key])


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a record (dict keys and list indexes)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            found.append((*prefix, k))
            found += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found.append((*prefix, i))
            found += _paths(v, (*prefix, i))
    return found


@st.composite
def damaged(draw: st.DrawFn, provider: str, kind: str) -> Any:
    record = copy.deepcopy(draw(st.sampled_from(_records(provider, kind))))
    if draw(st.integers(0, 30)) == 0:
        return draw(HOSTILE)  # not even an object
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(record)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = record
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            parent.pop(path[-1], None)  # a field missing
        else:
            parent[path[-1]] = draw(HOSTILE)
    return record


def _check(fn: Callable[[], Invoice | Payment]) -> None:
    try:
        mapped = fn()
    except DataError as exc:
        assert str(exc), "a refusal must say why"
        return
    if isinstance(mapped, Invoice):
        assert mapped.total.is_finite() and mapped.amount_due.is_finite() and mapped.total >= 0
        assert all(isinstance(line.amount, Decimal) for line in mapped.lines)
    assert len(mapped.id) <= 64


@given(damaged("quickbooks", "invoice"))
def test_quickbooks_invoices(raw: Any) -> None:
    customers = {str(c["Id"]): c for c in _seed()["quickbooks"]["Customer"]}
    _check(lambda: qbm.map_invoice(raw, "q", customers))


@given(damaged("quickbooks", "payment"))
def test_quickbooks_payments(raw: Any) -> None:
    _check(lambda: qbm.map_payment(raw, "q"))


@given(damaged("xero", "invoice"))
def test_xero_invoices(raw: Any) -> None:
    contacts = {c["ContactID"]: c for c in _seed()["xero"]["Contacts"]}
    _check(lambda: xm.map_invoice(raw, "x", contacts))


@given(damaged("xero", "payment"))
def test_xero_payments(raw: Any) -> None:
    _check(lambda: xm.map_payment(raw, "x"))


@given(damaged("freshbooks", "invoice"))
def test_freshbooks_invoices(raw: Any) -> None:
    clients = {str(c.get("id")): c for c in _seed()["freshbooks"]["clients"]}
    _check(lambda: fbm.map_invoice(raw, "f", clients))


@given(damaged("freshbooks", "payment"))
def test_freshbooks_payments(raw: Any) -> None:
    _check(lambda: fbm.map_payment(raw, "f"))
