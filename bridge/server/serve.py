"""`bridge serve`, embedded: the dispatcher, N worker threads and the HTTP port in one process.

SIGTERM (or Ctrl-C) drains: the HTTP port closes, no run is claimed any more, each run in flight stops after
the action it is applying (nothing is left `pending`), claims not started are given back, and the process
exits 0. A second signal aborts at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from starlette.routing import BaseRoute

from bridge.interrupt import StopOnSignal
from bridge.server.app import ServerContext, create_app
from bridge.server.dispatcher import Dispatcher, Executor, Job, ThreadExecutor
from bridge.server.jobs import HeldForReview, LogNotices, NoticeSink, ReviewSink, run_connection
from bridge.server.metrics import Metrics
from bridge.sync import Runtime

log = logging.getLogger("bridge.server")


ExecutorFactory = Callable[[Callable[[Job], object]], Executor]
"""Builds the executor from the function that runs one job here (the embedded threads use it; a Celery
executor sends the job to a worker instead, which runs it with `run_connection` there)."""


@dataclass
class Embedded:
    """Everything a server runs, built from one runtime (its store is shared by every thread): the dispatcher
    and its executor (`workers` threads here unless `executor` builds another), the metrics, the seams."""

    rt: Runtime
    workers: int
    tick: float = 1.0
    review: ReviewSink = field(default_factory=HeldForReview)
    notices: NoticeSink = field(default_factory=LogNotices)
    metrics: Metrics = field(default_factory=Metrics)
    stop: StopOnSignal = field(default_factory=StopOnSignal)
    executor_factory: ExecutorFactory | None = None

    def __post_init__(self) -> None:
        make = self.executor_factory or (lambda run: ThreadExecutor(run, self.workers))
        self.executor = make(self.run)
        self.dispatcher = Dispatcher(self.rt.store, self.rt.settings, self.executor, tick=self.tick)

    def run(self, job: Job) -> object:
        """One claimed job, through the one run function every driver uses."""
        return run_connection(
            lambda: self.rt,
            job.connection,
            trigger=job.trigger,
            stop=self.stop,
            claim=job.claim,
            due_at=job.due_at,
            metrics=self.metrics,
            review=self.review,
            notices=self.notices,
        )

    def context(self) -> ServerContext:
        """What the HTTP routes need."""
        return ServerContext(self.rt, self.dispatcher, self.metrics)


def serve(
    rt: Runtime,
    *,
    host: str,
    port: int,
    workers: int,
    routes: Sequence[BaseRoute] = (),
    ready: Callable[[str], None] | None = None,
    executor_factory: ExecutorFactory | None = None,
    checks: Sequence[Callable[[], str | None]] = (),
    review: ReviewSink | None = None,
    notices: NoticeSink | None = None,
    metrics: Metrics | None = None,
) -> int:
    """Run the server until SIGTERM or SIGINT; returns the exit code (0 after a clean drain).

    `routes` are mounted beside the server's own; `executor_factory` replaces the worker threads (a broker);
    `checks` are more readiness checks for /readyz (e.g. the broker answers); `review` and `notices` replace
    the defaults (plans held in memory, notices in the log); `metrics` replaces the server's own (a broker's
    adds up what the workers publish)."""
    import uvicorn

    embedded = Embedded(rt, workers, metrics=metrics or Metrics(), executor_factory=executor_factory)
    if review is not None:
        embedded.review = review
    if notices is not None:
        embedded.notices = notices
    for conn in rt.settings.connections:
        if conn.webhook_secret_env and not rt.env.get(conn.webhook_secret_env):
            log.warning("%s: $%s is not set: its webhooks will be refused (401)", conn.name, conn.webhook_secret_env)
    context = embedded.context()
    context.checks = checks
    app = create_app(context, routes)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
    server = _Server(config)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            raise KeyboardInterrupt  # the second signal: abort at once
        stopping.set()
        log.info("%s: draining (the runs in flight finish their current action)", signal.Signals(signum).name)
        embedded.stop.request(signal.Signals(signum))
        server.should_exit = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        embedded.dispatcher.start()
        server.announce = ready
        server.run()
        if not server.started:
            return 1
        embedded.dispatcher.drain()
        log.info("stopped: nothing in flight")
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Server:
    """uvicorn's Server without its own signal handlers (ours drain the workers first), saying where it listens."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        class Quiet(uvicorn.Server):
            def install_signal_handlers(self) -> None:
                """The process's handlers are `serve`'s."""

        self._server = Quiet(config)
        self.announce: Callable[[str], None] | None = None

    @property
    def should_exit(self) -> bool:
        return bool(self._server.should_exit)

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._server.should_exit = value

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    def run(self) -> None:
        import asyncio

        async def main() -> None:
            config = self._server.config
            if not config.loaded:
                config.load()
            task = asyncio.create_task(self._server.serve())
            while not self._server.started and not task.done():
                await asyncio.sleep(0.05)
            if self._server.started and self.announce is not None:
                sockets = [s for srv in self._server.servers for s in srv.sockets]
                host, port = sockets[0].getsockname()[:2]
                self.announce(f"http://{host}:{port}")
            await task

        asyncio.run(main())
