"""`bridge evaluate` end to end: the example book, machine output, exit codes, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "config" / "examples"
EXAMPLE_ARGS = [
    "--as-of",
    "2026-10-20",
    "--config",
    str(EXAMPLES / "bridge.toml"),
]
EVALUATE = [
    "evaluate",
    "--invoices",
    str(EXAMPLES / "invoices.json"),
    "--history",
    str(EXAMPLES / "history.json"),
    "--renegotiations",
    str(EXAMPLES / "renegotiations.json"),
]


def test_example_book_as_json_shows_reminders_fees_a_cap_skips_and_a_refusal(bridge):
    result = bridge(*EXAMPLE_ARGS, "--json", *EVALUATE)
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert plan["version"] == 1 and plan["as_of"] == "2026-10-20"
    kinds = {a["kind"] for a in plan["actions"]}
    assert kinds == {"reminder", "late_fee", "update_due_date", "renegotiation_refused"}
    assert any("left under the cap" in a["reason"] for a in plan["actions"])
    assert {s["code"] for s in plan["skipped"]} >= {"paid", "draft", "on_hold", "superseded", "max_reminders"}
    assert [w["code"] for w in plan["warnings"]] == ["provider_email_template", "foreign_late_fee"]
    assert plan["summary"]["late_fee_total"] == {"USD": "115.20"}
    assert "7 late fees (115.20 USD)" in result.err  # the human summary goes to stderr with --json


def test_same_input_same_bytes(bridge):
    first = bridge(*EXAMPLE_ARGS, "--json", *EVALUATE).out
    second = bridge(*EXAMPLE_ARGS, "--json", *EVALUATE).out
    assert first == second


def test_human_output_is_a_table_on_stdout(bridge):
    result = bridge(*EXAMPLE_ARGS, *EVALUATE)
    assert result.code == 0
    assert "late_fee" in result.out and "contracts.standard.late_fee" in result.out
    assert "Skipped:" in result.out  # counted; -v lists them


def test_out_writes_the_plan_file(bridge, tmp_path):
    out = tmp_path / "plan.json"
    result = bridge(*EXAMPLE_ARGS, "--json", *EVALUATE, "--out", str(out))
    assert out.read_text() == result.out


def test_history_may_be_a_plans_applied_list(bridge, tmp_path):
    history = json.loads((EXAMPLES / "history.json").read_text())
    wrapped = tmp_path / "after_sync.json"
    wrapped.write_text(json.dumps({"applied": history}))
    args = [a if a != str(EXAMPLES / "history.json") else str(wrapped) for a in EVALUATE]
    assert bridge(*EXAMPLE_ARGS, "--json", *args).out == bridge(*EXAMPLE_ARGS, "--json", *EVALUATE).out


def test_contracts_file_overrides_the_config(bridge, tmp_path):
    contracts = tmp_path / "try.toml"
    contracts.write_text('[store]\nurl = "sqlite:///ignored.db"\n\n[contracts.lenient]\napplies_to = ["*"]\n')
    result = bridge("--as-of", "2026-10-20", "--json", *EVALUATE, "--contracts", str(contracts))
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert all(a["clause"].startswith("contracts.lenient.") for a in plan["actions"])
    assert not any(a["kind"] == "late_fee" for a in plan["actions"])  # no late_fee section: no fees


def test_a_malformed_invoice_is_quarantined_the_rest_evaluated_exit_3(bridge, tmp_path):
    invoices = json.loads((EXAMPLES / "invoices.json").read_text())
    invoices[1]["total"] = "lots"
    del invoices[2]["currency"]
    bad = tmp_path / "invoices.json"
    bad.write_text(json.dumps(invoices))
    args = [a if a != str(EXAMPLES / "invoices.json") else str(bad) for a in EVALUATE]
    result = bridge(*EXAMPLE_ARGS, "--json", *args)
    assert result.code == 3
    plan = json.loads(result.out)
    assert {e["record"] for e in plan["errors"]} == {"1038", "1039"}
    assert any("total" in e["error"] for e in plan["errors"])
    assert any(a["invoice"]["number"] == "1037" for a in plan["actions"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--as-of", "2026-13-01", *EVALUATE], "month 13 is not 1-12"),
        (["--as-of", "2026-10-20", "--config", "/nonexistent/bridge.toml", *EVALUATE], "/nonexistent/bridge.toml"),
        ([*EXAMPLE_ARGS, "evaluate", "--invoices", "/nonexistent/invoices.json"], "cannot read the invoices file"),
        ([*EXAMPLE_ARGS, "evaluate"], "Missing option '--invoices'"),
        ([*EXAMPLE_ARGS, "frobnicate"], "No such command"),
    ],
)
def test_bad_usage_exits_2_with_a_message(bridge, args, expected):
    result = bridge(*args)
    assert result.code == 2
    assert expected in result.err
    assert not result.out


def test_bad_config_exits_2_naming_file_key_and_problem(bridge, tmp_path):
    config = tmp_path / "bridge.toml"
    config.write_text('[contracts.standard]\napplies_to = ["*"]\n[contracts.standard.late_fee]\npercent = "150"\n')
    result = bridge("--config", str(config), "--as-of", "2026-10-20", *EVALUATE)
    assert result.code == 2
    assert str(config) in result.err and "contracts.standard.late_fee.percent" in result.err and "100" in result.err


def test_input_that_is_not_json_exits_2(bridge, tmp_path):
    bad = tmp_path / "invoices.json"
    bad.write_text("{not json")
    result = bridge(*EXAMPLE_ARGS, "evaluate", "--invoices", str(bad))
    assert result.code == 2 and "not valid JSON" in result.err


def test_python_dash_m_bridge_runs_the_same_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "bridge", *EXAMPLE_ARGS, "--json", *EVALUATE],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"]["actions"] == 13
