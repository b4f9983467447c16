"""Run the real `bridge` entry point in-process and capture what it prints and its exit code."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

from bridge.cli import main
from tests.cli.qbo import book, module_sandbox  # noqa: F401  (fixtures: a linked QuickBooks sandbox book)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def bridge(capsys, monkeypatch):
    def run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["bridge", *args])
        with pytest.raises(SystemExit) as exc:
            main()
        captured = capsys.readouterr()
        return Result(int(exc.value.code or 0), captured.out, captured.err)

    return run
