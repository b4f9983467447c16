"""`load_invoices` reads a valid file in one pass from its text; it must read every file exactly as reading it entry
by entry does (each entry parsed with Decimal for every number with a fraction, then validated alone): the same
invoices, the same record errors, the same usage errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bridge.errors import ConfigError
from bridge.inputs import load_invoices, read_json
from bridge.model import INVOICE_JSON, Invoice
from bridge.plan import RecordError
from tests.property.strategies import scenarios


def _entry_by_entry(path: Path) -> tuple[list[Invoice], list[RecordError]]:
    """The reading `load_invoices` must agree with: parse, then each entry validated on its own."""
    data = read_json(path, "invoices")
    if not isinstance(data, list):
        raise ConfigError(f"the invoices file must hold a JSON list, not {type(data).__name__}", str(path))
    invoices, errors = [], []
    for index, item in enumerate(data):
        try:
            invoices.append(INVOICE_JSON.validate_python(item))
        except ValidationError:
            ident = item.get("number") or item.get("id") if isinstance(item, dict) else None
            errors.append((str(item.get("connection", "")) if isinstance(item, dict) else "", ident or f"[{index}]"))
    return invoices, errors  # type: ignore[return-value]


def _as_json(invoice: Invoice, *, numbers: bool) -> dict[str, Any]:
    """The invoice's JSON form; with `numbers`, its amounts as JSON numbers (with a fraction) instead of strings."""
    out: dict[str, Any] = json.loads(INVOICE_JSON.dump_json(invoice))
    if numbers:
        out["total"] = float(out["total"]) + 0.5  # still exact in binary and in decimal text
    return out


_BREAKAGES = [
    lambda d: d.pop("currency"),
    lambda d: d.update(status="lost"),
    lambda d: d.update(total=1e999),
    lambda d: d.update(due_date="2026-02-30"),
    lambda d: d.update(id=7),
    lambda d: d.update(extra="field"),
]


@given(
    scenario=scenarios(max_invoices=6, with_renegotiations=False),
    numbers=st.lists(st.booleans(), min_size=6, max_size=6),
    broken=st.lists(st.sampled_from(range(len(_BREAKAGES))), max_size=6),
)
def test_read_in_one_pass_or_entry_by_entry_the_same(
    tmp_path_factory: pytest.TempPathFactory, scenario: Any, numbers: list[bool], broken: list[int]
) -> None:
    entries = [_as_json(inv, numbers=n) for inv, n in zip(scenario.invoices, numbers, strict=False)]
    for at, which in enumerate(broken[: len(entries)]):
        _BREAKAGES[which](entries[at])
    path = tmp_path_factory.mktemp("inputs") / "invoices.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    invoices, errors = load_invoices(path)
    expected, expected_errors = _entry_by_entry(path)
    assert invoices == expected
    assert [(e.connection, e.record.replace(path.name, "")) for e in errors] == expected_errors
    if not any(numbers[: len(entries)]) and not broken:
        assert invoices == list(scenario.invoices)  # the one pass: what the store keeps comes back whole


@pytest.mark.parametrize(
    "text", ['{"invoices": []}', "[", "[1, 2", '"text"', "[NaN]", '[{"id": "\\ud800"}]', "\ufeff[]"]
)
def test_a_file_the_one_pass_refuses_is_said_as_entry_by_entry(tmp_path: Path, text: str) -> None:
    path = tmp_path / "invoices.json"
    path.write_text(text, encoding="utf-8")
    try:
        expected: Any = _entry_by_entry(path)
    except ConfigError as exc:
        with pytest.raises(ConfigError) as got:
            load_invoices(path)
        assert str(got.value) == str(exc)
        return
    invoices, errors = load_invoices(path)
    assert (invoices, [(e.connection, e.record.replace(path.name, "")) for e in errors]) == expected
