"""Fixtures of the distributed-mode tests: the in-process `bridge` runner and a module-scoped sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from tests.cli.books import module_sandbox  # noqa: F401  (fixture)
from tests.runner import run_bridge


@pytest.fixture
def bridge(capsys, monkeypatch):
    return run_bridge(capsys, monkeypatch)


@contextmanager
def redis_database(redis_url: str, db: int) -> Iterator[str]:
    """The machine's Redis, database `db` (one per test file, so parallel runs of different files never meet),
    emptied before and after."""
    url = f"{redis_url.rsplit('/', 1)[0]}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
