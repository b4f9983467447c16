"""The plan's JSON and the evaluate input at C speed, with the bytes and numbers of the standard library.

`Plan.json_chunks` (orjson, a chunk at a time) must write exactly what `json.dumps(indent=2,
ensure_ascii=False)` writes; `read_json` must still give Decimal for every number with a fraction.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bridge import plan as plan_module
from bridge.errors import ConfigError
from bridge.inputs import read_json
from bridge.plan import Action, ActionKind, InvoiceRef, Plan, RecordError, Skip, SkipCode, Warning, WarningCode


def _plan(n: int) -> Plan:
    actions, skips = [], []
    for i in range(n):
        ref = InvoiceRef(str(i), f"INV-{i}", f"Zoë \"Ü\" Ltd\t{i}\u2028", "JPY" if i % 3 == 0 else "KWD",
                         Decimal(1000 + i), Decimal(i), date(2026, 9, 1), None)  # fmt: skip
        actions.append(Action(f"late_fee:c:{i}:1", ActionKind.LATE_FEE, "c", "xero", ref, "contracts.a.late_fee",
                              "why\nnot\x01", occurrence=1, occurrence_date=date(2026, 9, 6), amount=Decimal("1.5"),
                              form="line", item="Late Fee", description="fee"))  # fmt: skip
        actions.append(Action(f"reminder:c:{i}:2", ActionKind.REMINDER, "c", "xero", ref, "contracts.a.reminders",
                              "step", step=2, message="overdue", subject="Über", body="a\r\nb 😀"))  # fmt: skip
        skips.append(Skip("c", f"INV-{i}", SkipCode.SUPERSEDED, "step 1", "contracts.a.reminders", f"reminder:c:{i}:1"))
    return Plan.build(
        date(2026, 10, 20),
        actions,
        skips,
        [Warning("c", None, WarningCode.PROVIDER_EMAIL, "ß")],
        [RecordError("c", "INV-X", "DueDate missing")],
    )


@pytest.mark.parametrize("n", [0, 1, 7])
def test_plan_json_is_byte_for_byte_the_standard_encoders(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_module, "_CHUNK", 3)  # several chunks, and a last one that is short
    plan = _plan(n)
    applied = ({"key": "k", "response_id": "9", "form": None},)
    for variant in (plan, dataclasses.replace(plan, applied=applied, failed=())):
        expected = json.dumps(variant.to_dict(), indent=2, ensure_ascii=False) + "\n"
        assert variant.to_json() == expected
        assert b"".join(variant.json_chunks()) == expected.encode("utf-8")


def test_a_number_with_a_fraction_is_read_as_a_decimal_never_a_float(tmp_path: Path) -> None:
    path = tmp_path / "invoices.json"
    path.write_text('[{"total": 12.10, "lines": [1e2], "note": "rate: 1.5"}]', encoding="utf-8")
    data = read_json(path, "invoices")
    assert data == [{"total": Decimal("12.10"), "lines": [Decimal("1E+2")], "note": "rate: 1.5"}]
    assert isinstance(data[0]["total"], Decimal)
    path.write_text('[{"total": "12.10", "n": 3}]', encoding="utf-8")
    assert read_json(path, "invoices") == [{"total": "12.10", "n": 3}]


def test_invalid_json_says_where(tmp_path: Path) -> None:
    path = tmp_path / "invoices.json"
    path.write_text('[{"total": "1"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_json(path, "invoices")
