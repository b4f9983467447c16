"""Distributed mode: `bridge serve --broker redis://…` schedules, receives webhooks and serves HTTP; `bridge worker`
processes (Celery on Redis) run the syncs, on any number of machines, against one PostgreSQL store.

    serve:   Dispatcher(store, settings, CeleryExecutor(celery_app(broker)))   claims due runs, sends them
    worker:  run_worker(rt, broker, concurrency=4)                              runs them with `run_connection`

A task carries a claimed job (connection, trigger, when it was due, the claim) and is run by the same
`bridge.server.jobs.run_connection` as the embedded worker threads: no second copy of the sync. Tasks are
acknowledged late (after the run), one prefetched per worker slot, and given back when a worker is lost; a worker
killed mid-sync (SIGKILL, a machine gone) leaves its message unacknowledged, and Redis hands it to another worker
once the visibility timeout has passed. Running a sync twice is harmless by construction: the run lock keeps one
sync per connection at a time, and the ledger makes every action exactly-once (an action left `pending` by the
killed worker is reconciled against the provider, never repeated blind).

SIGTERM on a worker is Celery's warm shutdown: no new task is taken, the sync in flight is told to stop after
the action it is applying (nothing left `pending`), and the process exits 0.

Every process of a distributed server shares each provider account's rate budget in the broker's Redis
(`bridge.connectors.budget`).
"""

from __future__ import annotations

import logging
import os
import signal
from datetime import datetime
from typing import Any, cast

import redis
from celery import Celery, signals  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from bridge.connectors.budget import share_budgets
from bridge.errors import ConfigError
from bridge.interrupt import StopOnSignal
from bridge.server.dispatcher import Job, worker_id
from bridge.server.jobs import NoticeSink, ReviewSink, RuntimeFactory, run_connection
from bridge.server.metrics import Metrics

log = logging.getLogger("bridge.server")

TASK = "bridge.run_connection"
QUEUE = "bridge.runs"
BACKLOG = 200  # runs waiting in the broker at most: the dispatcher claims no more until workers take some
# How long a task taken by a worker may stay unacknowledged before Redis gives it to another worker (a worker
# lost mid-run). Longer than a sync should take; a sync that outlasts it runs a second time, which the run lock
# serialises and the ledger makes harmless. BRIDGE_REDELIVER_AFTER_SECONDS overrides it.
REDELIVER_AFTER = 900.0
METRICS_KEY = "bridge:metrics:"  # + a worker's id: its metrics, as Prometheus text, for the server's /metrics
METRICS_KEPT = 7 * 86_400  # seconds a stopped worker's counts stay in the sum


def redeliver_after(env: dict[str, str] | None = None) -> float:
    """The visibility timeout in seconds (`REDELIVER_AFTER`, or BRIDGE_REDELIVER_AFTER_SECONDS)."""
    value = (env if env is not None else os.environ).get("BRIDGE_REDELIVER_AFTER_SECONDS")
    if not value:
        return REDELIVER_AFTER
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ConfigError(f"BRIDGE_REDELIVER_AFTER_SECONDS: expected a number of seconds above 0, got {value!r}")
    return seconds


def check_broker(url: str, source: str = "server.broker") -> str:
    """The broker URL if it is a Redis one (the only broker the bridge runs on); a ConfigError naming `source`
    (the option or the key it came from) otherwise."""
    if not url.startswith(("redis://", "rediss://")):
        raise ConfigError(f"{source}: {url!r} is not a Redis URL (redis://HOST:6379/0)")
    return url


def check_store(url: str) -> None:
    """The distributed mode runs on PostgreSQL: workers on other machines cannot share a SQLite file, and the
    schedule is claimed with FOR UPDATE SKIP LOCKED."""
    from bridge.store.engine import parse_url

    if not parse_url(url).drivername.startswith("postgresql"):
        raise ConfigError(
            "store.url: with a broker (bridge serve --broker, bridge worker) the store must be PostgreSQL "
            "(postgresql://USER@HOST/DB): workers on other machines cannot share a SQLite file"
        )


def celery_app(broker: str) -> Celery:
    """The Celery app both sides use: late acks, one prefetched task per slot, tasks given back on a lost worker."""
    app = Celery("bridge", broker=check_broker(broker), set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={"visibility_timeout": redeliver_after()},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


class CeleryExecutor:
    """The dispatcher's executor in distributed mode: each claimed job becomes a task for `bridge worker`."""

    def __init__(self, app: Celery, *, backlog: int = BACKLOG) -> None:
        self.app = app
        self.backlog = backlog
        self._redis = redis.Redis.from_url(str(app.conf.broker_url), socket_timeout=5, socket_connect_timeout=5)
        self._closed = False

    def room(self) -> int:
        """How many more runs the broker takes now: the backlog less the tasks waiting in the queue."""
        if self._closed:
            return 0
        waiting = cast(int, self._redis.llen(QUEUE))
        return max(0, self.backlog - waiting)

    def submit(self, job: Job) -> None:
        """Send the job as a task (returns at once)."""
        self.app.send_task(TASK, args=[job.connection, job.trigger, job.due_at.isoformat(), job.claim], queue=QUEUE)

    def drain(self, timeout: float | None = None) -> list[Job]:
        """Send no more; the tasks already sent are the workers' (nothing here was accepted and not started)."""
        self._closed = True
        return []

    def problem(self) -> str | None:
        """For /readyz: the broker reachable, or why not."""
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            return f"broker not reachable: {type(exc).__name__}: {exc}"
        return None


class FleetMetrics(Metrics):
    """The server's own metrics plus those every worker published in Redis: counters summed over the processes,
    gauges the largest value any reports (the latest success, the longest queue lag). So `/metrics` on
    `bridge serve --broker` shows the syncs, actions and calls the workers made."""

    def __init__(self, broker: str) -> None:
        super().__init__()
        self._redis = redis.Redis.from_url(broker, socket_timeout=5, socket_connect_timeout=5)

    def render(self) -> bytes:
        """The merged exposition (the server's own alone when Redis cannot be read)."""
        texts = [super().render()]
        try:
            keys = list(self._redis.scan_iter(f"{METRICS_KEY}*", count=500))
            texts += [t for t in cast(list[bytes | None], self._redis.mget(keys)) if t] if keys else []
        except redis.RedisError:
            log.warning("the workers' metrics could not be read from the broker; /metrics shows the server's own")
        return merged(texts)


def merged(texts: list[bytes]) -> bytes:
    """Several processes' Prometheus texts as one: counters summed, gauges the largest (`_created` dropped)."""
    families: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text.decode("utf-8")):
            if family.name.endswith("_created"):
                continue
            kind, _, samples = families.setdefault(family.name, (family.type, family.documentation, {}))
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                before = samples.get(key)
                if before is None:
                    samples[key] = sample.value
                else:
                    samples[key] = before + sample.value if kind == "counter" else max(before, sample.value)

    class Collected:
        def collect(self) -> list[Metric]:
            out = []
            for name, (kind, doc, samples) in families.items():
                metric = Metric(name, doc, kind)
                for (sample, labels), value in samples.items():
                    metric.add_sample(sample, dict(labels), value)
                out.append(metric)
            return out

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collected())
    return generate_latest(registry)


def publish(client: redis.Redis, worker: str, metrics: Metrics) -> None:
    """A worker's metrics into Redis for the server's /metrics (never fails a run)."""
    try:
        client.set(f"{METRICS_KEY}{worker}", metrics.render(), ex=METRICS_KEPT)
    except redis.RedisError as exc:
        log.warning("worker: could not publish metrics to the broker: %s", exc)


def define_task(
    app: Celery,
    runtime_factory: RuntimeFactory,
    stop: StopOnSignal,
    metrics: Metrics,
    review: ReviewSink | None = None,
    notices: NoticeSink | None = None,
) -> Any:
    """The task a worker runs: one claimed job through `run_connection`, stopping after the action in flight on a
    warm shutdown; the worker's metrics published after each. `review` and `notices`: where a plan held for
    review and the notices go (the review service, as on `bridge serve`)."""
    client = redis.Redis.from_url(str(app.conf.broker_url), socket_timeout=5, socket_connect_timeout=5)
    worker = worker_id()
    publish(client, worker, metrics)

    @app.task(name=TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def run(connection: str, trigger: str, due_at: str, claim: str) -> str:
        try:
            result = run_connection(
                runtime_factory,
                connection,
                trigger=trigger,
                stop=stop,
                claim=claim,
                due_at=datetime.fromisoformat(due_at),
                metrics=metrics,
                review=review,
                notices=notices,
            )
        finally:
            publish(client, worker, metrics)
        return result.outcome

    return run


def run_worker(
    runtime_factory: RuntimeFactory,
    broker: str,
    *,
    concurrency: int,
    review: ReviewSink | None = None,
    notices: NoticeSink | None = None,
) -> int:
    """Run a Celery worker in this process (`concurrency` threads) until SIGTERM or SIGINT; returns the exit code."""
    share_budgets(broker)
    app = celery_app(broker)
    stop = StopOnSignal()
    define_task(app, runtime_factory, stop, Metrics(), review, notices)

    def shutting_down(sig: str = "", how: str = "", exitcode: int = 0, **_: object) -> None:
        log.info("worker: %s, %s shutdown: the runs in flight stop after their current action", sig, how)
        stop.request(signal.SIGTERM)

    signals.worker_shutting_down.connect(shutting_down, weak=False)
    worker = app.Worker(
        pool="threads",
        concurrency=concurrency,
        queues=[QUEUE],
        loglevel="INFO",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        optimization="fair",
    )
    worker.start()
    return int(worker.exitcode or 0)
