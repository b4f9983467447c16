"""Shared pytest configuration: Hypothesis profiles (`HYPOTHESIS_PROFILE=ci` in CI, `dev` by default),
and the service fixtures `postgres_url` and `redis_url`."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest
from hypothesis import HealthCheck, settings

_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large]

# CI runs the same 2,000 examples every time (a landing must not hinge on a lucky draw); local runs
# draw new examples each time, so exploration goes on where a failure can be looked at.
settings.register_profile(
    "ci", max_examples=2000, deadline=None, suppress_health_check=_SUPPRESSED, derandomize=True, database=None
)
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=_SUPPRESSED)
# `HYPOTHESIS_PROFILE=deep` for a long hunt by hand: many new examples, nothing fixed.
settings.register_profile("deep", max_examples=10_000, deadline=None, suppress_health_check=_SUPPRESSED)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session", autouse=True)
def _rate_windows_of_the_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The providers' rate windows shared on this machine (`bridge.connectors.budget.machine_folder`) live in the
    run's temporary folder, for this process and the CLI processes it starts, not in the user's cache."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


# -- services: PostgreSQL and Redis on loopback ------------------------------------------------
# A test that needs a service takes the fixture; when the service is not reachable the test is
# skipped, or fails when BRIDGE_REQUIRE_SERVICES=1 (CI, where the services must be up).

_POSTGRES_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
_REDIS_HOST, _REDIS_PORT = "127.0.0.1", 6379


def service_unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when BRIDGE_REQUIRE_SERVICES=1."""
    if os.environ.get("BRIDGE_REQUIRE_SERVICES") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """URL of the PostgreSQL test database (BRIDGE_TEST_POSTGRES_URL, else trust auth on 127.0.0.1:5432/test)."""
    try:
        import psycopg
    except ImportError:
        service_unavailable("PostgreSQL not reachable at 127.0.0.1:5432: psycopg is not installed")
    override = os.environ.get("BRIDGE_TEST_POSTGRES_URL")
    problems: list[str] = []
    for url in (override,) if override else _POSTGRES_CANDIDATES:
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return url
        except psycopg.Error as exc:
            first_line = (str(exc).strip() or repr(exc)).splitlines()[0]
            problems.append(f"{url.split('@')[0]}@...: {first_line}")
    service_unavailable("PostgreSQL not reachable at 127.0.0.1:5432: " + "; ".join(problems))


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema of its own, dropped after the test."""
    import psycopg

    schema = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in postgres_server_url else "?"
    yield f"{postgres_server_url}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a Redis server on 127.0.0.1:6379 that answers PING (checked with a raw socket)."""
    override = os.environ.get("BRIDGE_TEST_REDIS_URL")
    if override:
        return override
    reason = f"Redis not reachable at {_REDIS_HOST}:{_REDIS_PORT}"
    try:
        with socket.create_connection((_REDIS_HOST, _REDIS_PORT), timeout=2) as sock:
            sock.settimeout(2)
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        service_unavailable(f"{reason}: {exc}")
    if not reply.startswith(b"+PONG"):
        service_unavailable(f"{reason}: PING answered {reply.decode('utf-8', 'replace').strip()!r}")
    return f"redis://{_REDIS_HOST}:{_REDIS_PORT}/0"
