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
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge.config import load_settings, load_terms
from bridge_sandbox import Sandbox, default_seed
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
            'channel = "e-mail"',
            "contracts.standard.reminders.channel: unknown channel 'e-mail'; available: provider, smtp",
        ),
    ],
    ids=["template", "unknown-channel"],
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


# -- 7. --json: stdout holds only the JSON document, on every command ---------------------------------------


def _json_out(result: Any, *codes: int) -> Any:
    assert result.code in (codes or (0,)), (result.code, result.err)
    return json.loads(result.out)  # the whole of stdout, nothing before or after


def test_json_on_every_command_puts_only_the_json_document_on_stdout(
    bridge: Bridge, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trial = linked(sandbox, tmp_path / "books", monkeypatch, ("quickbooks",))
    examples = ROOT / "config" / "examples"
    evaluated = _json_out(
        bridge(
            "--json",
            "evaluate",
            "--invoices",
            str(examples / "invoices.json"),
            "--contracts",
            str(examples / "bridge.toml"),
        ),
        0,
        3,
    )
    assert evaluated["actions"]

    plan_path = tmp_path / "plan.json"
    dry = _json_out(bridge(*trial.args("sync", "--dry-run", "--out", str(plan_path))))
    assert dry["actions"] and "applied" not in dry
    applied = _json_out(bridge(*trial.args("apply", str(plan_path))))
    assert sorted(a["key"] for a in applied["applied"]) == sorted(a["key"] for a in dry["actions"])
    again = _json_out(bridge(*trial.args("sync")))
    assert again["actions"] == [] and again["applied"] == []

    state = sandbox.state()["quickbooks"]["Invoice"]
    target = next(i for i in state if Decimal(str(i["Balance"])) > 0 and i.get("DueDate"))
    from datetime import date, timedelta

    new_due = (date.fromisoformat(target["DueDate"]) + timedelta(days=10)).isoformat()
    decided = _json_out(
        bridge(
            *trial.args(
                "renegotiate", "--connection", "quickbooks", "--invoice", target["DocNumber"], "--new-due-date", new_due
            )
        )
    )
    assert [a["kind"] for a in decided["actions"]] in (["update_due_date"], ["renegotiation_refused"])

    ledger = _json_out(bridge(*trial.args("ledger")))
    assert {e["key"] for e in ledger} >= {a["key"] for a in dry["actions"]}
    assert _json_out(bridge(*trial.args("ledger", "--connection", "quickbooks"))) == ledger

    listed = _json_out(bridge(*trial.args("connections", "list")))
    assert [(c["name"], c["linked"]) for c in listed] == [("quickbooks", True)]
    checked = _json_out(bridge(*trial.args("connections", "check", "quickbooks")))
    assert checked["name"] == "quickbooks" and checked["ok"] is True

    linked_again = _json_out(
        bridge(*trial.args("link", "quickbooks", "--name", "second", "--base-url", sandbox.base_url))
    )
    assert linked_again["name"] == "second" and linked_again["tenant_id"]
    assert _json_out(bridge(*trial.args("connections", "check", "second")))["ok"] is True
    removed = _json_out(bridge(*trial.args("connections", "remove", "second")))
    assert removed["name"] == "second" and removed["removed"] is True
    assert [c["name"] for c in _json_out(bridge(*trial.args("connections", "list")))] == ["quickbooks"]


def test_json_sandbox_serve_prints_one_json_line_with_the_base_url() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "--json", "sandbox", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        import requests

        assert requests.get(f"{first['base_url']}/_sandbox/outbox", timeout=10).json() == []
        assert set(first["providers"]) == set(PROVIDERS)
    finally:
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=30)
    assert rest == ""  # nothing else on stdout
    assert "sandbox listening on" in err


def test_json_demo_dry_run_prints_on_stdout_the_plan_the_real_demo_then_applies(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("BRIDGE_SECRET_KEY", raising=False)
    dry_run = bridge("--as-of", AS_OF, "--json", "demo", "--dry-run")
    preview = _json_out(dry_run)
    assert "applied" not in preview and "{" not in dry_run.err  # the plan is not on stderr too
    real = _json_out(bridge("--as-of", AS_OF, "--json", "demo"))

    def what(actions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(
            (a["key"], a["kind"], a.get("amount"), a["invoice"]["currency"], a.get("to"), a.get("subject"))
            for a in actions
        )

    assert preview["actions"] and what(preview["actions"]) == what(real["actions"])
    assert sorted(a["key"] for a in real["applied"]) == sorted(a["key"] for a in preview["actions"])
    assert real["failed"] == []
    assert {a["connection"] for a in preview["actions"]} == {"demo-qbo", "demo-xero", "demo-freshbooks"}


# -- 8. Ctrl-C / SIGTERM while applying; unknown connection names ------------------------------------------


@pytest.fixture(scope="module")
def slow_sandbox() -> Iterator[Sandbox]:
    """Every answer 150 ms late, so that an apply lasts long enough to be interrupted in the middle."""
    with Sandbox(latency_ms=150, rate_limits=False) as running:
        yield running


def _wait_for_a_first_applied_action(trial: Trial, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if any(e.state == "applied" for e in trial.ledger().values()):
            return
        time.sleep(0.05)
    raise AssertionError("no action was applied within two minutes")


@pytest.mark.parametrize(
    ("command", "signum"), [("sync", signal.SIGINT), ("apply", signal.SIGTERM)], ids=["sync-sigint", "apply-sigterm"]
)
def test_a_signal_while_applying_finishes_the_action_in_flight_reports_exits_130_and_the_next_sync_does_the_rest_once(
    bridge: Bridge,
    slow_sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    signum: signal.Signals,
) -> None:
    trial = linked(slow_sandbox, tmp_path / "books", monkeypatch, ("quickbooks",))
    plan_path = tmp_path / "plan.json"
    planned = json.loads(bridge(*trial.args("sync", "--dry-run", "--out", str(plan_path))).out)["actions"]
    assert len(planned) >= 4
    done_path = tmp_path / "done.json"
    args = ["sync", "--out", str(done_path)] if command == "sync" else ["apply", str(plan_path)]
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", *human(trial, *args)],
        env=trial.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    _wait_for_a_first_applied_action(trial, process)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)

    assert process.returncode == 130, (out, err)
    again = "bridge sync" if command == "sync" else f"bridge apply {plan_path}"
    found = re.search(r"Interrupted: (\d+) applied, (\d+) not started; run `(.+?)` again to continue", out)
    assert found and found[3] == again, (out, err)
    applied, not_started = int(found[1]), int(found[2])
    assert applied >= 1 and not_started >= 1 and applied + not_started == len(planned), (out, err)
    assert "Aborted" not in err and "Traceback" not in err
    if command == "sync":  # the plan file records the interruption too
        done = json.loads(done_path.read_text())
        assert len(done["applied"]) == applied
        assert {"connection": "quickbooks", "record": "*", "error": f"interrupted: {not_started} planned actions "
                "not started; the next run does them"} in done["errors"]
    ledger = trial.ledger()
    assert [k for k, e in ledger.items() if e.state == "pending"] == []  # the action in flight was finished
    first = {k for k, e in ledger.items() if e.state == "applied"}
    assert len(first) == applied

    rest = bridge(*trial.args("sync"))
    assert rest.code == 0, rest.err
    second = {a["key"] for a in json.loads(rest.out)["applied"]}
    assert not first & second and first | second == {a["key"] for a in planned}  # each exactly once
    state = slow_sandbox.state()["quickbooks"]["Invoice"]
    for fee in (a for a in planned if a["kind"] == "late_fee"):
        assert sum(line.get("Description") == fee["description"] for i in state for line in i["Line"]) == 1
    sent = [m["invoice_id"] for m in slow_sandbox.outbox()]
    assert sorted(sent) == sorted(a["invoice"]["id"] for a in planned if a["kind"] == "reminder")


UNKNOWN_CONNECTION = [
    ("ledger", ["ledger", "--connection", "nope"]),
    ("sync", ["sync", "--connection", "nope"]),
    ("sync-dry-run", ["sync", "--dry-run", "--connection", "nope"]),
    ("apply", ["apply", "{tmp}/foreign.json"]),
    ("renegotiate", ["renegotiate", "--connection", "nope", "--invoice", "1001", "--new-due-date", "2026-12-01"]),
    ("connections-check", ["connections", "check", "nope"]),
    ("connections-remove", ["connections", "remove", "nope"]),
]


@pytest.mark.parametrize("args", [c[1] for c in UNKNOWN_CONNECTION], ids=[c[0] for c in UNKNOWN_CONNECTION])
def test_an_unknown_connection_name_exits_2_naming_it_and_the_known_ones(
    bridge: Bridge, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    trial = linked(sandbox, tmp_path / "books", monkeypatch, ("quickbooks",))
    plan = json.loads(bridge(*trial.args("sync", "--dry-run")).out)
    for action in plan["actions"]:
        action["connection"] = "nope"
        action["key"] = action["key"].replace(":quickbooks:", ":nope:")
    (tmp_path / "foreign.json").write_text(json.dumps(plan))
    config_before = trial.config.read_text()
    result = bridge(*human(trial, *[a.replace("{tmp}", str(tmp_path)) for a in args]))
    assert result.code == 2, (result.code, result.out, result.err)
    message = result.err.replace("\n", " ")
    assert "'nope'" in message and "configured: quickbooks" in message, result.err
    assert "The ledger is empty" not in result.out
    assert trial.config.read_text() == config_before


def test_the_ledger_of_a_connection_removed_from_the_config_still_shows_its_history(
    bridge: Bridge, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trial = linked(sandbox, tmp_path / "books", monkeypatch, ("quickbooks",))
    applied = json.loads(bridge(*trial.args("sync")).out)["applied"]
    assert applied
    assert bridge(*trial.args("connections", "remove", "quickbooks")).code == 0
    history = json.loads(bridge(*trial.args("ledger", "--connection", "quickbooks")).out)
    assert {e["key"] for e in history} == {a["key"] for a in applied}
