"""`bridge forgive ACTION_KEY`: take back a late fee the bridge charged (docs/interfaces.md, docs/architecture.md).

    result = forgive(rt, "late_fee:acme-qbo:130:2", note="good client", by="alice", all_fees=False)

The fee's line comes off its invoice (or its separate fee invoice is voided) at the provider, exactly once. Taking
it back is an action of its own, keyed `forgive:{connection}:{invoice}:{k}` after the fee
`late_fee:{connection}:{invoice}:{k}`: it is written `pending` in the ledger before the provider is called and
`applied` after (`bridge.ledger.apply_one`, the same write as every planned action's). A run that stopped in
between is settled from what the provider shows (the line on the invoice or not, the fee invoice void or not)
before anything is tried again, so a fee is never taken back twice nor left half taken back.

In the commit that records it applied, the fee's own entry moves from `applied` to `forgiven`, with who and why
(`bridge.store`). The plan counts that occurrence as charged and forgiven: it is never charged again and counts as
nothing towards the caps. With `all_fees`, a record `fees_forgiven:{connection}:{invoice}:{k}` forgives every
later occurrence on the invoice as well; the plan skips them as `forgiven`, citing who and why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from bridge.connectors.base import Connector
from bridge.errors import BridgeError, ConfigError, ConflictError
from bridge.ledger import apply_one, reconcile
from bridge.model import InvoiceStatus
from bridge.plan import FEE_PREFIX, FORGIVE_PREFIX, Action, ActionKind
from bridge.store import LedgerEntry, Store
from bridge.sync import Runtime, _action_day, today_for

ALL_PREFIX = "fees_forgiven:"

Outcome = Literal["forgiven", "already", "failed", "pending", "in_doubt"]


@dataclass
class Forgiven:
    """What `forgive` did: the fee, the forgiving's own ledger key, and how it ended."""

    fee: str
    key: str
    connection: str
    invoice: str
    amount: Decimal | None
    currency: str
    form: str
    by: str
    outcome: Outcome
    detail: str
    response_id: str | None = None
    all_fees: bool = False  # every later fee on the invoice is forgiven for good (recorded)
    reconciled: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when the fee is taken back (now or before); 1 when it is not (failed, or its outcome still unknown)."""
        return 0 if self.outcome in ("forgiven", "already") else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON form (`--json`): the fields in their order, the amount as exact text, `all_fees` as "all"."""
        out = dataclasses.asdict(self)
        out["amount"] = None if self.amount is None else f"{self.amount:f}"
        del out["all_fees"], out["reconciled"]
        out["all"] = self.all_fees
        out["reconciled"] = [{"key": k, "outcome": o} for k, o in self.reconciled]
        return out


def who() -> str:
    """The person forgiving when no one is named: the OS user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        return "unknown user"


def charged_fee(store: Store, key: str) -> LedgerEntry:
    """The ledger entry of a late fee the bridge charged (applied, or forgiven since); a `ConfigError` (usage,
    exit 2) saying why `key` is not one. Nothing is written."""
    entry = store.ledger_get(key)
    if entry is None:
        raise ConfigError(
            f"no ledger entry has the key {key!r}; `bridge ledger --kind late_fee` lists the fees charged", "ACTION_KEY"
        )
    if entry.kind != ActionKind.LATE_FEE.value or not key.startswith(FEE_PREFIX):
        raise ConfigError(f"{key} is a {entry.kind} action, not a late fee: only late fees are forgiven", "ACTION_KEY")
    if entry.state not in ("applied", "forgiven"):
        raise ConfigError(
            f"late fee {key} is {entry.state} in the ledger, not applied: only a fee the bridge charged can be "
            "forgiven (one not yet charged is forgiven in the review, or left to the contract)",
            "ACTION_KEY",
        )
    return entry


def forgive(
    rt: Runtime,
    key: str,
    *,
    note: str = "",
    by: str = "",
    all_fees: bool = False,
    as_of: Any = None,
) -> Forgiven:
    """Take back the late fee `key` at the provider exactly once and record it (see the module docstring).

    Usage errors (an unknown key, not a late fee, not applied, a connection no longer configured) raise
    `ConfigError` before anything is written. A fee that cannot be taken back as things stand at the provider
    (its invoice paid or gone, its fee invoice paid) raises `BridgeError`, with nothing written either."""
    fee = charged_fee(rt.store, key)
    conn = rt.settings.connection(fee.connection)  # ConfigError when the connection is gone from the config
    by = by.strip() or who()
    taking = _forgiving(fee, by, note)
    day = _action_day(today_for(rt.settings.terms, as_of))(taking)
    result = Forgiven(
        key, taking.key, fee.connection, fee.invoice_number, fee.amount, fee.currency, taking.form or "line", by,
        "failed", "",
    )  # fmt: skip
    with rt.store.run_lock([conn.name]):
        entry = rt.store.ledger_get(taking.key)
        if entry is not None and entry.state == "applied":
            result.outcome, result.response_id = "already", entry.response_id
            result.detail = f"already forgiven ({entry.error or entry.reason})"
        else:
            connectors, unavailable = rt.connectors([conn])
            if conn.name in unavailable:
                raise BridgeError(f"connection {conn.name!r} cannot be used: {unavailable[conn.name]}; nothing written")
            _take_back(rt, connectors[conn.name], fee, taking, day, result)
        if all_fees and result.outcome in ("forgiven", "already"):
            result.all_fees = _forgive_all(rt.store, taking, by, note, day)
    return result


def _forgiving(fee: LedgerEntry, by: str, note: str) -> Action:
    """The forgive action of a fee: the fee's own fields (its invoice, occurrence, description and the form it
    took), under its own key and kind, with who and why as its reason. Its amount is the fee's, negative: what is
    taken back, so the ledger's totals net a forgiven fee out."""
    planned = fee.action()
    rest = fee.key.removeprefix(FEE_PREFIX)
    why = f"forgiven by {by}" + (f": {note.strip()}" if note.strip() else "")
    return planned._replace(
        key=FORGIVE_PREFIX + rest,
        kind=ActionKind.FORGIVE_FEE,
        form=fee.form or planned.form,
        reason=why,
        amount=None if fee.amount is None else -fee.amount,
    )


def _take_back(rt: Runtime, connector: Connector, fee: LedgerEntry, taking: Action, day: Any, out: Forgiven) -> None:
    """Settle a forgiving a stopped run left pending; else write it once (or record it when the provider shows the
    fee gone already)."""
    entry = rt.store.ledger_get(taking.key)
    if entry is not None and entry.state == "pending":
        out.reconciled = [(e.key, o) for e, o in reconcile(rt.store, {connector.name: connector}, day)]
        entry = rt.store.ledger_get(taking.key)
        assert entry is not None
        if entry.state == "applied":
            out.outcome, out.response_id = "forgiven", entry.response_id
            out.detail = "a run that stopped had taken it back already: the provider shows it, now recorded"
            return
        if entry.state in ("pending", "in_doubt"):
            out.outcome = entry.state
            out.detail = f"an earlier attempt's outcome is not known: {entry.error or 'left pending'}; nothing written"
            return
    target, gone = _target(connector, rt.store.customers(fee.connection), fee, taking)
    if gone is not None:
        _record(rt.store, taking, gone, day)
        out.outcome, out.response_id, out.detail = "forgiven", gone, _GONE[taking.form or "line"]
        return
    assert target is not None
    report = apply_one(taking, rt.store, connector, target, day)
    if report.applied:
        out.outcome, out.response_id = "forgiven", report.applied[0]["response_id"]
        out.detail = _DONE[taking.form or "line"].format(provider=getattr(connector, "label", fee.connection))
    elif report.skipped:  # another process took it in the meantime
        out.outcome, out.detail = "already", "another run took it back meanwhile"
    else:
        now = rt.store.ledger_get(taking.key)
        out.outcome = "pending" if now is not None and now.state == "pending" else "failed"
        problems = [*report.failed, *report.deferred, *report.in_doubt]
        out.detail = "; ".join(str(f.get("error") or f.get("reason") or "") for f in problems)


_GONE = {
    "line": "the fee line was already off the invoice at the provider: recorded, nothing written",
    "invoice": "the fee invoice was already void or gone at the provider: recorded, nothing written",
}
_DONE = {
    "line": "its line was taken off the invoice at {provider}",
    "invoice": "its fee invoice was voided at {provider}",
}


def _target(
    connector: Connector, customers: dict[str, dict[str, Any]], fee: LedgerEntry, taking: Action
) -> tuple[dict[str, Any] | None, str | None]:
    """What the provider holds now: the record to write (the invoice carrying the fee line, or the fee invoice),
    or the id to record when the fee is gone already. A `BridgeError` (nothing written) when taking it back would
    take back money the client paid, or there is nothing left to take it from."""
    where = f"late fee {fee.key} ({fee.amount} {fee.currency} on invoice {fee.invoice_number})"
    if taking.form == "invoice":
        fee_invoice = fee.response_id or ""
        found = connector.read_invoice(fee_invoice, customers) if fee_invoice else None
        if found is None or found[0].status in (InvoiceStatus.VOID, InvoiceStatus.DELETED):
            return None, fee_invoice or "gone"
        invoice, raw = found
        if invoice.status is not InvoiceStatus.OPEN:
            raise BridgeError(
                f"{where}: its fee invoice {invoice.number} is {invoice.status.value} (due {invoice.amount_due} of "
                f"{invoice.total}): the client paid towards it, so voiding it would take back money received; "
                "refund or credit it at the provider instead. Nothing was written."
            )
        return dict(raw), None
    found = connector.read_invoice(fee.invoice_id, customers)
    if found is None:
        raise BridgeError(f"{where}: the invoice is no longer at the provider; nothing was written")
    invoice, raw = found
    if not any(line.description == taking.description for line in invoice.lines):
        return None, invoice.id
    if not invoice.status.is_open or fee.amount is None or invoice.amount_due < fee.amount:
        raise BridgeError(
            f"{where}: the invoice is {invoice.status.value} with {invoice.amount_due} {invoice.currency} due, less "
            "than the fee: the client paid towards it, so taking the line off would leave a credit; refund or "
            "credit it at the provider instead. Nothing was written."
        )
    return dict(raw), None


def _record(store: Store, action: Action, response_id: str, day: Any) -> None:
    """An action with nothing to write at the provider, recorded as applied (pending first, as every write)."""
    store.ledger_begin(action)
    store.ledger_finish(action.key, "applied", response_id=response_id, applied_on=day)


def _forgive_all(store: Store, taking: Action, by: str, note: str, day: Any) -> bool:
    """Record that every later fee on the invoice is forgiven for good (once; a second time changes nothing)."""
    why = f"forgiven for good by {by}" + (f": {note.strip()}" if note.strip() else "")
    record = taking._replace(key=ALL_PREFIX + taking.key.removeprefix(FORGIVE_PREFIX), amount=None, reason=why)
    existing = store.ledger_get(record.key)
    if existing is not None and existing.state == "applied":
        return True
    with contextlib.suppress(ConflictError):  # recorded by another run meanwhile
        _record(store, record, "recorded", day)
    return True
