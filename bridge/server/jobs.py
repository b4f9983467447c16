"""One connection's run, as every driver does it: the embedded worker threads and a Celery task alike.

    result = run_connection(runtime_factory, "acme-qbo", trigger="webhook", stop=stop)

`run_connection` is the only place the server turns a connection into a sync: it skips a connection whose
link is dead (reported on /metrics and to the notices), calls the CLI's own `bridge.sync.sync` (a dry run
when the connection's `review = "required"`, whose plan then goes to the `ReviewSink` and ends "pending
review"), and records the outcome: metrics, last success and the next run in the store's schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bridge import clock
from bridge.config import ConnectionSettings
from bridge.errors import AuthError
from bridge.interrupt import INTERRUPTED_EXIT, StopOnSignal
from bridge.plan import Plan
from bridge.server.metrics import Metrics
from bridge.server.scheduler import next_run
from bridge.sync import Runtime, SyncOutcome, describe, sync

log = logging.getLogger("bridge.server")

RuntimeFactory = Callable[[], Runtime]
"""Gives the runtime (settings, store, vault) a run uses; the driver owns it (and closes it when done)."""

# A connection whose refresh token dies within this is skipped (a refresh would fail mid-run): re-link it.
RELINK_SKIP = timedelta(days=1)
# Within this, it still runs, and a notice says to re-link it soon.
RELINK_WARN = timedelta(days=14)

DEAD_LINK = "dead_link"  # the outcome of a run whose provider refuses the credentials (and of those skipped after)
REFUSED = "the provider refused its credentials"
OUTCOMES = ("ok", "partial", "failed", "interrupted", "pending_review", "skipped", DEAD_LINK)


@dataclass(frozen=True)
class JobResult:
    """What became of one connection's run."""

    connection: str
    trigger: str
    outcome: str  # one of OUTCOMES
    detail: str = ""
    plan: Plan | None = None
    review_id: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """The run did what it should (a plan waiting for review is fine too)."""
        return self.outcome in ("ok", "pending_review")


class ReviewSink(Protocol):
    """Where a plan waits for approval (a connection with `review = "required"`)."""

    def submit(self, rt: Runtime, connection: str, plan: Plan) -> str:
        """Keep `plan` as pending review; returns its id."""


class NoticeSink(Protocol):
    """Where the team hears of what needs a person: `relink`, `failed`, `in_doubt`, `review`."""

    def notice(self, kind: str, connection: str, text: str) -> None:
        """Say it (never raises: a notice that cannot be sent must not stop a run)."""


@dataclass
class HeldForReview:
    """The default ReviewSink: keeps the latest pending plan of each connection in memory and logs it."""

    pending: dict[str, Plan] = field(default_factory=dict)

    def submit(self, rt: Runtime, connection: str, plan: Plan) -> str:
        """Keep it; the id is the connection's name and the plan's day."""
        self.pending[connection] = plan
        log.info("%s: plan of %d action(s) held for review", connection, len(plan.actions))
        return f"{connection}:{plan.as_of.isoformat()}"


class LogNotices:
    """The default NoticeSink: a warning line in the log."""

    def notice(self, kind: str, connection: str, text: str) -> None:
        """Log it."""
        log.warning("%s: notice (%s): %s", connection, kind, text)


def link_problem(rt: Runtime, connection: ConnectionSettings) -> tuple[str | None, str | None]:
    """(why the connection must be skipped, or None; a warning to re-link soon, or None). A reason that starts
    with `REFUSED` means the provider refused the credentials before (the run is then a `dead_link` too).

    Dead: never linked (no tokens), the provider refused its credentials on an earlier run and it has not
    been re-linked since (its tokens are no newer than that run), or its refresh token dies within a day.
    """
    relink = f"re-link it (bridge link {connection.provider} --name {connection.name})"
    try:
        tokens, _ = rt.vault.load(connection.name)
    except AuthError as exc:
        return describe(exc), None
    row = next(iter(rt.store.schedule([connection.name])), None)
    saved = rt.store.load_token(connection.name)
    refused_at = row.last_run_at if row is not None and row.last_outcome == DEAD_LINK else None
    if refused_at is not None and saved is not None and saved.updated_at <= refused_at:
        return f"{REFUSED} on {refused_at:%Y-%m-%d %H:%M} UTC: {relink}", None
    now = clock.now_utc()
    ends = [t for t in (tokens.refresh_expires_at, _hard_expiry(tokens.extra.get("refresh_hard_expires_at"))) if t]
    if not ends:
        return None, None
    first = min(ends)
    if first <= now + RELINK_SKIP:
        when = "has expired" if first <= now else f"expires at {first.isoformat(timespec='minutes')}"
        return f"the refresh token {when}: {relink}", None
    if first <= now + RELINK_WARN:
        return None, f"the refresh token expires at {first.isoformat(timespec='minutes')}: re-link it before then"
    return None, None


def _hard_expiry(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def run_connection(
    runtime_factory: RuntimeFactory,
    name: str,
    *,
    trigger: str,
    stop: StopOnSignal | None = None,
    claim: str | None = None,
    due_at: datetime | None = None,
    metrics: Metrics | None = None,
    review: ReviewSink | None = None,
    notices: NoticeSink | None = None,
) -> JobResult:
    """Run one connection once (see the module docstring); never raises for what a sync can go through.

    `claim`: the schedule claim this run holds (released here, with the next run set from the cron and any
    webhook that came meanwhile). `due_at`: when the run was due (for the queue lag).
    """
    rt = runtime_factory()
    began = clock.monotonic()
    started = clock.now_utc()
    review = review or HeldForReview()
    notices = notices or LogNotices()
    if metrics is not None and due_at is not None:
        metrics.queue_lag.set(max(0.0, (started - due_at).total_seconds()))
    conn = rt.settings.connection(name)
    try:
        result = _run(rt, conn, trigger, stop, metrics, review, notices)
    except Exception as exc:  # the driver must go on with the other connections whatever happens to this one
        log.exception("%s: run failed", name)
        result = JobResult(name, trigger, "failed", describe(exc))
    result = JobResult(
        result.connection,
        trigger,
        result.outcome,
        result.detail,
        result.plan,
        result.review_id,
        clock.monotonic() - began,
    )
    _record(rt, conn, result, claim, started, metrics, notices)
    return result


def _run(
    rt: Runtime,
    conn: ConnectionSettings,
    trigger: str,
    stop: StopOnSignal | None,
    metrics: Metrics | None,
    review: ReviewSink,
    notices: NoticeSink,
) -> JobResult:
    dead, soon = link_problem(rt, conn)
    if metrics is not None:
        metrics.link_dead.labels(conn.name).set(1 if dead else 0)
    if dead:
        log.warning("%s: skipped: %s", conn.name, dead)
        notices.notice("relink", conn.name, dead)
        return JobResult(conn.name, trigger, DEAD_LINK if dead.startswith(REFUSED) else "skipped", dead)
    if soon:
        notices.notice("relink", conn.name, soon)
    log.info("%s: run (%s)", conn.name, trigger)
    held = conn.review == "required"  # the run stops at the plan, which waits for approval
    outcome = sync(rt, [conn.name], dry_run=held, stop=None if held else stop)
    _count(metrics, conn, outcome)
    if any(run.refused for run in outcome.runs):
        why = next(run.error or "" for run in outcome.runs if run.refused)
        if metrics is not None:
            metrics.link_dead.labels(conn.name).set(1)
        notices.notice("relink", conn.name, why)
        return JobResult(conn.name, trigger, DEAD_LINK, why, outcome.plan)
    if held and outcome.exit_code in (0, 3) and outcome.plan.actions:
        plan_id = review.submit(rt, conn.name, outcome.plan)
        notices.notice("review", conn.name, f"{len(outcome.plan.actions)} action(s) wait for approval ({plan_id})")
        return JobResult(conn.name, trigger, "pending_review", _detail(outcome), outcome.plan, plan_id)
    if outcome.report is not None and outcome.report.in_doubt:
        notices.notice("in_doubt", conn.name, f"{len(outcome.report.in_doubt)} action(s) in doubt, not sent again")
    return JobResult(conn.name, trigger, _outcome(outcome), _detail(outcome), outcome.plan)


def _outcome(outcome: SyncOutcome) -> str:
    code = outcome.exit_code
    report = outcome.report
    if code == INTERRUPTED_EXIT and report is not None and not report.not_started:
        # Stopped with nothing left undone (the signal came after the last action): the run is complete.
        code = 3 if report.failed or report.in_doubt or report.broken or outcome.plan.errors else 0
    return {0: "ok", 3: "partial", INTERRUPTED_EXIT: "interrupted"}.get(code, "failed")


def _detail(outcome: SyncOutcome) -> str:
    errors = [f"{e.record}: {e.error}" if e.record != "*" else e.error for e in outcome.plan.errors]
    summary = f"{len(outcome.plan.actions)} action(s)"
    if outcome.report is not None:
        r = outcome.report
        summary += f"; {len(r.applied)} applied, {len(r.failed)} failed, {len(r.in_doubt)} in doubt"
        if r.not_started:
            summary += f", {len(r.not_started)} not started"
    return "; ".join([summary, *errors[:3]])


def _count(metrics: Metrics | None, conn: ConnectionSettings, outcome: SyncOutcome) -> None:
    if metrics is None:
        return
    stats = outcome.stats()
    for status, n in stats.statuses.items():
        metrics.api_calls.labels(conn.provider, str(status)).inc(n)
    for reason, n in stats.retried.items():
        metrics.retries.labels(conn.provider, reason).inc(n)
    if outcome.report is None:
        return
    kinds = {a.key: a.kind.value for a in outcome.plan.actions}
    for state in ("applied", "failed", "dropped", "in_doubt", "deferred", "not_started"):
        for item in getattr(outcome.report, state):
            key = str(item.get("key", ""))
            metrics.actions.labels(conn.name, kinds.get(key, key.split(":", 1)[0]), state).inc()


def _record(
    rt: Runtime,
    conn: ConnectionSettings,
    result: JobResult,
    claim: str | None,
    started: datetime,
    metrics: Metrics | None,
    notices: NoticeSink,
) -> None:
    """Metrics, the log line, a notice for a failure, and the schedule (the claim released, the next run set)."""
    log.info("%s: %s in %.1f s: %s", conn.name, result.outcome, result.seconds, result.detail)
    if result.outcome == "failed":
        notices.notice("failed", conn.name, result.detail)
    if metrics is not None:
        metrics.syncs.labels(conn.name, result.outcome).inc()
        if result.ok:
            metrics.last_success.labels(conn.name).set(clock.now_utc().timestamp())
        try:
            metrics.in_doubt.labels(conn.name).set(len(rt.store.ledger(connection=conn.name, states=["in_doubt"])))
        except Exception:  # a store hiccup must not lose the schedule below
            log.exception("%s: could not count in-doubt entries", conn.name)
    if claim is not None:
        now = clock.now_utc()
        # A run stopped by a signal left actions for the next run: due at once, for whoever runs next.
        after = now if result.outcome == "interrupted" else next_run(conn, max(started, now))
        rt.store.schedule_finish(
            conn.name,
            claim,
            next_run_at=after,
            outcome=result.outcome,
            detail=result.detail[:2000],
            ok=result.ok,
        )
