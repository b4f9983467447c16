"""Fixtures of the distributed-mode tests: the in-process `bridge` runner and a module-scoped sandbox."""

from __future__ import annotations

import pytest

from tests.cli.qbo import module_sandbox  # noqa: F401  (fixture)
from tests.runner import run_bridge


@pytest.fixture
def bridge(capsys, monkeypatch):
    return run_bridge(capsys, monkeypatch)
