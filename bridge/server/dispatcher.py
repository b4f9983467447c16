"""The dispatcher: claims due connections from the store's schedule and hands them to an executor.

    dispatcher = Dispatcher(store, settings, ThreadExecutor(runner, workers=2))
    dispatcher.start()          # a thread: every tick, claim what is due (up to the executor's free room)
    dispatcher.bring_forward("acme-qbo")   # a verified webhook: run it soon, coalescing a burst
    dispatcher.drain()          # SIGTERM: stop claiming, let the runs in flight finish, give back the rest

The executor is pluggable: `ThreadExecutor` runs jobs on N threads in this process (embedded mode); a
Celery executor sends them to `bridge worker` processes. Either way a job is run by
`bridge.server.jobs.run_connection`, which releases the claim and sets the next run.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bridge import clock
from bridge.config import Settings
from bridge.server.scheduler import next_run
from bridge.store import Store

log = logging.getLogger("bridge.server")

COALESCE = timedelta(seconds=2)  # a webhook runs its connection this soon; more webhooks meanwhile join that run
TICK = 1.0  # seconds between two looks at the schedule


@dataclass(frozen=True)
class Job:
    """One claimed run: which connection, why, when it was due, and the claim it holds."""

    connection: str
    trigger: str
    due_at: datetime
    claim: str


class Executor(Protocol):
    """Runs jobs somewhere: threads in this process, or Celery workers."""

    def room(self) -> int:
        """How many more jobs it takes now (the dispatcher never claims more)."""

    def submit(self, job: Job) -> None:
        """Run the job (returns at once)."""

    def drain(self, timeout: float | None = None) -> list[Job]:
        """Take no more jobs; wait for those running; returns the jobs accepted but never started."""


class ThreadExecutor:
    """Embedded mode: `workers` threads in this process, each running one job at a time with `run`."""

    def __init__(self, run: Callable[[Job], object], workers: int) -> None:
        self._run = run
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._busy = 0
        self._queued = 0
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"bridge-worker-{i + 1}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def room(self) -> int:
        """Threads neither busy nor promised to a queued job."""
        with self._lock:
            return 0 if self._closed else len(self._threads) - self._busy - self._queued

    def submit(self, job: Job) -> None:
        """Queue it for the next free thread."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the executor is draining")
            self._queued += 1
        self._queue.put(job)

    def drain(self, timeout: float | None = None) -> list[Job]:
        """No more jobs: the queued ones come back unstarted; waits for the running ones."""
        with self._lock:
            self._closed = True
        unstarted: list[Job] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                unstarted.append(item)
                with self._lock:
                    self._queued -= 1
        for _ in self._threads:
            self._queue.put(None)
        deadline = None if timeout is None else clock.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - clock.monotonic()))
        return unstarted

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._queued -= 1
                self._busy += 1
            try:
                self._run(job)
            except Exception:  # run_connection does not raise; this is the last guard of the thread
                log.exception("%s: the worker thread caught an error", job.connection)
            finally:
                with self._lock:
                    self._busy -= 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def worker_id() -> str:
    """Who holds a claim: host, process and a random part (unique across restarts and machines)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Dispatcher:
    """Claims due connections from the store's schedule and submits them to the executor (see the module)."""

    def __init__(self, store: Store, settings: Settings, executor: Executor, *, tick: float = TICK) -> None:
        self.store = store
        self.settings = settings
        self.executor = executor
        self.tick = tick
        self.worker = worker_id()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def schedule_all(self) -> None:
        """A schedule row for every configured connection (new ones at their next cron time)."""
        now = clock.now_utc()
        self.store.schedule_ensure({c.name: next_run(c, now) for c in self.settings.connections})

    def free_orphans(self) -> list[str]:
        """Give back the claims of earlier processes on this host that are gone (killed, crashed): their runs are
        due again now rather than when their lease ends. Claims of live processes and other hosts stay."""
        host = socket.gethostname()
        orphans: dict[str, list[str]] = {}
        for row in self.store.schedule():
            holder = (row.claimed_by or "").split(":")
            if len(holder) != 3 or holder[0] != host or not holder[1].isdigit() or row.claimed_by == self.worker:
                continue
            # Our own pid under another id: an earlier life of this process's pid (a restarted container's pid 1).
            if int(holder[1]) == os.getpid() or not _alive(int(holder[1])):
                orphans.setdefault(row.claimed_by or "", []).append(row.connection)
        for gone, held in orphans.items():
            self.store.schedule_release(held, gone)
            log.info("gave back %d run(s) claimed by %s, a process that is gone", len(held), gone)
        return sorted(n for held in orphans.values() for n in held)

    def start(self) -> None:
        """Schedule the configured connections, free what dead local processes held, and claim in a thread."""
        self.schedule_all()
        self.free_orphans()
        self._thread = threading.Thread(target=self._loop, name="bridge-dispatcher", daemon=True)
        self._thread.start()

    def bring_forward(self, connection: str) -> bool | None:
        """A hint that the connection changed: its next run within `COALESCE` (see `Store.schedule_bring_forward`)."""
        moved = self.store.schedule_bring_forward(connection, clock.now_utc() + COALESCE)
        self._wake.set()
        return moved

    def claim_once(self) -> list[Job]:
        """Claim what is due, up to the executor's room, and submit it."""
        room = self.executor.room()
        if room <= 0:
            return []
        lease = timedelta(seconds=max(c.sync_deadline_seconds for c in self.settings.connections) * 2 + 60)
        rows = self.store.schedule_claim(self.worker, lease=lease, limit=room)
        jobs = [Job(r.connection, r.trigger, r.next_run_at, self.worker) for r in rows]
        for job in jobs:
            self.executor.submit(job)
        return jobs

    def drain(self, timeout: float | None = None) -> None:
        """Stop claiming, let the runs in flight finish, and give back the claims never started."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        unstarted = self.executor.drain(timeout)
        if unstarted:
            self.store.schedule_release([j.connection for j in unstarted], self.worker)
            log.info("gave back %d claimed run(s) not started", len(unstarted))

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.settings.connections:
                try:
                    self.claim_once()
                except Exception:  # a store hiccup: try again next tick
                    log.exception("claiming due runs failed")
            self._wake.wait(self.tick)
            self._wake.clear()
