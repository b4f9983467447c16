"""`bridge worker` and `bridge serve --broker`: what they refuse before starting (exit 2, the key named), and the
Celery executor's view of the broker (the machine's Redis; an unreachable one is named on /readyz)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography.fernet import Fernet

from bridge.server.dispatcher import Job
from bridge.server.distributed import QUEUE, CeleryExecutor, celery_app, redeliver_after
from tests.distributed.conftest import redis_database

EXECUTOR_DB = 12


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    path = tmp_path / "bridge.toml"
    path.write_text(
        '[store]\nurl = "sqlite:///bridge.db"\n\n'
        '[[connections]]\nname = "acme-qbo"\nprovider = "quickbooks"\ntenant_id = "1"\n'
    )
    return path


def test_a_worker_without_a_broker_says_how_to_give_one(bridge: Callable[..., Any], config: Path) -> None:
    result = bridge("--config", str(config), "worker")
    assert result.code == 2
    assert "--broker" in result.err and "[server] broker" in result.err


@pytest.mark.parametrize("command", [["worker", "--broker"], ["serve", "--broker"]])
def test_the_distributed_mode_refuses_a_sqlite_store(
    bridge: Callable[..., Any], config: Path, command: list[str]
) -> None:
    result = bridge("--config", str(config), *command, "redis://127.0.0.1:6379/0")
    assert result.code == 2
    assert "store.url" in result.err and "PostgreSQL" in result.err


def test_a_broker_that_is_not_redis_is_refused(bridge: Callable[..., Any], config: Path) -> None:
    result = bridge("--config", str(config), "worker", "--broker", "amqp://127.0.0.1")
    assert result.code == 2 and "--broker" in result.err and "not a Redis URL" in result.err


def test_the_redelivery_delay_can_be_set_and_is_checked() -> None:
    assert redeliver_after({}) == 900.0
    assert redeliver_after({"BRIDGE_REDELIVER_AFTER_SECONDS": "30"}) == 30.0
    from bridge.errors import ConfigError

    with pytest.raises(ConfigError, match="BRIDGE_REDELIVER_AFTER_SECONDS"):
        redeliver_after({"BRIDGE_REDELIVER_AFTER_SECONDS": "soon"})


@pytest.fixture
def broker(redis_url: str) -> Iterator[str]:
    with redis_database(redis_url, EXECUTOR_DB) as url:
        yield url


def test_the_executor_sends_jobs_as_late_acked_tasks_and_its_room_shrinks_with_the_queue(broker: str) -> None:
    app = celery_app(broker)
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
    executor = CeleryExecutor(app, backlog=3)
    assert executor.problem() is None
    assert executor.room() == 3
    due = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)
    executor.submit(Job("acme-qbo", "webhook", due, "serve-1"))
    executor.submit(Job("acme-xero", "schedule", due, "serve-1"))
    assert executor.room() == 1
    assert redis.Redis.from_url(broker).llen(QUEUE) == 2
    assert executor.drain() == [] and executor.room() == 0


def test_an_unreachable_broker_is_named_for_readyz() -> None:
    executor = CeleryExecutor(celery_app("redis://127.0.0.1:1/0"))
    problem = executor.problem()
    assert problem is not None and problem.startswith("broker not reachable")


def test_the_servers_metrics_add_up_what_every_worker_published(broker: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from bridge.server.distributed import FleetMetrics, publish
    from bridge.server.metrics import Metrics

    client = redis.Redis.from_url(broker)
    first, second = Metrics(), Metrics()
    first.syncs.labels("acme-qbo", "ok").inc()
    second.syncs.labels("acme-qbo", "ok").inc(2)
    second.syncs.labels("acme-xero", "failed").inc()
    first.last_success.labels("acme-qbo").set(1_700_000_000)
    second.last_success.labels("acme-qbo").set(1_700_000_500)
    publish(client, "host:1:a", first)
    publish(client, "host:2:b", second)
    server = FleetMetrics(broker)
    server.webhooks.labels("quickbooks", "accepted").inc()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(server.render().decode())
        for s in family.samples
    }
    assert samples[("bridge_syncs_total", (("connection", "acme-qbo"), ("outcome", "ok")))] == 3
    assert samples[("bridge_syncs_total", (("connection", "acme-xero"), ("outcome", "failed")))] == 1
    assert samples[("bridge_last_success_timestamp_seconds", (("connection", "acme-qbo"),))] == 1_700_000_500
    assert samples[("bridge_webhooks_total", (("outcome", "accepted"), ("provider", "quickbooks")))] == 1
    assert not any(name.endswith("_created") for name, _ in samples)
