"""Hostile records in the provider's books, end to end: `bridge sync` quarantines each with its reason,
lists it in the plan's `errors`, syncs every other record exactly as it would without them, and exits 3.

A record that is odd but legal is not an error: an invoice without a due date is read and skipped
with docs/policy.md's `no_due_date`; a customer name of 100,000 characters is just a long name.

(The mapping-level fuzzing is in test_hostile_payloads.py; this is the same damage seen from the
command line, through the emulators and the official SDKs.)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge_sandbox import Sandbox, default_seed
from tests.torture.harness import PROVIDERS, Trial
from tests.torture.test_kill9 import sandbox  # noqa: F401 (the fixture)

Damage = Callable[[dict[str, Any]], None]
ERROR, NO_DUE_DATE, SAME = "error", "skip no_due_date", "synced as before"


def _drop(key: str) -> Damage:
    return lambda record: record.pop(key, None)


def _set(path: str, value: Any) -> Damage:
    def damage(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = record
        for part in parents:
            node = node[part]
        node[last] = value

    return damage


# Per provider: the collection of invoices in the seed, the field naming an invoice in `errors`, and
# the damages with what must come of each.
HOSTILE: dict[str, tuple[str, str, list[tuple[str, Damage, str]]]] = {
    "quickbooks": (
        "Invoice",
        "Id",
        [
            ("no due date", _drop("DueDate"), NO_DUE_DATE),
            ("unknown currency", _set("CurrencyRef.value", "ZZZ"), ERROR),
            ("absurd amount", _set("TotalAmt", "-1e400"), ERROR),
            ("impossible date", _set("TxnDate", "2026-02-30"), ERROR),
            ("huge customer name", _set("CustomerRef.name", "x" * 100_000), SAME),
        ],
    ),
    "xero": (
        "Invoices",
        "InvoiceID",
        [
            ("no due date", _drop("DueDate"), NO_DUE_DATE),
            ("unknown currency", _set("CurrencyCode", "ZZZ"), ERROR),
            ("absurd amount", _set("Total", "NaN"), ERROR),
            ("impossible date", _set("Date", "/Date(99999999999999999+0000)/"), ERROR),
            ("unknown status", _set("Status", "HAUNTED"), ERROR),
        ],
    ),
    "freshbooks": (
        "invoices",
        "id",
        [
            ("no due date", _drop("due_date"), NO_DUE_DATE),
            ("unknown currency", _set("currency_code", "ZZZ"), ERROR),
            ("absurd amount", _set("amount.amount", "-1e400"), ERROR),
            ("impossible date", _set("create_date", "2026-13-45"), ERROR),
            ("unknown status", _set("status", 99), ERROR),
        ],
    ),
}


def _plan(trial: Trial) -> tuple[int, dict[str, Any]]:
    run = trial.run("sync")
    return run.returncode, json.loads(run.stdout)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_hostile_records_are_quarantined_and_everything_else_syncs_as_without_them(
    sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
    provider: str,
) -> None:
    code, clean = _plan(Trial(sandbox, tmp_path / "clean", (provider,)))
    assert code == 0 and clean["errors"] == []

    collection, id_field, damages = HOSTILE[provider]
    seed = copy.deepcopy(default_seed())
    # Damage the invoices the clean sync acted on first: their actions must vanish, nobody else's.
    acted = list(dict.fromkeys(a["invoice"]["id"] for a in clean["actions"]))
    records = {str(r[id_field]): r for r in seed[provider][collection]}
    targets = (acted + [i for i in records if i not in acted])[: len(damages)]
    for target, (_, damage, _) in zip(targets, damages, strict=True):
        damage(records[target])

    code, hostile = _plan(Trial(sandbox, tmp_path / "hostile", (provider,), seed=seed))
    errors = {str(e["record"]): e["error"] for e in hostile["errors"]}
    numbers = {
        str(r[id_field]): r.get("DocNumber") or r.get("InvoiceNumber") or r.get("invoice_number")
        for r in records.values()
    }
    skipped = {(s["invoice"], s["code"]) for s in hostile["skipped"]}
    gone: set[str] = set()
    for target, (what, _, expected) in zip(targets, damages, strict=True):
        if expected == ERROR:
            assert errors.get(target), (what, target, errors)  # quarantined, with its reason
            gone.add(target)
        elif expected == NO_DUE_DATE:
            assert (numbers[target], "no_due_date") in skipped, (what, target)
            gone.add(target)
        else:
            assert target not in errors, (what, errors[target])
    assert set(errors) == {t for t, (_, _, e) in zip(targets, damages, strict=True) if e == ERROR}  # nothing else
    assert code == 3  # partial: the rest completed
    expected_keys = {a["key"] for a in clean["actions"] if a["invoice"]["id"] not in gone}
    assert {a["key"] for a in hostile["actions"]} == expected_keys
    assert {a["key"] for a in hostile["applied"]} == expected_keys
