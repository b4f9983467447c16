"""Issue 14, through the public command line against the sandbox: what the plan says is what happens.

- A config naming a template set or a channel that does not exist is refused when it is loaded (exit 2),
  not when the first reminder is due.
- `--json` on every command: stdout holds only the JSON document.
- Ctrl-C (SIGINT) or SIGTERM while applying finishes the action in flight, reports what was applied and
  what was not started, leaves nothing pending, and exits 130; the next sync does the rest exactly once.
- An unknown connection name is a usage error (exit 2) on every command that takes one.
- Provider amounts finer than the currency's minor unit are never rounded: the record is quarantined.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge.config import load_settings, load_terms
from bridge.sandbox import Sandbox, default_seed
from tests.torture.harness import AS_OF, PROVIDERS, Trial

ROOT = Path(__file__).resolve().parents[2]
Bridge = Callable[..., Any]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=False) as running:
        yield running


def linked(
    sandbox: Sandbox,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    providers: tuple[str, ...] = PROVIDERS,
    seed: dict[str, Any] | None = None,
) -> Trial:
    """A folder with a config and a store linked to the sandbox's (re)seeded books; the environment set for it."""
    trial = Trial(sandbox, folder, providers, seed=seed)
    for name, value in trial.env().items():
        if name.startswith("BRIDGE_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)
    return trial


def human(trial: Trial, *args: str) -> list[str]:
    """`bridge` arguments for the trial's config without --json."""
    return ["--config", str(trial.config), "--as-of", AS_OF, *args]


# -- 6. template sets and channels are checked when the config is loaded -------------------------------------


def _with_reminders(setting: str) -> str:
    demo = (ROOT / "config" / "demo.toml").read_text()
    assert 'channel = "provider"\n' in demo
    return demo.replace('channel = "provider"\n', setting + "\n")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            'template = "politee"',
            "contracts.standard.reminders.template: unknown template set 'politee'; available: firm, polite; "
            "did you mean 'polite'?",
        ),
        (
            'channel = "smtp"',
            "contracts.standard.reminders.channel: 'smtp' is not available yet",
        ),
        (
            'channel = "e-mail"',
            "contracts.standard.reminders.channel: unknown channel 'e-mail'; available: provider",
        ),
    ],
    ids=["template", "smtp", "unknown-channel"],
)
def test_an_unknown_template_set_or_channel_is_a_config_error_before_anything_runs(
    bridge: Bridge, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, expected: str
) -> None:
    trial = linked(sandbox, tmp_path / "books", monkeypatch, ("quickbooks",))
    config = trial.config.read_text()
    trial.config.write_text(config.replace(config[config.index("# Contracts") :], _with_reminders(setting)))
    contracts = tmp_path / "contracts.toml"
    contracts.write_text(_with_reminders(setting))
    (tmp_path / "invoices.json").write_text("[]")
    requests_before = len(sandbox.requests())
    for args, source in (
        (human(trial, "sync", "--dry-run"), trial.config),
        (human(trial, "sync"), trial.config),
        (human(trial, "evaluate", "--invoices", str(tmp_path / "invoices.json")), trial.config),
        (["evaluate", "--invoices", str(tmp_path / "invoices.json"), "--contracts", str(contracts)], contracts),
        (["demo", "--dry-run", "--contracts", str(contracts)], contracts),
    ):
        result = bridge(*args)
        assert result.code == 2, (args, result.code, result.err)
        assert f"{source}: {expected}" in result.err, result.err
        assert "Traceback" not in result.err
    assert len(sandbox.requests()) == requests_before  # refused before any provider was called
    assert trial.ledger() == {}


def test_every_shipped_config_still_loads() -> None:
    for path in sorted((ROOT / "config").rglob("*.toml")):
        terms = load_terms(path)
        assert terms.contracts, path
        assert {c.reminders.channel for c in terms.contracts} == {"provider"}
    assert load_settings(ROOT / "config" / "bridge.example.toml").connections


# -- 9. provider amounts are never rounded silently ------------------------------------------------------


def _damage(seed: dict[str, Any], clean: dict[str, Any]) -> dict[str, str]:
    """One acted-on invoice per provider gets an amount finer than a cent; one more gets trailing zeros.

    Returns the damaged invoices' ids by provider.
    """
    acted: dict[str, str] = {}
    for action in clean["actions"]:
        acted.setdefault(action["provider"], action["invoice"]["id"])
    qbo = next(i for i in seed["quickbooks"]["Invoice"] if i["Id"] == acted["quickbooks"])
    qbo["Line"][0]["Amount"] = Decimal(str(qbo["Line"][0]["Amount"])) + Decimal("0.005")
    xero = next(i for i in seed["xero"]["Invoices"] if i["InvoiceID"] == acted["xero"])
    xero["AmountDue"] = Decimal(str(xero["AmountDue"])) - Decimal("0.001")
    fresh = next(i for i in seed["freshbooks"]["invoices"] if str(i["id"]) == acted["freshbooks"])
    fresh["outstanding"] = {**fresh["outstanding"], "amount": f"{fresh['outstanding']['amount']}5"}
    # Exact amounts written with more places are not an error: 1750.00 is 1750.0000.
    others = [i for i in seed["quickbooks"]["Invoice"] if i["Id"] != acted["quickbooks"]]
    for inv in others:
        inv["TotalAmt"] = f"{Decimal(str(inv['TotalAmt'])):.4f}"
        inv["Balance"] = f"{Decimal(str(inv['Balance'])):.4f}"
    return acted


def test_an_invoice_with_an_amount_finer_than_a_cent_is_quarantined_not_rounded(
    bridge: Bridge, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trial = linked(sandbox, tmp_path / "clean", monkeypatch)
    clean_run = bridge(*trial.args("sync", "--dry-run"))
    assert clean_run.code == 0, clean_run.err
    clean = json.loads(clean_run.out)
    assert clean["errors"] == []

    seed = copy.deepcopy(default_seed())
    damaged = _damage(seed, clean)
    trial = linked(sandbox, tmp_path / "fine", monkeypatch, seed=seed)
    result = bridge(*trial.args("sync"))
    assert result.code == 3, result.err  # partial: everything else completed
    plan = json.loads(result.out)
    errors = {(e["connection"], str(e["record"])): e["error"] for e in plan["errors"]}
    assert set(errors) == {(provider, record) for provider, record in damaged.items()}
    assert "Invoice.Line[0].Amount" in errors["quickbooks", damaged["quickbooks"]]
    assert "Invoice.AmountDue" in errors["xero", damaged["xero"]]
    assert "invoice.outstanding" in errors["freshbooks", damaged["freshbooks"]]
    assert all("finer than the currency's minor unit" in e and "not rounded" in e for e in errors.values())
    # Nothing is done to a quarantined invoice; every other invoice is planned and applied as before.
    expected = {a["key"] for a in clean["actions"] if a["invoice"]["id"] not in damaged.values()}
    assert {a["key"] for a in plan["actions"]} == expected
    assert {a["key"] for a in plan["applied"]} == expected
