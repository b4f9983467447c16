"""pull -> evaluate -> plan -> apply, per connection; the same function for the CLI, the demo and a server.

A dry run pulls (the local read cache is updated) and evaluates, and writes
nothing to any provider or to the ledger. A real run first reconciles what an
earlier run left pending, then applies the plan exactly once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, TypeVar

from bridge import clock, collector, evaluations
from bridge.auth.vault import TokenVault
from bridge.config import ConnectionSettings, Settings
from bridge.connectors.base import Connector
from bridge.connectors.http import CallStats, set_speaking_for, speaking_for
from bridge.errors import AuthError, BridgeError, ConfigError
from bridge.evaluations import with_warnings
from bridge.interrupt import INTERRUPTED_EXIT, StopOnSignal, armed
from bridge.ledger import PLANNING_HISTORY, ApplyReport, apply_actions, reconcile
from bridge.mapping.common import attach_estimates, attach_payments
from bridge.model import Invoice, RenegotiationRequest
from bridge.plan import Action, ActionKind, Plan, RecordError, Warning, WarningCode
from bridge.policies.terms import Terms
from bridge.providers import ConnectorFactory, load_providers
from bridge.store import ESTIMATES, Store

log = logging.getLogger("bridge.sync")
PROGRESS_EVERY = 3.0  # seconds: how often a long apply logs how far it got
# Connections pulled (and applied) at once. Each keeps its own provider's limits: its session's limiter, shared
# per provider account (bridge.connectors.session), paces it whatever the others do; so a run takes about as long
# as its slowest connection instead of the sum of them all.
MAX_PARALLEL = 4

_T = TypeVar("_T")
_R = TypeVar("_R")


def _each(store: Store, items: Sequence[_T], work: Callable[[_T], _R]) -> list[_R]:
    """`work` on every item, up to MAX_PARALLEL at once (one at a time on a store that is a single connection);
    the results in the items' order, so the output does not depend on which connection finished first."""
    workers = min(len(items), MAX_PARALLEL) if store.shared_by_threads else 1
    if workers <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bridge-connection") as pool:
        return list(pool.map(work, items))


class Progress(Protocol):
    """Where a long sync reports how far it got (the CLI draws it; a server logs it)."""

    def phase(self, text: str) -> None:
        """A step of unknown length has started (e.g. pulling one connection)."""

    def actions(self, total: int) -> None:
        """Applying `total` actions starts."""

    def step(self, action: Action, outcome: str) -> None:
        """One action is done: applied, dropped, failed, in doubt or skipped."""


class Silent:
    """A Progress that says nothing."""

    def phase(self, text: str) -> None:
        """Nothing."""

    def actions(self, total: int) -> None:
        """Nothing."""

    def step(self, action: Action, outcome: str) -> None:
        """Nothing."""


Confirm = Callable[[Plan], bool]
"""Asked with the plan once it is evaluated and before anything is applied; False: apply nothing."""


def load_factories() -> tuple[dict[str, ConnectorFactory], dict[str, str]]:
    """Connector factories by provider name, from the installed provider descriptors (`bridge.providers`).

    A plugin that fails to load is reported, not fatal to the others. Each factory imports its
    connector (and the provider's SDK) only when called, so a broken connector fails its connections only.
    """
    descriptors, broken = load_providers()
    return {name: d.build_connector for name, d in descriptors.items()}, broken


@dataclass
class Runtime:
    """What a command needs: settings, the store, the token vault, and how to build connectors."""

    settings: Settings
    store: Store
    vault: TokenVault
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    factories: Mapping[str, ConnectorFactory] | None = None

    def select(self, names: Sequence[str] = ()) -> list[ConnectionSettings]:
        """The named connections (all when none are named); an unknown name is a usage error."""
        if not names:
            return list(self.settings.connections)
        return [self.settings.connection(n) for n in names]

    def connectors(self, selected: Iterable[ConnectionSettings]) -> tuple[dict[str, Connector], dict[str, str]]:
        """A connector per connection, and the connections whose connector could not be built (with why)."""
        factories, broken = (dict(self.factories), {}) if self.factories is not None else load_factories()
        built: dict[str, Connector] = {}
        failed: dict[str, str] = {}
        for conn in selected:
            factory = factories.get(conn.provider)
            if factory is None:
                failed[conn.name] = broken.get(conn.provider, f"no provider plugin installed for {conn.provider!r}")
                continue
            try:
                built[conn.name] = self._delivering(factory(conn, self.vault, self.env))
            except Exception as exc:  # one connection's surprise must not stop the others
                failed[conn.name] = describe(exc)
        return built, failed

    def _delivering(self, connector: Connector) -> Connector:
        """`connector`, with its smtp-channel messages sent through `[smtp]` (when there is one)."""
        smtp = self.settings.smtp
        if smtp is None:
            return connector
        from bridge.smtp import SmtpChannel, SmtpTransport

        channel = SmtpChannel(connector, SmtpTransport(smtp, self.env), self.settings.firm, self.locale_of)
        return channel

    def locale_of(self, action: Action) -> str:
        """The locale of the contract whose clause `action` cites (`contracts.NAME....`)."""
        parts = action.clause.split(".")
        name = parts[1] if len(parts) > 1 and parts[0] == "contracts" else ""
        for contract in self.settings.terms.contracts:
            if contract.name == name:
                return contract.locale
        return "en_US"


def today_for(terms: Terms, as_of: date | None) -> date | dict[str, date]:
    """`--as-of`, else today in each contract's own time zone."""
    if as_of is not None:
        return as_of
    days = {c.name: clock.today_in(c.timezone) for c in terms.contracts}
    return days or clock.today_in("UTC")


def days_by_zone(terms: Terms, as_of: date | None) -> dict[str, date]:
    """Today in each contract time zone (none with `as_of`: one date for all), for saying which day a plan is of."""
    if as_of is not None:
        return {}
    return {zone: clock.today_in(zone) for zone in sorted({c.timezone for c in terms.contracts})}


def _action_day(today: date | Mapping[str, date]) -> Callable[[Action], date]:
    def day(action: Action) -> date:
        if isinstance(today, date):
            return today
        contract = action.clause.split(".")[1] if action.clause.startswith("contracts.") else ""
        return today.get(contract, max(today.values()))

    return day


@dataclass
class ConnectionRun:
    """One connection's pull: counts, cost, and the error if it failed."""

    name: str
    provider: str
    invoices: int = 0
    payments: int = 0
    deleted: int = 0
    quarantined: int = 0
    full: bool = False
    error: str | None = None
    stats: CallStats = field(default_factory=CallStats)
    warnings: list[Warning] = field(default_factory=list)
    refused: bool = False  # the provider refused the credentials (even after a refresh): the link is dead


@dataclass
class SyncOutcome:
    """The plan (with applied/failed after a real run), each connection's pull, and what reconciliation settled."""

    plan: Plan
    runs: list[ConnectionRun]
    report: ApplyReport | None = None
    reconciled: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False  # the plan was shown and applying it declined: nothing was applied

    @property
    def exit_code(self) -> int:
        """0 ok; 3 partial (a connection, record or action failed while the rest completed); 1 nothing worked, or
        applying was declined; 130 stopped by a signal while applying (what was applied is recorded, the rest left
        for the next run)."""
        if self.cancelled:
            return 1
        if self.report and self.report.interrupted:
            return INTERRUPTED_EXIT
        failed_runs = [r for r in self.runs if r.error]
        if self.runs and len(failed_runs) == len(self.runs):
            return 1
        partial = failed_runs or self.plan.errors or (self.report and (self.report.failed or self.report.in_doubt))
        return 3 if partial else 0

    def stats(self) -> CallStats:
        """API cost over all connections."""
        total = CallStats()
        for run in self.runs:
            total.merge(run.stats)
        return total


def pull_connection(
    store: Store, connector: Connector, *, full: bool = False, estimates: bool = False
) -> ConnectionRun:
    """Pull one connection incrementally and save records and cursors in one transaction (with its estimates
    too when `estimates`: a contract checks invoices against them, docs/policy.md §2.1)."""
    run = ConnectionRun(connector.name, connector.provider)
    cursors = {}
    for stream in (*connector.streams, *((ESTIMATES,) if estimates else ())):
        cursor = store.cursor(connector.name, stream)
        if cursor is not None:
            cursors[stream] = cursor
    # Asked for only when wanted: a provider plugin that reads no estimates takes the call as before.
    more = {"estimates": True} if estimates else {}
    result = connector.pull(cursors, store.customers(connector.name), full=full, **more)
    deleted_invoices = list(result.deleted_invoices)
    deleted_payments = list(result.deleted_payments)
    if result.full:
        # A full read also tells what disappeared without a tombstone.
        seen = {inv.id for inv, _ in result.invoices} | {q.record_id for q in result.quarantined}
        deleted_invoices += [inv.id for inv in store.invoices(connector.name) if inv.id not in seen]
        seen_payments = {p.id for p, _ in result.payments}
        deleted_payments += [p.id for p in store.payments(connector.name) if p.id not in seen_payments]
        if estimates:
            seen_estimates = {e.id for e, _ in result.estimates} | set(result.deleted_estimates)
            seen_estimates |= {q.record_id for q in result.quarantined if q.stream == ESTIMATES}
            result.deleted_estimates += [e.id for e in store.estimates(connector.name) if e.id not in seen_estimates]
    store.save_pull(
        connector.name,
        invoices=result.invoices,
        payments=result.payments,
        customers=result.customers,
        deleted_invoices=deleted_invoices,
        deleted_payments=deleted_payments,
        cursors=result.cursors,
        quarantined=result.quarantined,
        estimates=result.estimates,
        deleted_estimates=result.deleted_estimates,
    )
    store.mark_synced(connector.name, clock.now_utc())
    run.invoices, run.payments = len(result.invoices), len(result.payments)
    run.deleted, run.quarantined, run.full = len(deleted_invoices), len(result.quarantined), result.full
    run.stats, run.warnings = connector.stats, list(result.warnings)
    return run


def cached_invoices(store: Store, names: Iterable[str]) -> list[Invoice]:
    """The read cache, with each invoice's payments attached."""
    invoices: list[Invoice] = []
    for name in names:
        found = attach_payments(store.invoices(name), store.payments(name))
        invoices += attach_estimates(found, store.estimates(name))
    return invoices


def build_plan(
    settings: Settings,
    store: Store,
    names: Sequence[str],
    today: date | dict[str, date],
    errors: Sequence[RecordError] = (),
    warnings: Sequence[Warning] = (),
    *,
    keep: bool = False,
) -> Plan:
    """Evaluate the contracts on the cached invoices of the named connections (plus what the pulls warned of).

    Should the evaluation fail, each connection is evaluated alone to find the one(s) it fails on: those are
    listed in the plan's errors and the plan is made for the others. `keep` (a dry run): the plan is kept, and
    the one kept last taken back when nothing it was made from changed (bridge.evaluations).
    """
    with collector.paused():  # the invoices and the plan are acyclic: see bridge.collector
        return _build_plan(settings, store, list(names), today, errors, warnings, keep)


def _build_plan(
    settings: Settings,
    store: Store,
    names: list[str],
    today: date | dict[str, date],
    errors: Sequence[RecordError],
    warnings: Sequence[Warning],
    keep: bool,
) -> Plan:
    failed: list[RecordError] = []
    try:
        return _evaluate(settings, store, names, today, errors, warnings, keep)
    except Exception:
        for name in list(names):
            try:
                _evaluate(settings, store, [name], today, (), (), False)
            except Exception as exc:
                names.remove(name)
                failed.append(RecordError(name, "*", f"evaluation failed: {describe(exc)}"))
    dropped = {e.connection for e in failed}
    warnings = [w for w in warnings if w.connection not in dropped]
    return _evaluate(settings, store, names, today, [*errors, *failed], warnings, False)


def _evaluate(
    settings: Settings,
    store: Store,
    names: Sequence[str],
    today: date | dict[str, date],
    errors: Sequence[RecordError],
    warnings: Sequence[Warning],
    keep: bool,
) -> Plan:
    quarantined = [RecordError(n, q.record_id, q.error) for n in names for q in store.quarantined(n)]
    history = store.history(names, PLANNING_HISTORY)
    requests = store.renegotiations(names)
    terms = settings.terms
    return evaluations.plan(store, names, terms, history, requests, today, [*errors, *quarantined], warnings, keep=keep)


def describe(exc: BaseException) -> str:
    """An exception as one line for the plan's errors: our errors by their message, anything else with its type
    (a RecursionError's or a KeyError's message alone says nothing)."""
    if isinstance(exc, BridgeError):
        text = str(exc) or type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def _pull_all(
    rt: Runtime, selected: list[ConnectionSettings], full: bool, progress: Progress, spent: dict[str, float]
) -> tuple[dict[str, Connector], list[ConnectionRun], list[RecordError]]:
    connectors, unavailable = rt.connectors(selected)
    estimates = rt.settings.terms.checks_estimates
    pulling = [c for c in selected if c.name not in unavailable]
    if pulling:
        progress.phase(f"pulling {', '.join(c.name for c in pulling)}")

    def pull(conn: ConnectionSettings) -> tuple[ConnectionRun, float]:
        if conn.name in unavailable:
            return ConnectionRun(conn.name, conn.provider, error=unavailable[conn.name]), 0.0
        log.info("%s: pulling from %s", conn.name, conn.base_url or conn.provider)
        began = clock.monotonic()
        try:
            with speaking_for(conn.name):
                run = pull_connection(rt.store, connectors[conn.name], full=full, estimates=estimates)
            log.info(
                "%s: pulled %d invoice(s), %d payment(s) in %.1f s (%d API calls)",
                conn.name,
                run.invoices,
                run.payments,
                clock.monotonic() - began,
                run.stats.calls,
            )
        except Exception as exc:  # anything, not only our errors: one provider's surprise stops only its connection
            stats = connectors[conn.name].stats
            refused = isinstance(exc, AuthError)
            run = ConnectionRun(conn.name, conn.provider, error=describe(exc), stats=stats, refused=refused)
            log.warning("%s: pull failed: %s", conn.name, describe(exc))
        return run, clock.monotonic() - began

    runs: list[ConnectionRun] = []
    for conn, (run, seconds) in zip(selected, _each(rt.store, selected, pull), strict=True):
        runs.append(run)
        if conn.name not in unavailable:
            spent[conn.name] = seconds
    errors = [RecordError(run.name, "*", f"pull failed: {run.error}") for run in runs if run.error]
    return connectors, runs, errors


def sync(
    rt: Runtime,
    names: Sequence[str] = (),
    *,
    dry_run: bool,
    as_of: date | None = None,
    full: bool = False,
    progress: Progress | None = None,
    stop: StopOnSignal | None = None,
    confirm: Confirm | None = None,
) -> SyncOutcome:
    """Pull every (or the named) connection, evaluate, and unless `dry_run` apply the plan exactly once.

    `stop`, armed only while applying, ends the run after the action in flight when a signal arrives.
    `confirm` (a real run) is asked with the evaluated plan, under the run lock, before anything is applied:
    False leaves it all unapplied (the outcome is `cancelled`). Not asked when there is nothing to apply.
    """
    progress = progress or Silent()
    selected = rt.select(names)
    if dry_run:
        return _sync(rt, selected, dry_run=True, as_of=as_of, full=full, progress=progress)
    # One applying run per connection: a second one waits here, then plans from what the first left.
    with rt.store.run_lock([c.name for c in selected]):
        return _sync(rt, selected, dry_run=False, as_of=as_of, full=full, progress=progress, stop=stop, confirm=confirm)


def _sync(
    rt: Runtime,
    selected: list[ConnectionSettings],
    *,
    dry_run: bool,
    as_of: date | None,
    full: bool,
    progress: Progress,
    stop: StopOnSignal | None = None,
    confirm: Confirm | None = None,
) -> SyncOutcome:
    today = today_for(rt.settings.terms, as_of)
    spent: dict[str, float] = {}  # seconds each connection's pull took: taken off its sync deadline
    connectors, runs, errors = _pull_all(rt, selected, full, progress, spent)
    reconciled: list[tuple[str, str]] = []
    if not dry_run:
        day = today if isinstance(today, date) else max(today.values())
        healthy = {n: c for n, c in connectors.items() if not any(r.name == n and r.error for r in runs)}
        reconciled = [(entry.key, outcome) for entry, outcome in reconcile(rt.store, healthy, day)]
    pulled = [r.name for r in runs if not r.error]
    warnings = [w for r in runs for w in r.warnings]
    plan = build_plan(rt.settings, rt.store, pulled, today, errors, warnings, keep=dry_run)
    if dry_run:
        return SyncOutcome(plan, runs, reconciled=reconciled)
    if confirm is not None and plan.actions and not confirm(plan):
        return SyncOutcome(plan, runs, reconciled=reconciled, cancelled=True)
    report = _apply(rt, plan.actions, connectors, pulled, today, progress, stop, _deadlines(selected, spent))
    return SyncOutcome(with_report(plan, report), runs, report, reconciled)


def _apply(
    rt: Runtime,
    actions: Sequence[Action],
    connectors: Mapping[str, Connector],
    pulled: Sequence[str],
    today: date | dict[str, date],
    progress: Progress,
    stop: StopOnSignal | None,
    deadlines: Mapping[str, tuple[float, str]],
) -> ApplyReport:
    """Apply `actions` exactly once, the connections side by side (each at its own provider's pace), logging
    each connection's progress, with the stop signal armed (in this thread; every connection asks it)."""
    progress.actions(len(actions))
    applying = _ApplyLog(actions, progress)
    customers = {n: rt.store.customers(n) for n in pulled}
    groups: dict[str, list[Action]] = {}
    for action in actions:
        groups.setdefault(action.connection, []).append(action)

    def apply_some(some: Sequence[Action]) -> ApplyReport:
        try:
            return apply_actions(
                some,
                rt.store,
                connectors,
                customers,
                _action_day(today),
                applying.step,
                stop,
                deadlines=deadlines,
                starting=applying.starting,
            )
        finally:
            applying.done()

    with armed(stop):
        if len(groups) <= 1:
            return apply_some(actions)
        return merged([*_each(rt.store, [groups[n] for n in sorted(groups)], apply_some)])


def merged(reports: Sequence[ApplyReport]) -> ApplyReport:
    """One report of several connections' (in the order given)."""
    out = ApplyReport()
    for report in reports:
        for part in ("applied", "failed", "dropped", "in_doubt", "skipped", "deferred", "not_started"):
            getattr(out, part).extend(getattr(report, part))
        out.broken.update(report.broken)
        out.interrupted = out.interrupted or report.interrupted
    return out


class _ApplyLog:
    """Logs each connection's applying: its start (how many actions) and its end (what became of them, how long);
    the wire names that connection in its lines meanwhile. Connections may be applied on threads of their own."""

    def __init__(self, actions: Sequence[Action], progress: Progress) -> None:
        self._counts = Counter(a.connection for a in actions)
        self._progress = progress
        self._lock = threading.Lock()
        self._open: dict[str, tuple[float, Counter[str]]] = {}  # connection -> (began, outcomes so far)
        self._said: dict[str, float] = {}
        self._thread = threading.local()  # the connection this thread is applying

    def starting(self, connection: str) -> None:
        """The first action of `connection` is next (on this thread)."""
        self.done()
        now = clock.monotonic()
        with self._lock:
            self._open[connection] = (now, Counter())
            self._said[connection] = now
        self._thread.current = connection
        set_speaking_for(connection)
        log.info("%s: applying %d action(s)", connection, self._counts[connection])

    def step(self, action: Action, outcome: str) -> None:
        """One action done (passed on to the progress display; logged every few seconds: how far it got)."""
        self._progress.step(action, outcome)
        name = action.connection
        now = clock.monotonic()
        with self._lock:
            state = self._open.get(name)
            if state is None:
                return
            state[1][outcome] += 1
            if now - self._said[name] < PROGRESS_EVERY:
                return
            self._said[name] = now
            done = sum(state[1].values())
        log.info("%s: %d of %d action(s) done", name, done, self._counts[name])

    def done(self) -> None:
        """This thread's connection is done applying: say what became of its actions and how long it took."""
        current: str | None = getattr(self._thread, "current", None)
        if current is None:
            return
        self._thread.current = None
        with self._lock:
            began, outcomes = self._open.pop(current)
        said = ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items())) or "nothing done"
        log.info("%s: applying done in %.1f s: %s", current, clock.monotonic() - began, said)
        set_speaking_for(None)


def _deadlines(selected: Iterable[ConnectionSettings], spent: Mapping[str, float]) -> dict[str, tuple[float, str]]:
    """Per connection: the seconds left of its sync deadline for applying (what its pull `spent` is taken off),
    and how to say it ran past it."""
    return {
        c.name: (
            c.sync_deadline_seconds - spent.get(c.name, 0.0),
            f"the sync of {c.name!r} ran past sync_deadline_seconds = {c.sync_deadline_seconds}",
        )
        for c in selected
    }


def with_report(plan: Plan, report: ApplyReport) -> Plan:
    """The plan with what happened: `applied` and `failed` (docs/interfaces.md), plus `dropped` and `in_doubt`."""
    failed: list[dict[str, Any]] = [*report.failed, *({**d, "error": d["reason"]} for d in report.dropped)]
    failed += [{**d, "error": f"outcome unknown, not sent again: {d['error']}"} for d in report.in_doubt]
    deferred = [Warning(d["connection"], d["invoice"], WarningCode.DEFERRED, d["reason"]) for d in report.deferred]
    plan = with_warnings(plan, deferred) if deferred else plan
    broken = [RecordError(name, "*", f"apply failed: {why}") for name, why in sorted(report.broken.items())]
    # Stopped by a signal: what was not started says so, per connection, in the plan file too.
    waiting = Counter(d["connection"] for d in report.not_started)
    broken += [
        RecordError(name, "*", f"interrupted: {count} planned actions not started; the next run does them")
        for name, count in sorted(waiting.items())
    ]
    if broken:
        plan = Plan.build(plan.as_of, plan.actions, plan.skipped, plan.warnings, [*plan.errors, *broken])
    # A new Plan, not dataclasses.replace: a dry run's kept plan (bridge.evaluations.Kept) is made another way.
    return Plan(
        plan.as_of, plan.actions, plan.skipped, plan.warnings, plan.errors, tuple(report.applied), tuple(failed)
    )


def apply_plan(
    rt: Runtime,
    plan: Plan,
    progress: Progress | None = None,
    *,
    as_of: date | None = None,
    stop: StopOnSignal | None = None,
    confirm: Confirm | None = None,
) -> SyncOutcome:
    """Carry out a reviewed plan, but only what today's evaluation of the same books still calls for.

    `confirm` is asked with what would be applied (the plan's actions today's evaluation still calls for)
    before anything is applied or dropped; False leaves everything as it was (the outcome is `cancelled`).

    The connections are pulled again and the contracts re-evaluated (as of today, or `as_of` on emulators);
    an action of the plan is applied only when the fresh evaluation produces it with the same amount,
    recipient, message and clause. Any other is dropped as `plan_mismatch` with the difference named:
    an edited or stale plan file can never write what the contract and the books no longer call for.
    """
    names = sorted({a.connection for a in plan.actions})
    unknown = [n for n in names if n not in {c.name for c in rt.settings.connections}]
    if unknown:
        raise ConfigError(f"the plan names connection(s) not in the config: {', '.join(unknown)}")
    selected = rt.select(names)
    with rt.store.run_lock(names):
        return _apply_plan(rt, plan, selected, progress or Silent(), as_of, stop, confirm)


# What must be the same in a reviewed plan and in today's evaluation for an action to be applied.
_COMPARED = (
    "kind", "clause", "amount", "form", "to", "cc", "bcc", "channel", "sends", "balance", "subject", "body",
    "new_due_date",
)  # fmt: skip


def plan_mismatch(planned: Action, fresh: Action | None, why_not: str | None = None) -> str | None:
    """How a reviewed plan's action differs from what today's evaluation calls for; None when it does not.

    `why_not` is today's reason for not calling for it (a skip's detail), when there is one.
    """
    if fresh is None:
        because = f": {why_not}" if why_not else ""
        return f"plan_mismatch: today's evaluation of the contract and the books calls for no such action{because}"
    differences = [
        f"{name} {_shown(getattr(planned, name))} in the plan, {_shown(getattr(fresh, name))} by the contract today"
        for name in _COMPARED
        if getattr(planned, name) != getattr(fresh, name)
    ]
    return f"plan_mismatch: {'; '.join(differences)}" if differences else None


def _shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, str) and not isinstance(value, ActionKind):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


def _apply_plan(
    rt: Runtime,
    plan: Plan,
    selected: list[ConnectionSettings],
    progress: Progress,
    as_of: date | None,
    stop: StopOnSignal | None,
    confirm: Confirm | None = None,
) -> SyncOutcome:
    spent: dict[str, float] = {}  # seconds each connection's pull took: taken off its sync deadline
    connectors, runs, errors = _pull_all(rt, selected, False, progress, spent)
    healthy = {n: c for n, c in connectors.items() if not any(r.name == n and r.error for r in runs)}
    today = today_for(rt.settings.terms, as_of)
    day = today if isinstance(today, date) else max(today.values())
    reconciled = [(e.key, o) for e, o in reconcile(rt.store, healthy, day)]
    pulled = [r.name for r in runs if not r.error]
    today_plan = build_plan(rt.settings, rt.store, pulled, today, errors)
    fresh = {a.key: a for a in today_plan.actions}
    # Why today's evaluation leaves an action out: its own skip, else its invoice's (paid, void, on hold...).
    why_not = {(s.connection, s.invoice, s.key): s.detail for s in today_plan.skipped}
    approved: list[Action] = []
    mismatched: list[tuple[Action, str]] = []
    report = ApplyReport()
    for action in plan.actions:
        if action.connection not in healthy:
            report.failed.append({"key": action.key, "error": f"connection {action.connection!r} could not be read"})
            continue
        entry = rt.store.ledger_get(action.key)
        if entry is not None and entry.state in PLANNING_HISTORY:
            report.skipped.append({"key": action.key, "state": entry.state})
            continue
        skip = why_not.get((action.connection, action.invoice.number, action.key)) or why_not.get(
            (action.connection, action.invoice.number, None)
        )
        reason = plan_mismatch(action, fresh.get(action.key), skip)
        if reason is None:
            approved.append(fresh[action.key])
            continue
        mismatched.append((action, reason))
    if confirm is not None and approved:
        shown = Plan.build(today_plan.as_of, approved, (), today_plan.warnings, today_plan.errors)
        if not confirm(shown):
            return SyncOutcome(plan, runs, None, reconciled, cancelled=True)
    for action, reason in mismatched:
        rt.store.ledger_drop(action, reason)
        report.dropped.append({"key": action.key, "reason": reason})
        progress.step(action, "dropped")
    applied = _apply(rt, approved, healthy, pulled, today, progress, stop, _deadlines(selected, spent))
    report = merged([report, applied])
    return SyncOutcome(with_report(plan, report), runs, report, reconciled)


@dataclass
class Decision:
    """A renegotiation request decided: the record, the action it calls for, and whether that was applied."""

    record: RenegotiationRequest
    action: Action
    plan: Plan
    dry_run: bool
    report: ApplyReport | None = None
    cancelled: bool = False  # shown, and writing it back declined: nothing recorded or written

    @property
    def exit_code(self) -> int:
        """0 when decided (and written back unless a dry run); 3 when the write-back failed; 130 when a signal came;
        1 when writing it back was declined."""
        if self.cancelled:
            return 1
        if self.report and self.report.interrupted:
            return INTERRUPTED_EXIT
        return 3 if self.report and (self.report.failed or self.report.in_doubt) else 0


def renegotiate(
    rt: Runtime,
    connection: str,
    invoice_number: str,
    new_due: date,
    *,
    note: str = "",
    requested_by: str = "",
    as_of: date | None = None,
    dry_run: bool = False,
    stop: StopOnSignal | None = None,
    confirm: Callable[[Decision], bool] | None = None,
) -> Decision:
    """Record a client's request to move a due date, decide it at once, and (unless `dry_run`) write it back.

    `confirm` is asked with the decision before anything is recorded or written back; False: nothing is
    (the decision comes back `cancelled`)."""
    from bridge.policies.evaluate import contract_for, decide_request

    conn = rt.settings.connection(connection)
    connectors, unavailable = rt.connectors([conn])
    if connection in unavailable:
        raise BridgeError(f"connection {connection!r} cannot be used: {unavailable[connection]}")
    connector = connectors[connection]
    pull_connection(rt.store, connector)  # the decision needs the invoice as it is now
    invoice = next((i for i in cached_invoices(rt.store, [connection]) if i.number == invoice_number), None)
    if invoice is None:
        raise ConfigError(f"--invoice: no invoice numbered {invoice_number!r} in connection {connection!r}")
    today = today_for(rt.settings.terms, as_of)
    contract = contract_for(rt.settings.terms, invoice)
    day = today if isinstance(today, date) else today.get(contract.name if contract else "", max(today.values()))
    request = RenegotiationRequest(
        connection=connection,
        invoice_id=invoice.id,
        invoice_number=invoice.number,
        requested_on=day,
        new_due_date=new_due,
        note=note,
        requested_by=requested_by,
    )
    try:
        record, action = decide_request(request, invoice, rt.settings.terms, rt.store.renegotiations([connection]))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    plan = Plan.build(day, [action])
    if dry_run:
        return Decision(record, action, plan, dry_run=True)
    if confirm is not None and not confirm(Decision(record, action, plan, dry_run=False)):
        return Decision(record, action, plan, dry_run=False, cancelled=True)
    with rt.store.run_lock([connection]):
        rt.store.add_renegotiation(record)
        customers = {connection: rt.store.customers(connection)}
        with armed(stop):
            report = apply_actions([action], rt.store, connectors, customers, lambda a: day, stop=stop)
    return Decision(record, action, with_report(plan, report), dry_run=False, report=report)
