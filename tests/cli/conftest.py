"""CLI test fixtures: the real `bridge` entry point in-process (tests/runner.py), a linked sandbox book."""

from __future__ import annotations

import pytest

from tests.cli.books import book, module_sandbox, secret  # noqa: F401  (fixtures: a linked sandbox book)
from tests.runner import run_bridge


@pytest.fixture
def bridge(capsys, monkeypatch):
    return run_bridge(capsys, monkeypatch)
