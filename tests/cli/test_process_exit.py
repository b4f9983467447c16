"""The `bridge` process ends as soon as a command is done (`bridge.cli.run`): its exit handlers run and its output
is whole, but the objects are not torn down one by one; Python's own exit is kept where something may need it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A stand-in for a command's process: an exit handler, an object that says when it is torn down, then `run`.
PROCESS = """
import atexit, sys, threading, time
class Torn:
    def __del__(self):
        print("torn down", flush=True)
kept = Torn()
atexit.register(lambda: print("exit handler", flush=True))
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.5), print("thread done", flush=True))).start()
sys.argv = ["bridge", "--version"]
from bridge.cli import run
run()
"""


def _process(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROCESS, mode], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


def test_the_exit_handlers_run_and_nothing_is_torn_down_one_by_one() -> None:
    done = _process("plain")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "exit handler"
    assert "torn down" not in lines
    assert lines[0].startswith("bridge"), lines  # the command's own output, flushed before the exit


def test_a_thread_still_running_gets_pythons_own_exit() -> None:
    done = _process("thread")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "thread done" in lines and "exit handler" in lines and "torn down" in lines


def test_a_large_plan_reaches_a_pipe_whole(tmp_path: Path) -> None:
    invoices = [
        {"id": str(i), "number": f"INV-{i}", "connection": "c", "customer": {"id": "k", "email": "k@example.com"},
         "currency": "USD", "due_date": "2026-01-05", "total": "100.00", "amount_due": "100.00", "status": "open"}
        for i in range(3000)
    ]  # fmt: skip
    path = tmp_path / "invoices.json"
    path.write_text(json.dumps(invoices), encoding="utf-8")
    contracts = tmp_path / "contracts.toml"
    contracts.write_text(
        '[contracts.a]\napplies_to = ["*"]\ncurrency = "USD"\n[contracts.a.reminders]\nschedule = [1, 7]\n'
        '[contracts.a.late_fee]\npercent = "1.5"\nevery_days = 30\n',
        encoding="utf-8",
    )
    argv = ["--as-of", "2026-10-20", "--json", "evaluate", "--invoices", str(path), "--contracts", str(contracts)]
    done = subprocess.run(
        [sys.executable, "-m", "bridge", *argv], capture_output=True, timeout=120, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["summary"]["actions"] == len(plan["actions"]) > 3000
