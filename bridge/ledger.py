"""Exactly-once apply (docs/architecture.md, "Exactly once").

1. Before a call, the ledger records the action key as `pending` (committed); a call writing the fee lines
   of several invoices (`write_batch`) records each action it carries.
2. The call carries an idempotency key derived from the action key (or from those it carries).
3. After it, the ledger records `applied` with the provider's response id.
4. A `pending` entry found at the next run is reconciled against the provider:
   the fee line or new due date is there -> `applied`; not there -> `failed`, and
   the next plan carries it again (same key, same idempotency key). A reminder
   whose outcome cannot be known is `in_doubt`: reported, never sent twice.

Before any write, the invoice is re-read; an action whose premise changed (paid,
voided, due date moved, amount changed) is dropped with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import groupby
from typing import Any

from bridge import clock, killpoints
from bridge.connectors.base import Applied, Connector, Found
from bridge.errors import BridgeError, ConflictError, QuotaExhausted
from bridge.model import Invoice
from bridge.plan import Action, ActionKind
from bridge.store import BLOCKING_STATES, HISTORY_STATES, LedgerEntry, Store

# Within one invoice: money first, then the due date, then the e-mail (so the provider's
# e-mailed invoice already shows the fee).
_ORDER = {
    ActionKind.LATE_FEE: 0,
    ActionKind.UPDATE_DUE_DATE: 1,
    ActionKind.REMINDER: 2,
    ActionKind.RENEGOTIATION_REFUSED: 3,
    ActionKind.FORGIVE_FEE: 4,
}
# Actions whose whole effect is a message to the client: an unknown outcome is `in_doubt`, never tried again.
_MESSAGES = (ActionKind.REMINDER, ActionKind.RENEGOTIATION_REFUSED)
# What a new plan must treat as carried out: done (applied, in doubt, or a fee charged then forgiven), or pending
# until reconciliation settles it.
PLANNING_HISTORY = (*HISTORY_STATES, "pending")


def premise_changed(action: Action, fresh: Invoice | None, added: Decimal) -> str | None:
    """Why the action no longer holds on the invoice as it is now; None when it still does.

    `added` is what this run already added to the invoice (fee lines), so our own
    writes are not mistaken for someone else's edit.
    """
    ref = action.invoice
    if fresh is None:
        return "the invoice no longer exists at the provider"
    if not fresh.status.is_open:
        return f"the invoice is now {fresh.status.value}"
    if fresh.disputed:
        return "the invoice is now disputed or on hold"
    if fresh.due_date != ref.due_date:
        return f"the due date moved from {ref.due_date} to {fresh.due_date}"
    if fresh.amount_due - added != ref.amount_due:
        return f"the amount due changed from {ref.amount_due} to {fresh.amount_due - added}"
    if fresh.total - added != ref.total:
        return f"the invoice total changed from {ref.total} to {fresh.total - added}"
    return stated_balance_changed(action, added)


def stated_balance_changed(action: Action, added: Decimal) -> str | None:
    """Why a reminder no longer states the right balance: it was planned after fees this run did not all apply."""
    if action.kind is not ActionKind.REMINDER or action.balance is None:
        return None
    owed = action.invoice.amount_due + added
    if owed == action.balance:
        return None
    return (
        f"plan_mismatch: the reminder states {action.balance} but the invoice owes {owed} after this run "
        "(a late fee it counted on was not applied as a line); the next run plans it with the right balance"
    )


@dataclass
class ApplyReport:
    """What happened to each action of a plan."""

    applied: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    in_doubt: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    deferred: list[dict[str, Any]] = field(default_factory=list)  # left for the next run (provider's daily limit)
    not_started: list[dict[str, Any]] = field(default_factory=list)  # left for the next run (stopped by a signal)
    interrupted: bool = False  # a stop was asked for (SIGINT/SIGTERM) while applying
    # Connections that failed in an unexpected way while applying (why): the rest of their actions waits for
    # the next run; the other connections go on.
    broken: dict[str, str] = field(default_factory=dict)


def _outcome_unknown(exc: BaseException) -> bool:
    """The call may have reached the provider: a 5xx, a timeout, a dropped connection, or anything unexpected
    (an answer the bridge could not read may have followed a write that was done)."""
    return exc.outcome_unknown if isinstance(exc, BridgeError) else True


def _unexpected(exc: BaseException) -> bool:
    return not isinstance(exc, BridgeError)


def _describe(exc: BaseException) -> str:
    if not _unexpected(exc):
        return str(exc) or type(exc).__name__
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def apply_actions(
    actions: Iterable[Action],
    store: Store,
    connectors: Mapping[str, Connector],
    customers: Mapping[str, Mapping[str, Mapping[str, Any]]],
    today: Callable[[Action], date],
    progress: Callable[[Action, str], None] = lambda action, outcome: None,
    stop: Callable[[], bool] | None = None,
    *,
    deadlines: Mapping[str, tuple[float, str]] | None = None,
    starting: Callable[[str], None] | None = None,
) -> ApplyReport:
    """Carry out actions exactly once, re-checking each invoice first.

    `starting` is told each connection's name before its first action (they are applied one after another).
    Where a connector writes several invoices in one call (`write_batch`), the line fees of that many invoices
    go together, each still keyed and recorded on its own (`_units`).

    `stop` is asked before each action or group (never between an action's `pending` write and the provider's
    answer): once it says True, no new action starts and the rest is reported `not_started`.
    `deadlines`: per connection, the seconds its actions may take in all, counted from its first action (the
    connections are applied one after another: one's slowness does not eat another's time), and how to say
    it ran out; no action of it starts after that, the rest waits for the next run (a call under way is
    bounded by its own timeout and the retry budget).
    """
    ordered = sorted(actions, key=lambda a: (a.connection, a.invoice.id, _ORDER[a.kind], a.key))
    applier = _Applier(store, connectors, customers, today, progress, deadlines or {})
    units = list(_units(ordered, connectors))
    current: str | None = None
    for index, (together, unit) in enumerate(units):
        if stop is not None and stop():
            applier.report.not_started = [
                {"key": a.key, "connection": a.connection, "invoice": a.invoice.number}
                for _, rest in units[index:]
                for a in rest
            ]
            break
        if starting is not None and unit[0].connection != current:
            current = unit[0].connection
            starting(current)
        if together:
            applier.apply_together(unit)
        else:
            applier.apply(unit[0])
    applier.flush(sorted({a.connection for a in ordered} & set(connectors)))
    applier.report.interrupted = stop is not None and stop()
    return applier.report


def _joins(action: Action) -> bool:
    """A fee written as a line: what a connector with `write_batch` writes on several invoices in one call."""
    return action.kind is ActionKind.LATE_FEE and action.form != "invoice"


def _units(ordered: list[Action], connectors: Mapping[str, Connector]) -> Iterator[tuple[bool, list[Action]]]:
    """The actions in the order they are carried out, as units: (True, the line fees of up to `write_batch`
    invoices of one connection, written together) or (False, one action). Each invoice's other actions follow
    its fees (a due date or a reminder after the fee, as `_ORDER` has it), after the whole group."""
    for name, of_connection in groupby(ordered, key=lambda a: a.connection):
        size = getattr(connectors.get(name), "write_batch", 1)
        if size <= 1:
            yield from ((False, [a]) for a in of_connection)
            continue
        invoices = [list(actions) for _, actions in groupby(of_connection, key=lambda a: a.invoice.id)]
        for start in range(0, len(invoices), size):
            chunk = [a for actions in invoices[start : start + size] for a in actions]
            if together := [a for a in chunk if _joins(a)]:
                yield True, together
            yield from ((False, [a]) for a in chunk if not _joins(a))


def apply_one(
    action: Action, store: Store, connector: Connector, target: Mapping[str, Any], today: date
) -> ApplyReport:
    """Write one action that no plan holds (`bridge forgive`) exactly once, as `apply_actions` writes each:
    `pending` first, then the call (on `target`, the provider's record as just read), then what came of it.
    The caller has checked what the action stands on; there is no premise re-check here."""
    applier = _Applier(store, {action.connection: connector}, {}, lambda a: today, lambda a, o: None, {})
    applier._write(action, connector, target)
    applier.flush([action.connection])
    return applier.report


def _read(
    connector: Connector, invoice_ids: list[str], customers: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Found | Exception]:
    """The invoices as the provider has them now: one `read_invoice`, or `read_invoices` for several."""
    if len(invoice_ids) == 1:
        return {invoice_ids[0]: connector.read_invoice(invoice_ids[0], customers)}
    return connector.read_invoices(invoice_ids, customers)


class _Applier:
    """One apply run: what it did so far (the report), and what it learnt while writing (fees added to each
    invoice, the provider's answer for an invoice just written, connections out of quota or stopped)."""

    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, Connector],
        customers: Mapping[str, Mapping[str, Mapping[str, Any]]],
        today: Callable[[Action], date],
        progress: Callable[[Action, str], None],
        deadlines: Mapping[str, tuple[float, str]],
    ) -> None:
        self.store, self.connectors, self.customers = store, connectors, customers
        self.today, self.progress, self.deadlines = today, progress, deadlines
        self.report = ApplyReport()
        self.added: dict[tuple[str, str], Decimal] = defaultdict(Decimal)  # line fees this run added, per invoice
        self.just_written: dict[tuple[str, str], Mapping[str, Any]] = {}
        self.quota_out: dict[str, str] = {}  # connections whose daily call limit is (nearly) used up, and why
        self.first_action: dict[str, float] = {}  # when each connection's first action started (monotonic)

    def apply(self, action: Action) -> None:
        """One action: skipped, deferred, dropped, recorded, or written at the provider exactly once."""
        if self._held_back(action) or self._already_taken(action):
            return
        connector = self.connectors.get(action.connection)
        if connector is None:
            self._fail(action, f"connection {action.connection!r} is not available")
            return
        if action.kind is ActionKind.RENEGOTIATION_REFUSED and action.sends == "contract_text":
            # Nothing is written at the provider, but the answer is sent (the SMTP channel): exactly once.
            self._write(action, connector, {})
            return
        if action.kind is ActionKind.RENEGOTIATION_REFUSED:
            # Nothing is written at the provider: the refusal is recorded and its message handed over.
            self.store.ledger_begin(action)
            self.store.ledger_finish(action.key, "applied", response_id="recorded", applied_on=self.today(action))
            self.report.applied.append({"key": action.key, "response_id": "recorded", "form": None})
            self.progress(action, "recorded")
            return
        for checked, raw in self._premises([action], connector):
            self._write(checked, connector, raw)

    def apply_together(self, actions: list[Action]) -> None:
        """Line fees on several invoices of one connection: their invoices re-read together, each action checked
        as `apply` checks it, then every one `pending` and one call for them all (`Connector.apply_together`), and
        what came of each."""
        connector = self.connectors.get(actions[0].connection)
        wanted = [a for a in actions if not (self._held_back(a) or self._already_taken(a))]
        if connector is None:
            for action in wanted:
                self._fail(action, f"connection {action.connection!r} is not available")
            return
        checked = dict((a.key, raw) for a, raw in self._premises(wanted, connector))
        if checked:
            together = connector.apply_together
            self._write_all(
                [a for a in wanted if a.key in checked], lambda begun: together([(a, checked[a.key]) for a in begun])
            )

    def _held_back(self, action: Action) -> bool:
        """Out of quota, or its connection stopped (past its deadline, or broken): it waits for the next run."""
        name = action.connection
        if name in self.quota_out:
            self._defer(action, self.quota_out[name])
            return True
        limit = self.deadlines.get(name)
        if limit is not None and name not in self.report.broken:
            began = self.first_action.setdefault(name, clock.monotonic())
            if clock.monotonic() - began >= limit[0]:
                self.report.broken[name] = limit[1]
        if name in self.report.broken:
            self._fail(
                action,
                f"not attempted: connection {name!r} stopped in this run ({self.report.broken[name]}); "
                "planned again next run",
            )
            return True
        return False

    def _already_taken(self, action: Action) -> bool:
        entry = self.store.ledger_get(action.key)
        if entry is not None and entry.state in BLOCKING_STATES:
            self.report.skipped.append({"key": action.key, "state": entry.state})
            self.progress(action, f"already {entry.state}")
            return True
        return False

    def _premises(self, actions: list[Action], connector: Connector) -> list[tuple[Action, Mapping[str, Any]]]:
        """Each action that still holds on its invoice as the provider has it now, with that invoice; the others
        dropped (their premise changed), deferred or failed (the invoice could not be re-read). The invoices not
        just written are read again, together where the connector can (`read_invoices`)."""
        unread = list(
            dict.fromkeys(a.invoice.id for a in actions if (a.connection, a.invoice.id) not in self.just_written)
        )
        try:
            # Re-read just before writing: the plan may be old, the invoice may have changed.
            fresh = _read(connector, unread, self.customers.get(actions[0].connection, {})) if unread else {}
        except QuotaExhausted as exc:
            for action in actions:
                self._defer(action, f"{exc}; deferred to the next run")
            return []
        except Exception as exc:  # anything: only this connection stops
            for action in actions:
                self._fail(action, f"could not re-read the invoice: {_describe(exc)}")
            if _unexpected(exc):
                self._broke(actions[0], exc)
            return []
        checked: list[tuple[Action, Mapping[str, Any]]] = []
        for action in actions:
            invoice_key = (action.connection, action.invoice.id)
            written = self.just_written.get(invoice_key)
            if written is not None:
                # We wrote this invoice moments ago and hold what the provider answered: its premise was
                # checked then, and the answer carries the current concurrency token.
                raw: Mapping[str, Any] | None = written
                reason = stated_balance_changed(action, self.added[invoice_key])
            else:
                found = fresh.get(action.invoice.id)
                if isinstance(found, Exception):
                    self._fail(action, f"could not re-read the invoice: {_describe(found)}")
                    continue
                raw = found[1] if found else None
                reason = premise_changed(action, found[0] if found else None, self.added[invoice_key])
            if reason is not None:
                self._drop(action, reason)
                continue
            assert raw is not None
            checked.append((action, raw))
        return checked

    def _write(self, action: Action, connector: Connector, raw: Mapping[str, Any]) -> None:
        """One action written on its own (`_write_all`)."""
        self._write_all([action], lambda begun: [connector.apply(action, raw)])

    def _write_all(self, actions: list[Action], call: Callable[[list[Action]], list[Applied | Exception]]) -> None:
        """`pending` first (each action), then the one call for all of them, then what came of each: applied, in
        doubt, left pending, or failed. `call(begun)` answers each action begun, in order (an exception for one
        refused alone); when it raises, that is the answer of every one (a lost answer leaves them all pending)."""
        begun: list[Action] = []
        for action in actions:
            try:
                self.store.ledger_begin(action)
            except ConflictError as exc:  # another process got there first
                self._taken(action, exc)
                continue
            begun.append(action)
            killpoints.reached("ledger-pending")  # recorded as pending (this one and those before), nothing sent yet
        if not begun:
            return
        results: list[Applied | Exception]
        try:
            results = call(begun)
        except Exception as exc:  # anything (not KeyboardInterrupt): recorded, and only this connection stops
            results = [exc] * len(begun)
        for action, result in zip(begun, results, strict=True):
            if not isinstance(result, Exception):
                killpoints.reached("provider-answered")  # done at the provider, not yet recorded
            if isinstance(result, QuotaExhausted):
                # Nothing reached the provider: the entry is released and the next run plans the action again.
                self.store.ledger_finish(action.key, "dropped", error=f"deferred: {result}")
                self._defer(action, f"{result}; deferred to the next run")
            elif isinstance(result, Exception):
                self._write_failed(action, result)
            else:
                self._applied(action, result)

    def _write_failed(self, action: Action, exc: Exception) -> None:
        unknown, why = _outcome_unknown(exc), _describe(exc)
        if action.kind in _MESSAGES and unknown:
            self.store.ledger_finish(action.key, "in_doubt", error=why, applied_on=self.today(action))
            self.report.in_doubt.append({"key": action.key, "error": why})
            self.progress(action, "in doubt")
        elif unknown:
            # Left pending, exactly as if the process had died here: the next run reconciles it
            # from the invoice itself (fee line there or not) and retries with the same key if not.
            self.report.failed.append({"key": action.key, "error": f"{why}; outcome unknown, reconciled next run"})
            self.progress(action, "pending")
        else:
            self.store.ledger_finish(action.key, "failed", error=why)
            self._fail(action, why)
        if _unexpected(exc):
            self._broke(action, exc)

    def _applied(self, action: Action, result: Applied) -> None:
        self.store.ledger_finish(
            action.key, "applied", response_id=result.response_id, form=result.form, applied_on=self.today(action)
        )
        invoice_key = (action.connection, action.invoice.id)
        if action.kind is ActionKind.LATE_FEE and result.form == "line" and action.amount is not None:
            self.added[invoice_key] += action.amount
        if result.invoice is not None:
            self.just_written[invoice_key] = result.invoice
        else:
            self.just_written.pop(invoice_key, None)
        self.report.applied.append({"key": action.key, "response_id": result.response_id, "form": result.form})
        self.progress(action, "applied")

    def flush(self, names: Iterable[str]) -> None:
        """Send what each connector batched; what was applied is reported whatever a flush says."""
        for name in names:
            try:
                self.connectors[name].flush()
            except Exception as exc:
                self.report.broken.setdefault(name, f"flush: {_describe(exc)}")

    def _drop(self, action: Action, reason: str) -> None:
        try:
            self.store.ledger_drop(action, reason)
        except ConflictError as exc:  # another run carried it out meanwhile: its premise changed for that
            self._taken(action, exc)
            return
        self.report.dropped.append({"key": action.key, "reason": reason})
        self.progress(action, "dropped")

    def _taken(self, action: Action, exc: ConflictError) -> None:
        self.report.skipped.append({"key": action.key, "state": "taken", "detail": str(exc)})
        self.progress(action, "skipped")

    def _defer(self, action: Action, reason: str) -> None:
        self.quota_out[action.connection] = reason
        self.report.deferred.append(
            {"key": action.key, "connection": action.connection, "invoice": action.invoice.number, "reason": reason}
        )
        self.progress(action, "deferred")

    def _fail(self, action: Action, error: str) -> None:
        self.report.failed.append({"key": action.key, "error": error})
        self.progress(action, "failed")

    def _broke(self, action: Action, exc: BaseException) -> None:
        self.report.broken[action.connection] = f"{action.key}: {_describe(exc)}"


def reconcile(store: Store, connectors: Mapping[str, Connector], today: date) -> list[tuple[LedgerEntry, str]]:
    """Settle every `pending` entry left by a run that stopped between its ledger write and its answer."""
    settled: list[tuple[LedgerEntry, str]] = []
    failing: set[str] = set()  # connections whose provider could not be asked: their entries wait
    for entry in store.ledger(states=("pending",)):
        connector = connectors.get(entry.connection)
        if connector is None or entry.connection in failing:
            continue
        action = entry.action()
        try:
            evidence = connector.evidence(action, entry.updated_at.isoformat())
        except Exception as exc:  # left pending for the next run; the other connections go on
            failing.add(entry.connection)
            settled.append((entry, f"not reconciled ({_describe(exc)}): left pending for the next run"))
            continue
        if evidence.found == "applied":
            store.ledger_finish(
                entry.key,
                "applied",
                response_id=evidence.response_id,
                form=evidence.form or action.form,
                applied_on=today,
            )
            settled.append((entry, f"applied ({evidence.detail})"))
        elif evidence.found == "absent" and action.kind not in _MESSAGES:
            store.ledger_finish(
                entry.key, "failed", error=f"not found at the provider ({evidence.detail}); retried next"
            )
            settled.append((entry, "absent: will be retried with the same key"))
        else:
            store.ledger_finish(entry.key, "in_doubt", error=evidence.detail or "outcome unknown", applied_on=today)
            settled.append((entry, f"in doubt ({evidence.detail}): not sent again"))
    return settled
