"""bridge without the emulators: `bridge_sandbox` is a distribution of its own (sandbox/), never in bridge's wheel.

Every bridge module imports without it (only `bridge sandbox serve` and `bridge demo` import it, inside the
command), and those two commands exit 2 saying how to install it. The emulators are hidden from a subprocess
by `sys.modules["bridge_sandbox"] = None`, which makes any import of them fail as if they were not installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HIDE = "import sys; sys.modules['bridge_sandbox'] = None; "


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE + code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_every_bridge_module_imports_without_the_emulators() -> None:
    code = (
        "import importlib, pkgutil, bridge\n"
        "names = [m.name for m in pkgutil.walk_packages(bridge.__path__, 'bridge.')\n"
        "         if not m.name.endswith('__main__') and not m.name.startswith('bridge.store.migrations.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "assert 'bridge.cli' in names and 'bridge.demo' in names, names\n"
        "assert sys.modules['bridge_sandbox'] is None\n"
        "print(len(names))\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 30


@pytest.mark.parametrize(
    "argv",
    [["sandbox", "serve"], ["--as-of", "2026-10-20", "demo", "--dry-run"]],
    ids=["sandbox serve", "demo"],
)
def test_the_commands_that_need_the_emulators_say_how_to_install_them(argv: list[str]) -> None:
    proc = run_python("from bridge.cli import main; sys.argv[0] = 'bridge'; main()", *argv)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "error: the emulators are not installed: pip install --no-deps -e ./sandbox" in proc.stderr
    assert "make demo / make test, which install them" in proc.stderr
    assert proc.stdout == ""
