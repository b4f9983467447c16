"""A provider account's rate budget is shared by every process: on one machine in a file, across machines (when
a broker is set) in Redis.

Three processes check the same QuickBooks company at once, each as fast as its connector lets it. The
connector paces a company at 8 calls a second, which keeps one process under Intuit's 500 a minute; the
sandbox here allows 10 a second per company (a one-second window, so the test takes seconds, not minutes).
Three connectors that share no budget (each with a cache folder of its own, as on three machines) go at 24 a
second and the sandbox answers 429; sharing this machine's window, or the budget in Redis, they share the 8 a
second and the sandbox never throttles. All three run: the first shows the test can fail.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet

from bridge.auth.link import link_sandbox
from bridge.auth.vault import TokenVault
from bridge.store import Store
from bridge_sandbox import RateLimit, Sandbox
from tests.distributed.conftest import redis_database

CALLS = 15  # per process
PROCESSES = 3
BUDGET_DB = 13


def _hammer(
    store_url: str, key: str, base_url: str, tenant: str, redis_url: str | None, cache: str | None, go: object
) -> None:
    """One worker process: `CALLS` checks of the company, through the connector the configuration builds
    (`cache`: a cache folder of its own, so this machine's window is its alone)."""
    from bridge.auth.vault import TokenVault
    from bridge.config import ConnectionSettings
    from bridge.connectors.budget import share_budgets
    from bridge.providers import get
    from bridge.store import Store

    if cache:
        os.environ["XDG_CACHE_HOME"] = cache
    share_budgets(redis_url)
    connection = ConnectionSettings(name="acme", provider="quickbooks", tenant_id=tenant, base_url=base_url)
    with Store.open(store_url) as store:
        connector = get("quickbooks").build_connector(connection, TokenVault(store, Fernet(key.encode())), {})
        go.wait()  # type: ignore[attr-defined]
        for _ in range(CALLS):
            connector.check()


@pytest.fixture
def budget_url(redis_url: str) -> Iterator[str]:
    with redis_database(redis_url, BUDGET_DB) as url:
        yield url


@pytest.fixture
def linked(tmp_path: Path) -> Iterator[tuple[Sandbox, str, str, str]]:
    """A sandbox allowing 10 calls a second per QuickBooks company, and one company linked in a store."""
    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    with Sandbox(rate_limits={"quickbooks": [RateLimit(10, 1.0)]}) as sandbox:
        with Store.open(url) as store:
            vault = TokenVault(store, Fernet(key.encode()))
            tenant = link_sandbox("quickbooks", store, vault, sandbox.base_url, "acme")
        yield sandbox, url, key, tenant


def _run_together(
    linked: tuple[Sandbox, str, str, str], redis_url: str | None, caches: Path | None = None
) -> list[int]:
    """The three processes at once; the statuses the sandbox gave to their API calls (`caches`: where each makes
    a cache folder of its own)."""
    sandbox, url, key, tenant = linked
    sandbox.reset()  # request log and rate windows cleared; the tokens stay valid
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    workers = [
        context.Process(
            target=_hammer,
            args=(url, key, sandbox.base_url, tenant, redis_url, caches and str(caches / f"cache-{n}"), go),
        )
        for n in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    go.set()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0, f"a worker process failed (exit {worker.exitcode})"
    return [
        int(str(r["status"]))
        for r in sandbox.requests()
        if r["provider"] == "quickbooks" and "/companyinfo/" in str(r["path"]).lower()
    ]


def test_processes_without_a_shared_budget_are_throttled(linked: tuple[Sandbox, str, str, str], tmp_path: Path) -> None:
    statuses = _run_together(linked, None, tmp_path)
    assert statuses.count(429) > 0, "three limiters of their own together stayed under the company's limit"


def test_processes_on_one_machine_share_its_budget_without_redis(linked: tuple[Sandbox, str, str, str]) -> None:
    statuses = _run_together(linked, None)
    assert statuses.count(200) == PROCESSES * CALLS
    assert statuses.count(429) == 0, statuses


def test_processes_sharing_the_budget_in_redis_are_never_throttled(
    linked: tuple[Sandbox, str, str, str], budget_url: str
) -> None:
    statuses = _run_together(linked, budget_url)
    assert statuses.count(200) == PROCESSES * CALLS
    assert statuses.count(429) == 0, statuses


class _Waited(Exception):
    pass


def test_the_budget_is_one_window_per_account(budget_url: str) -> None:
    """Two limiters on one account share a window; another account has its own; a full window says how long
    until the oldest call leaves it."""
    from bridge.connectors.budget import RedisLimiter, account_key

    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        raise _Waited  # no real minute in a test: the wait asked for is what is checked

    client = redis.Redis.from_url(budget_url)
    account = ("quickbooks", f"http://test-{uuid.uuid4().hex}", "1")
    first, second = (RedisLimiter(client, account_key(account), 3, 60.0, sleep=sleep) for _ in range(2))
    other = RedisLimiter(client, account_key((*account[:2], "2")), 3, 60.0, sleep=sleep)
    for limiter in (first, second, first, other):
        assert limiter.acquire() == 0.0
    assert slept == []
    with pytest.raises(_Waited):
        second.acquire()
    assert 55 < slept[0] <= 60
