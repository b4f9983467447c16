"""Run the real `bridge` entry point in-process and capture what it prints and its exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from bridge.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err


def run_bridge(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """`run(*args)`: `bridge ARGS` as the console script runs it; exit code, stdout and stderr."""

    def run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["bridge", *args])
        with pytest.raises(SystemExit) as exc:
            main()
        captured = capsys.readouterr()
        return Result(int(exc.value.code or 0), captured.out, captured.err)

    return run
