"""`python -m bridge_sandbox`: the emulators without the bridge CLI (the same as `bridge sandbox serve`)."""

from __future__ import annotations

import subprocess
import sys


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge_sandbox", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_help_names_the_module() -> None:
    proc = run_module("--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m bridge_sandbox")


def test_a_bad_fault_spec_exits_2() -> None:
    proc = run_module("--faults", '{"quickbooks": {"500": 7}}')
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.startswith("error: ")
