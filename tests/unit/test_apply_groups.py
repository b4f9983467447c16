"""The order `apply_actions` carries actions out in when a connector writes the fee lines of several invoices in one
call: the line fees of `write_batch` invoices of one connection as one group, then those invoices' other actions."""

from __future__ import annotations

from typing import Any

from bridge.ledger import _units
from bridge.plan import Action
from tests.builders import invoice
from tests.contract.suite import fee_action, reminder_action


class _Writes:
    def __init__(self, write_batch: int) -> None:
        self.write_batch = write_batch


def _plan(connection: str, count: int) -> list[Action]:
    """Two line fees, a fee on an invoice of its own and a reminder on each of `count` invoices, in `apply_actions`'
    order (by invoice, fees first)."""
    out: list[Action] = []
    for n in range(1, count + 1):
        inv = invoice(f"INV-{n}", connection=connection)
        out += [fee_action(inv, 1), fee_action(inv, 2), fee_action(inv, 3, form="invoice"), reminder_action(inv)]
    return out


def _shape(units: list[tuple[bool, list[Action]]]) -> list[Any]:
    return [
        (together, [a.key.split(":", 1)[0] + ":" + a.key.rsplit(":", 2)[-2] for a in unit]) for together, unit in units
    ]


def test_the_line_fees_of_write_batch_invoices_go_together_then_each_invoices_other_actions() -> None:
    ordered = _plan("a", 3)
    units = list(_units(ordered, {"a": _Writes(2)}))  # type: ignore[dict-item]
    assert _shape(units) == [
        (True, ["late_fee:1", "late_fee:1", "late_fee:2", "late_fee:2"]),
        (False, ["late_fee:1"]),  # the fee on an invoice of its own: one call, as ever
        (False, ["reminder:1"]),
        (False, ["late_fee:2"]),
        (False, ["reminder:2"]),
        (True, ["late_fee:3", "late_fee:3"]),
        (False, ["late_fee:3"]),
        (False, ["reminder:3"]),
    ]
    assert sorted(a.key for _, unit in units for a in unit) == sorted(a.key for a in ordered)  # each once


def test_a_connector_without_batch_writes_and_a_connection_not_configured_go_one_action_at_a_time() -> None:
    ordered = _plan("a", 2) + _plan("b", 1)
    units = list(_units(ordered, {"a": _Writes(1)}))  # type: ignore[dict-item]
    assert [unit for together, unit in units if together] == []
    assert [a for _, unit in units for a in unit] == ordered
