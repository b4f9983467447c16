"""The plan of cached invoices, evaluating again only the invoices whose inputs changed.

Each invoice's evaluation (`bridge.policies.evaluate.Evaluated`) is kept in the store with a fingerprint of
everything it was decided from:

- the invoice as stored (its model's JSON text: any change at the provider changes it) and the stored text of
  every payment allocated to it;
- its ledger entries (reminder steps and fee occurrences applied, in doubt or pending);
- the connection's estimates (any of them may be the one an invoice names);
- the terms (the whole `[contracts]`, holds, exclusions, fee modes, firm name, provider channels), the day
  (`--as-of`, or today in each contract's time zone), any ledger entry that names no invoice;
- the bridge's own code (a digest of the package's files), so an upgrade never reuses an older decision.

An invoice whose fingerprint matches is not read into a model nor evaluated: its stored result is taken as it
is. The engine stays a pure function (`evaluate_each`); only this module reads and writes the cache. An
invoice a renegotiation request names is always evaluated (requests are decided anew on every run; its result is
not kept: it follows the request, which no fingerprint holds), and so is every invoice while a contract escalates
(`escalate_from_step`: its warnings gather invoices across the book).

A dry run also keeps its whole plan (`keep`): its canonical JSON, compressed, with the store's count of changes to
the pulled records (`Store.changes`, counted in the transaction of every change to invoices, payments, customers,
estimates or quarantine, and read before any record is) and a fingerprint of every other input: the format, the
code, the terms, the day(s), the connections, every ledger entry of the history, every renegotiation request, the
errors and the warnings. The next dry run that finds both the same reads no record at all: it writes the kept bytes
out again (`Kept`), and reads the plan's actions and skips back from them only if someone asks for them.
"""

from __future__ import annotations

import hashlib
import sys
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bridge.model import INVOICE_JSON, HistoryEntry, Invoice, Payment, RenegotiationRequest
from bridge.plan import Action, ActionKind, InvoiceRef, Plan, RecordError, Skip, SkipCode, Warning, WarningCode
from bridge.policies.terms import Terms
from bridge.store import Store
from bridge.store.rows import KeptPlan

if TYPE_CHECKING:  # the engine is imported when an invoice is evaluated again, not by a dry run taking back its plan
    from bridge.policies.evaluate import Evaluated

FORMAT = "1"  # of the stored results: part of every fingerprint


def plan(
    store: Store,
    names: Sequence[str],
    terms: Terms,
    history: Sequence[HistoryEntry],
    renegotiations: Sequence[RenegotiationRequest],
    today: date | Mapping[str, date],
    errors: Sequence[RecordError],
    warnings: Sequence[Warning] = (),
    *,
    keep: bool = False,
) -> Plan:
    """The plan of the named connections' cached invoices (with `warnings` added); the same, byte for byte, as
    evaluating them all.

    Invoices whose inputs are unchanged since their last evaluation take its stored result; the others are
    evaluated, and their results stored for the next run. With `keep` (a dry run), the whole plan kept by the last
    one is taken back when nothing it was made from changed, and the plan made is kept for the next.
    """
    given = _Inputs(names, terms, history, renegotiations, today, errors, warnings)
    if not keep:
        return _made(store, given)
    fingerprint = given.fingerprint()
    changes = store.changes()  # before any record is read: a change from here on makes what is kept stale
    kept = store.kept_plan(names)
    if kept is not None and kept.changes == changes and kept.fingerprint == fingerprint:
        return Kept(kept)
    made = _made(store, given)
    squeeze = zlib.compressobj(1)
    packed = b"".join([*(squeeze.compress(chunk) for chunk in made.json_chunks()), squeeze.flush()])
    head = {
        "as_of": made.as_of.isoformat(),
        "summary": made.summary(),
        "warnings": [list(w) for w in made.warnings],
        "errors": [[e.connection, e.record, e.error] for e in made.errors],
    }
    kept = KeptPlan(changes, fingerprint, orjson.dumps(head).decode(), packed)
    store.keep_plan(names, kept)
    return Kept(kept, made)


def with_warnings(plan: Plan, warnings: Iterable[Warning]) -> Plan:
    """The plan with more warnings, in the canonical order."""
    return Plan.build(plan.as_of, plan.actions, plan.skipped, [*plan.warnings, *warnings], plan.errors)


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What a plan is made from besides the pulled records."""

    names: Sequence[str]
    terms: Terms
    history: Sequence[HistoryEntry]
    renegotiations: Sequence[RenegotiationRequest]
    today: date | Mapping[str, date]
    errors: Sequence[RecordError]
    warnings: Sequence[Warning]

    def fingerprint(self) -> str:
        """Everything a plan is made from but the pulled records (`Store.changes` stands for them)."""
        digest = hashlib.blake2b(_common(self.terms, self.today, ()), digest_size=20)
        for part in (self.names, self.history, self.renegotiations, self.errors, self.warnings):
            digest.update(b"\1")
            for item in part:
                digest.update(repr(item).encode() + b"\0")
        return digest.hexdigest()


class Kept(Plan):
    """A plan as a dry run kept it: written out from its kept bytes (`json_chunks`), its summary, warnings and
    errors from its head; its actions and skips read back from the bytes only when asked for (unless the plan
    they were made from is at hand)."""

    def __init__(self, kept: KeptPlan, made: Plan | None = None) -> None:
        head = orjson.loads(kept.head)
        object.__setattr__(self, "as_of", date.fromisoformat(head["as_of"]))
        object.__setattr__(self, "warnings", tuple(_warning(w) for w in head["warnings"]))
        object.__setattr__(self, "errors", tuple(RecordError(*e) for e in head["errors"]))
        object.__setattr__(self, "applied", None)
        object.__setattr__(self, "failed", None)
        object.__setattr__(self, "_kept", kept)
        object.__setattr__(self, "_summary", head["summary"])
        object.__setattr__(self, "_made", made)

    def _plan(self) -> Plan:
        made: Plan | None = self.__dict__["_made"]
        if made is None:
            made = Plan.from_dict(orjson.loads(b"".join(self.json_chunks())))
            object.__setattr__(self, "_made", made)
        return made

    @property
    def actions(self) -> tuple[Action, ...]:
        """The plan's actions (read back from the kept bytes the first time)."""
        return self._plan().actions

    @property
    def skipped(self) -> tuple[Skip, ...]:
        """The plan's skips (read back from the kept bytes the first time)."""
        return self._plan().skipped

    @property
    def is_empty(self) -> bool:
        """True when there is nothing to do."""
        return not self.summary()["actions"]

    def summary(self) -> dict[str, Any]:
        """The kept summary (a copy)."""
        return {k: dict(v) if isinstance(v, dict) else v for k, v in self.__dict__["_summary"].items()}

    def json_chunks(self) -> Iterator[bytes]:
        """The kept canonical JSON, uncompressed a piece at a time."""
        kept: KeptPlan = self.__dict__["_kept"]
        unsqueeze = zlib.decompressobj()
        for start in range(0, len(kept.plan), _PIECE):
            yield unsqueeze.decompress(kept.plan[start : start + _PIECE])
        yield unsqueeze.flush()


_PIECE = 1 << 18  # compressed bytes uncompressed at a time (a few MB of JSON)


def _made(store: Store, given: _Inputs) -> Plan:
    """The plan from each invoice's kept evaluation, or from evaluating it again (see the module's doc)."""
    from bridge.mapping.common import attach_estimates, attach_payments
    from bridge.policies.evaluate import evaluate_each

    names, terms, history, renegotiations = given.names, given.terms, given.history, given.renegotiations
    today, errors, warnings = given.today, given.errors, given.warnings
    per_invoice, others = _history_by_invoice(history)
    common = _common(terms, today, others)
    # A contract that escalates gathers its warnings across the book (the invoices of a client without other
    # contacts): the engine needs every invoice then, so nothing is taken back.
    reuse = not any(c.reminders.escalate_from_step is not None for c in terms.contracts)
    requested = {(r.connection, r.invoice_id) for r in renegotiations if r.invoice_id is not None}
    requested |= {(r.connection, "#" + r.invoice_number) for r in renegotiations if r.invoice_number is not None}
    entries: list[Invoice | Evaluated] = []
    fresh: list[tuple[str, int, str, str]] = []  # (connection, index in entries, remote id, fingerprint)
    for name in names:
        rows, payment_texts = store.cached_invoices(name)
        paying = _payments_by_invoice(payment_texts)
        # Any estimate may be the one an invoice names (by its keys): they all count in every fingerprint.
        estimates = store.estimates(name)
        connection_common = common + b"\0" + repr(estimates).encode() if estimates else common
        for row in rows:
            paid_by = paying.get(row.remote_id, ())
            digest = hashlib.blake2b(connection_common, digest_size=20)
            digest.update(f"{name}\0{row.remote_id}\0".encode())
            digest.update(row.model.encode())
            for text in paid_by:
                digest.update(b"\0")
                digest.update(text.encode())
            for entry in per_invoice.get(f"{name}:{row.remote_id}", ()):
                digest.update(repr((entry.key, entry.kind, entry.amount, entry.applied_on)).encode())
            fingerprint = digest.hexdigest()
            named = (name, row.remote_id) in requested or (name, "#" + row.number) in requested
            if reuse and row.fingerprint == fingerprint and row.result is not None and not named:
                try:
                    entries.append(decode(row.result))
                    continue
                except (ValueError, KeyError, TypeError, IndexError, ArithmeticError):
                    pass  # a result this code cannot read: evaluate the invoice again
            invoice = INVOICE_JSON.validate_json(row.model)
            if paid_by:
                invoice = attach_payments([invoice], [Payment.model_validate_json(p) for p in paid_by])[0]
            if estimates:
                invoice = attach_estimates([invoice], estimates)[0]
            if not named:  # its result follows the request, which no fingerprint holds: never kept
                fresh.append((name, len(entries), row.remote_id, fingerprint))
            entries.append(invoice)
    result, each = evaluate_each(entries, terms, history, renegotiations, today, errors)
    by_connection: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for name, index, remote_id, fingerprint in fresh:
        by_connection[name].append((remote_id, fingerprint, encode(each[index])))
    for name, kept in by_connection.items():
        store.save_evaluations(name, kept)
    return with_warnings(result, warnings) if warnings else result


def _history_by_invoice(history: Sequence[HistoryEntry]) -> tuple[dict[str, list[HistoryEntry]], list[HistoryEntry]]:
    """Ledger entries by the `{connection}:{invoice}` their key names (as `History` reads keys), and the others."""
    by_invoice: dict[str, list[HistoryEntry]] = defaultdict(list)
    others: list[HistoryEntry] = []
    for entry in history:
        head, _, number = entry.key.rpartition(":")
        kind, sep, invoice = head.partition(":")
        if kind in ("reminder", "late_fee") and sep and number.isdecimal():
            by_invoice[invoice].append(entry)
        else:
            others.append(entry)
    return by_invoice, others


def _common(terms: Terms, today: date | Mapping[str, date], others: Sequence[HistoryEntry]) -> bytes:
    """What every invoice's fingerprint includes: format, code, terms, the day(s), ledger entries of no invoice."""
    days = today.isoformat() if isinstance(today, date) else repr(sorted(today.items()))
    parts = [FORMAT, code_digest(), terms.model_dump_json(), days]
    parts += [repr((e.key, e.kind, e.amount, e.applied_on)) for e in others]
    return "\0".join(parts).encode()


@cache
def code_digest() -> str:
    """A digest of the bridge package's files, the interpreter's version and the versions of the libraries the
    engine's results follow (Babel formats amounts and dates, holidays moves business days, Jinja2 renders the
    messages, pydantic reads the stored invoices): a result decided by other code is never reused."""
    import babel
    import pydantic

    def installed(name: str) -> str:  # from its metadata: importing Jinja2 or holidays costs more than a kept plan
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    libraries = f"{sys.version} babel {babel.__version__} holidays {installed('holidays')} "
    libraries += f"jinja2 {installed('Jinja2')} pydantic {pydantic.VERSION}"
    root = Path(__file__).resolve().parent
    digest = hashlib.blake2b(libraries.encode(), digest_size=20)
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _payments_by_invoice(texts: Sequence[str]) -> dict[str, list[str]]:
    """The stored payments' texts by the invoice each allocation names (as `attach_payments` matches them)."""
    by_invoice: dict[str, list[str]] = defaultdict(list)
    for text in texts:
        ids = {a.get("invoice_id") for a in orjson.loads(text).get("allocations") or ()}
        for invoice_id in sorted(i for i in ids if i is not None):
            by_invoice[invoice_id].append(text)
    return by_invoice


# -- the stored form of an Evaluated: lossless (amounts as their exact Decimal text, days as ISO dates) --------


def _default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} in an evaluation")


def encode(result: Evaluated) -> str:
    """JSON text of one invoice's evaluation, read back by `decode` into an equal `Evaluated`."""
    refs: list[InvoiceRef] = []
    actions: list[list[Any]] = []
    for action in result.actions:
        ref = action.invoice
        index = next((i for i, known in enumerate(refs) if known is ref), None)  # shared as evaluated, not by ==
        if index is None:
            index = len(refs)
            refs.append(ref)
        actions.append([*action[:4], index, *action[5:]])
    data = {
        "r": [list(r) for r in refs],
        "a": actions,
        "s": [list(s) for s in result.skips],  # Skip's and Warning's fields, in their order
        "w": [list(w) for w in result.warnings],
    }
    return orjson.dumps(data, default=_default).decode()


_KINDS = ActionKind._value2member_map_
_SKIP_CODES = SkipCode._value2member_map_
_WARNING_CODES = WarningCode._value2member_map_
_make_action = Action._make
_make_skip = Skip._make
_DAYS = tuple(Action._fields.index(n) for n in ("occurrence_date", "step_date", "new_due_date", "requested_due_date"))
_TUPLES = tuple(Action._fields.index(n) for n in ("cc", "bcc"))
_AMOUNTS = tuple(Action._fields.index(n) for n in ("amount", "balance"))
_day = date.fromisoformat


def _ref(fields: list[Any]) -> InvoiceRef:
    i, n, customer, currency, total, due, due_date, effective = fields
    return InvoiceRef(
        i,
        n,
        customer,
        currency,
        Decimal(total),
        Decimal(due),
        None if due_date is None else _day(due_date),
        None if effective is None else _day(effective),
    )


def _action(fields: list[Any], refs: list[InvoiceRef]) -> Action:
    """An action from its stored fields (in Action's order, the invoice as an index into `refs`), converted
    in place: the kind, the days, the amounts and the copies."""
    fields[1] = _KINDS[fields[1]]
    fields[4] = refs[fields[4]]
    for i in _DAYS:
        if fields[i] is not None:
            fields[i] = _day(fields[i])
    for i in _AMOUNTS:
        if fields[i] is not None:
            fields[i] = Decimal(fields[i])
    for i in _TUPLES:
        fields[i] = tuple(fields[i])
    return _make_action(fields)


def _skip(fields: list[Any]) -> Skip:
    fields[2] = _SKIP_CODES[fields[2]]
    return _make_skip(fields)


def _warning(fields: list[Any]) -> Warning:
    connection, invoice, code, detail = fields
    return Warning(connection, invoice, _WARNING_CODES.get(code, code), detail)


def decode(text: str) -> Evaluated:
    """The `Evaluated` that `encode` wrote."""
    from bridge.policies.evaluate import Evaluated

    data = orjson.loads(text)
    refs = [_ref(r) for r in data["r"]]
    return Evaluated(
        tuple([_action(a, refs) for a in data["a"]]),
        tuple([_skip(s) for s in data["s"]]),
        tuple([_warning(w) for w in data["w"]]),
    )
