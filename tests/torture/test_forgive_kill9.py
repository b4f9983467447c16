"""Kill -9 torture of `bridge forgive`: killed with SIGKILL while taking a fee back, then run again until it is done.

Each trial syncs one provider's fresh default books, then runs `bridge forgive KEY` on a late fee the sync charged
(as a line, or on a fee invoice of its own: the trials take turns), and kills it: at `ledger-pending` (the
forgiving recorded pending, the provider not yet called), at `provider-answered` (done at the provider, the ledger
has not heard), or from outside after a random share of an uninterrupted forgive's duration. Then `bridge forgive
KEY` again, then `bridge sync` until it plans nothing. At the end, against the provider's books: the fee line is
gone (or that fee invoice void, and no other), every other line of the invoice is as it was (taken off exactly
once, nothing else), the forgiving is `applied` in the ledger and the fee `forgiven`, and the occurrence was not
charged again.

CI runs TORTURE_TRIALS // 10 trials per provider (3 by default); `make torture` (200) runs 20 per provider.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge_sandbox import Sandbox
from tests.torture.harness import PROVIDERS, Trial, occurrences, record_tally

TRIALS = max(1, int(os.environ.get("TORTURE_TRIALS", "30")) // 10)
MODES = ("ledger-pending", "provider-answered", "random")
FORMS = ("line", "invoice")
_LINES = {"quickbooks": ("Invoice", "Line", "Description"), "xero": ("Invoices", "LineItems", "Description")}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as sb:
        yield sb


def charged(trial: Trial, form: str) -> dict[str, Any]:
    """Sync the trial's books; the first late fee charged in `form` (its planned action): as a line, or on a fee
    invoice of its own (the contract's `mode = "invoice"`; Xero makes some by itself, on partly paid invoices)."""
    if form == "invoice" and trial.providers != ("xero",):
        trial.config.write_text(trial.config.read_text().replace('mode = "line"', 'mode = "invoice"'))
    done = trial.run("sync")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    forms = {a["key"]: a["form"] for a in plan["applied"]}
    return dict(next(a for a in plan["actions"] if a["kind"] == "late_fee" and forms.get(a["key"]) == form))


def voided(trial: Trial, provider: str) -> set[str]:
    """The ids of the invoices the provider shows void (deleted at FreshBooks, which has no void)."""
    books = trial.sandbox.state()[provider]
    if provider == "quickbooks":
        return {str(i["Id"]) for i in books["Invoice"] if i.get("PrivateNote") == "Voided"}
    if provider == "xero":
        return {str(i["InvoiceID"]) for i in books["Invoices"] if i["Status"] == "VOIDED"}
    return {str(i["id"]) for i in books["invoices"] if i["vis_state"] == 1}


def lines(trial: Trial, provider: str, number: str) -> Counter[str]:
    """The descriptions of an invoice's lines at the provider."""
    books = trial.sandbox.state()[provider]
    table, field, text = _LINES.get(provider, ("invoices", "lines", "description"))
    number_field = {"quickbooks": "DocNumber", "xero": "InvoiceNumber"}.get(provider, "invoice_number")
    invoice = next(i for i in books[table] if i[number_field] == number)
    return Counter(str(x.get(text)) for x in invoice[field] if x.get("DetailType") != "SubTotalLineDetail")


_BASELINE: dict[str, float] = {}


def forgive_seconds(sandbox: Sandbox, folder: Path, provider: str) -> float:
    """How long an uninterrupted `bridge forgive` takes on this provider (measured once per worker)."""
    if provider not in _BASELINE:
        trial = Trial(sandbox, folder, (provider,))
        fee = charged(trial, "line")
        started = time.monotonic()
        clean = trial.run("forgive", fee["key"])
        assert clean.returncode == 0, clean.stderr
        _BASELINE[provider] = time.monotonic() - started
    return _BASELINE[provider]


def _trial(sandbox: Sandbox, folder: Path, provider: str, mode: str, form: str, share: float) -> Counter[str]:
    duration = forgive_seconds(sandbox, folder / "baseline", provider)
    trial = Trial(sandbox, folder, (provider,))
    fee = charged(trial, form)
    number, description = fee["invoice"]["number"], fee["description"]
    before, void_before = lines(trial, provider, number), voided(trial, provider)
    assert before[description] == (1 if form == "line" else 0)
    if mode == "random":
        crashed = trial.run("forgive", fee["key"], kill_after=share * duration)
    else:
        crashed = trial.run("forgive", fee["key"], kill_at=f"{mode}:1")
    assert crashed.returncode in (0, -9), crashed.stderr
    again = trial.run("forgive", fee["key"])
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["outcome"] in ("forgiven", "already")
    trial.converge()
    ledger = trial.ledger()
    forgiving = ledger["forgive:" + fee["key"].removeprefix("late_fee:")]
    assert forgiving.state == "applied", forgiving
    assert ledger[fee["key"]].state == "forgiven" and ledger[fee["key"]].attempts == 1  # never charged again
    after = lines(trial, provider, number)
    expected = before - Counter({description: 1})
    tally: Counter[str] = Counter(trials=1, kills=int(crashed.returncode == -9))
    if form == "line":
        tally["fee_left"] += occurrences(trial.sandbox.state()[provider], description)
    else:  # that fee invoice void, and no other
        tally["fee_left"] += int(voided(trial, provider) != void_before | {str(ledger[fee["key"]].response_id)})
    tally["other_lines_changed"] += int(after != expected)
    tally["forgive_attempts"] += forgiving.attempts
    return tally


def _cases() -> list[Any]:
    rng = random.Random(20261207)
    return [
        pytest.param(provider, mode, form, rng.random(), id=f"{provider}-{mode}-{form}-{i}")
        for provider in PROVIDERS
        for i in range(TRIALS)
        for mode, form in [(MODES[i % len(MODES)], FORMS[i % len(FORMS)])]
    ]


@pytest.mark.parametrize(("provider", "mode", "form", "share"), _cases())
def test_a_forgive_killed_with_sigkill_takes_the_fee_back_exactly_once(
    sandbox: Sandbox, tmp_path: Path, provider: str, mode: str, form: str, share: float
) -> None:
    tally = _trial(sandbox, tmp_path, provider, mode, form, share)
    record_tally({"suite": "forgive_kill9", "provider": provider, "mode": mode, **tally})
    assert tally["fee_left"] == 0 and tally["other_lines_changed"] == 0, tally
