"""The plan: what the contracts call for, frozen, in a stable order, as JSON (docs/interfaces.md).

One consumer explains a plan (dry run, `evaluate`), another carries it out
(`sync`, `apply`); both read the same object. The same input gives the same
bytes: items are sorted by (connection, invoice number, key) and amounts are
strings with exactly the currency's minor-unit places.

Actions, skips and warnings are named tuples: immutable, and about four times cheaper to
make than frozen dataclasses (a large evaluation makes one or more per invoice). Like any
tuple they compare equal to a plain tuple of the same values.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from operator import attrgetter
from typing import IO, Any, NamedTuple

import orjson

from bridge.money import format_amount

PLAN_VERSION = 1


class ActionKind(StrEnum):
    """What an action does at the provider."""

    REMINDER = "reminder"
    LATE_FEE = "late_fee"
    UPDATE_DUE_DATE = "update_due_date"
    RENEGOTIATION_REFUSED = "renegotiation_refused"
    # `bridge forgive`: a late fee the bridge charged, taken back (`forgive:…`), or every later fee on the invoice
    # forgiven for good (`fees_forgiven:…`, a record only). Never planned by the contracts.
    FORGIVE_FEE = "forgive_fee"


# A forgiving's key is its fee's with this prefix instead: `forgive:{connection}:{invoice}:{k}` takes back
# `late_fee:{connection}:{invoice}:{k}`.
FEE_PREFIX = "late_fee:"
FORGIVE_PREFIX = "forgive:"


def forgiven_fee_key(key: str) -> str | None:
    """The key of the late fee a forgiving (`forgive:…`) takes back; None for any other key."""
    return FEE_PREFIX + key.removeprefix(FORGIVE_PREFIX) if key.startswith(FORGIVE_PREFIX) else None


class SkipCode(StrEnum):
    """Why an invoice, a reminder step or a fee occurrence gets no action (docs/policy.md §2, §4, §5, §6)."""

    DRAFT = "draft"
    VOID = "void"
    PAID = "paid"
    NOT_A_SALE = "not_a_sale"
    FEE_INVOICE = "fee_invoice"
    NO_DUE_DATE = "no_due_date"
    ON_HOLD = "on_hold"
    EXCLUDED = "excluded"
    NO_CONTRACT = "no_contract"
    CURRENCY_MISMATCH = "currency_mismatch"  # contracts apply to the customer, none in the invoice's currency
    BELOW_MIN_BALANCE = "below_min_balance"
    SUPERSEDED = "superseded"
    MIN_GAP = "min_gap"
    MAX_REMINDERS = "max_reminders"
    BELOW_MIN_FEE = "below_min_fee"
    CAP_REACHED = "cap_reached"
    NOT_OPEN = "not_open"
    NO_EMAIL = "no_email"  # a reminder is due but there is no address to send it to
    EXCEEDS_ESTIMATE = "exceeds_estimate"  # the invoice bills more than its estimate's tolerance allows
    FORGIVEN = "forgiven"  # a reviewer forgave this late fee, or `bridge forgive --all` its invoice's: never charged


class WarningCode(StrEnum):
    """Things the accountant should know that do not stop an action."""

    FOREIGN_LATE_FEE = "foreign_late_fee"
    UNKNOWN_INVOICE = "unknown_invoice"
    PROVIDER_REMINDERS = "provider_reminders_enabled"  # the provider's own reminders would nag a second time
    DEFERRED = "deferred_daily_limit"  # the provider's daily call limit is near: the action waits for the next run
    PROVIDER_LATE_FEES = "provider_late_fees_possible"  # the provider may add its own late fee (FreshBooks client)
    PROVIDER_EMAIL = "provider_email_template"  # reminders go out as the provider's own invoice e-mail, not our text
    EXCEEDS_ESTIMATE = "exceeds_estimate"  # someone should talk to the client before it is chased
    NO_ESCALATION_CONTACT = "no_escalation_contact"  # an escalating reminder has no second contact to copy
    CANNOT_COPY = "escalation_cannot_copy"  # the reminder's channel cannot copy other contacts
    PROVIDER_COPIES = "provider_copies_every_step"  # the provider copies the other contacts before escalation too


_DIGITS = re.compile(r"(\d+)")
_TEXT_THEN_DIGITS = re.compile(r"(\D+)(\d+)")


def natural_key(text: str) -> tuple[int | str, ...]:
    """Sort key that orders 'INV-9' before 'INV-10' and step 9 before step 10.

    Runs of decimal digits (Unicode category Nd, what `\\d` matches) compare as numbers, the
    text between them as text: each run gives a tag (0 digits, 1 text) then its value, in one
    flat tuple, which orders exactly as a tuple of (tag, value) pairs would and compares faster.
    Most invoice numbers are all digits or text then digits: those skip the general split.
    """
    if text.isdecimal():
        return (0, int(text))
    simple = _TEXT_THEN_DIGITS.fullmatch(text)
    if simple is not None:
        return (1, simple[1], 0, int(simple[2]))
    key: list[int | str] = []
    for part in _DIGITS.split(text):
        if part:
            key += (0, int(part)) if part.isdecimal() else (1, part)
    return tuple(key)


class InvoiceRef(NamedTuple):
    """The invoice an action is about, as the plan shows it."""

    id: str
    number: str
    customer: str
    currency: str
    total: Decimal
    amount_due: Decimal
    due_date: date | None
    effective_due_date: date | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "number": self.number,
            "customer": self.customer,
            "currency": self.currency,
            "total": format_amount(self.total, self.currency),
            "amount_due": format_amount(self.amount_due, self.currency),
            "due_date": _iso(self.due_date),
            "effective_due_date": _iso(self.effective_due_date),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InvoiceRef:
        """Read the JSON form back."""
        return cls(
            id=str(data["id"]),
            number=str(data["number"]),
            customer=str(data.get("customer", "")),
            currency=str(data["currency"]),
            total=Decimal(data["total"]),
            amount_due=Decimal(data["amount_due"]),
            due_date=_date_or_none(data.get("due_date")),
            effective_due_date=_date_or_none(data.get("effective_due_date")),
        )


class Action(NamedTuple):
    """One thing to do at a provider, with the clause that calls for it.

    Kind-specific fields are None where they do not apply and are left out of the JSON.
    """

    key: str
    kind: ActionKind
    connection: str
    provider: str
    invoice: InvoiceRef
    clause: str
    reason: str = ""  # why, in words (a plan file without one reads back with "")
    # late_fee
    occurrence: int | None = None
    occurrence_date: date | None = None
    amount: Decimal | None = None
    form: str | None = None
    item: str | None = None
    description: str | None = None
    # reminder
    step: int | None = None
    step_date: date | None = None
    message: str | None = None
    channel: str | None = None
    to: str | None = None
    cc: tuple[str, ...] = ()  # copies (escalation, docs/policy.md §4): in the message's Cc header
    bcc: tuple[str, ...] = ()  # blind copies: envelope recipients only
    # what the client receives (bridge.delivery): contract_text, provider_invoice_email or nothing
    sends: str | None = None
    balance: Decimal | None = None  # the balance a reminder states: amount due after this run's fees
    # update_due_date / renegotiation_refused
    new_due_date: date | None = None
    requested_due_date: date | None = None
    refusal_reason: str | None = None
    # any message to send
    subject: str | None = None
    body: str | None = None

    @property
    def recipients(self) -> tuple[str, ...]:
        """Every address the message goes to: `to`, then the copies, then the blind copies."""
        return ((self.to,) if self.to else ()) + self.cc + self.bcc

    def to_dict(self, invoice: dict[str, Any] | None = None) -> dict[str, Any]:
        """JSON form; amounts as exact minor-unit strings. `invoice`: `self.invoice.to_dict()`, when already made
        (the actions of one invoice share it)."""
        # One unpacking, then locals: cheaper than 25 attribute reads (this runs per action).
        (key, kind, connection, provider, ref, clause, reason, occurrence, occurrence_date, amount, form, item,
         description, step, step_date, message, channel, to, cc, bcc, sends, balance, new_due_date,
         requested_due_date, refusal_reason, subject, body) = self  # fmt: skip
        out: dict[str, Any] = {
            "key": key,
            "kind": kind._value_,  # `.value` is a property: the slot is read per action
            "connection": connection,
            "provider": provider,
            "invoice": ref.to_dict() if invoice is None else invoice,
        }
        # The optional fields in their fixed order, each only when set.
        if occurrence is not None:
            out["occurrence"] = occurrence
        if occurrence_date is not None:
            out["occurrence_date"] = occurrence_date.isoformat()
        if amount is not None:
            out["amount"] = format_amount(amount, ref.currency)
        for name, value in (("form", form), ("item", item), ("description", description), ("step", step)):
            if value is not None:
                out[name] = value
        if step_date is not None:
            out["step_date"] = step_date.isoformat()
        for name, value in (("message", message), ("channel", channel), ("to", to)):
            if value is not None:
                out[name] = value
        if cc:  # only an escalating reminder has copies: every other action's JSON is unchanged
            out["cc"] = list(cc)
        if bcc:
            out["bcc"] = list(bcc)
        if sends is not None:
            out["sends"] = sends
        if balance is not None:
            out["balance"] = format_amount(balance, ref.currency)
        if new_due_date is not None:
            out["new_due_date"] = new_due_date.isoformat()
        if requested_due_date is not None:
            out["requested_due_date"] = requested_due_date.isoformat()
        if refusal_reason is not None:
            out["refusal_reason"] = refusal_reason
        out["clause"] = clause
        out["reason"] = reason
        if subject is not None:
            out["subject"] = subject
        if body is not None:
            out["body"] = body
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Action:
        """Read the JSON form back (for `bridge apply PLAN.json`)."""
        amount = data.get("amount")
        return cls(
            key=str(data["key"]),
            kind=ActionKind(data["kind"]),
            connection=str(data["connection"]),
            provider=str(data.get("provider", "")),
            invoice=InvoiceRef.from_dict(data["invoice"]),
            clause=str(data["clause"]),
            reason=str(data.get("reason", "")),
            occurrence=data.get("occurrence"),
            occurrence_date=_date_or_none(data.get("occurrence_date")),
            amount=None if amount is None else Decimal(amount),
            form=data.get("form"),
            item=data.get("item"),
            description=data.get("description"),
            step=data.get("step"),
            step_date=_date_or_none(data.get("step_date")),
            message=data.get("message"),
            channel=data.get("channel"),
            to=data.get("to"),
            cc=tuple(data.get("cc") or ()),
            bcc=tuple(data.get("bcc") or ()),
            sends=data.get("sends"),
            balance=None if data.get("balance") is None else Decimal(data["balance"]),
            new_due_date=_date_or_none(data.get("new_due_date")),
            requested_due_date=_date_or_none(data.get("requested_due_date")),
            refusal_reason=data.get("refusal_reason"),
            subject=data.get("subject"),
            body=data.get("body"),
        )


class Skip(NamedTuple):
    """An invoice, reminder step or fee occurrence that gets no action, and why."""

    connection: str
    invoice: str
    code: SkipCode
    detail: str
    clause: str | None = None
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        connection, invoice, code, detail, clause, key = self  # one unpacking: this runs per skip
        out: dict[str, Any] = {"connection": connection, "invoice": invoice}
        if key is not None:
            out["key"] = key
        out["code"] = code._value_
        out["detail"] = detail
        if clause is not None:
            out["clause"] = clause
        return out


class Warning(NamedTuple):
    """Something the accountant should know; it stops nothing."""

    connection: str
    invoice: str | None
    code: WarningCode | str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"connection": self.connection, "invoice": self.invoice, "code": str(self.code), "detail": self.detail}


@dataclass(frozen=True, slots=True)
class RecordError:
    """A record that could not be read; it is quarantined and the rest goes on."""

    connection: str
    record: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"connection": self.connection, "record": self.record, "error": self.error}


def _order(connection: str, number: tuple[int | str, ...], key: str | None, last: str) -> tuple[Any, ...]:
    """An item's place in the plan: (connection, invoice number's natural key, key head, key number, last).

    Action keys end in a step or occurrence number: order 9 before 10 without a full natural sort. One flat
    tuple per item (a plan sorts hundreds of thousands), which orders as the nested one would.
    """
    if key is None:
        return (connection, number, "", -1, last)
    head, _, tail = key.rpartition(":")
    return (connection, number, head, int(tail), last) if tail.isdecimal() else (connection, number, key, -1, last)


class NaturalKeys(dict[str, tuple[int | str, ...]]):
    """Each invoice number's natural key, computed once per build (a plan has many items per invoice)."""

    def __missing__(self, number: str) -> tuple[int | str, ...]:
        key = self[number] = natural_key(number)
        return key


@dataclass(frozen=True, slots=True)
class Plan:
    """A frozen plan. Build it with `Plan.build` so the order is canonical."""

    as_of: date
    actions: tuple[Action, ...] = ()
    skipped: tuple[Skip, ...] = ()
    warnings: tuple[Warning, ...] = ()
    errors: tuple[RecordError, ...] = ()
    applied: tuple[Mapping[str, Any], ...] | None = field(default=None)
    failed: tuple[Mapping[str, Any], ...] | None = field(default=None)

    @classmethod
    def build(
        cls,
        as_of: date,
        actions: Iterable[Action],
        skipped: Iterable[Skip] = (),
        warnings: Iterable[Warning] = (),
        errors: Iterable[RecordError] = (),
    ) -> Plan:
        """Sort everything into the canonical order (connection, invoice number, key)."""
        natural = NaturalKeys()
        return cls(
            as_of=as_of,
            actions=tuple(sorted_actions(actions, natural)),
            skipped=tuple(sorted_skips(skipped, natural)),
            warnings=tuple(sorted_warnings(warnings, natural)),
            errors=tuple(sorted_errors(errors)),
        )

    @property
    def is_empty(self) -> bool:
        """True when there is nothing to do."""
        return not self.actions

    def summary(self) -> dict[str, Any]:
        """Counts per kind and the late-fee total per currency."""
        tally = _Tally()
        tally.add(self.actions)
        return tally.summary(len(self.skipped), len(self.warnings), len(self.errors))

    def to_dict(self) -> dict[str, Any]:
        """The plan JSON object of docs/interfaces.md."""
        out: dict[str, Any] = {
            "version": PLAN_VERSION,
            "as_of": self.as_of.isoformat(),
            "actions": [a.to_dict() for a in self.actions],
            "skipped": [s.to_dict() for s in self.skipped],
            "warnings": [w.to_dict() for w in self.warnings],
            "errors": [e.to_dict() for e in self.errors],
            "summary": self.summary(),
        }
        if self.applied is not None:
            out["applied"] = [dict(x) for x in self.applied]
        if self.failed is not None:
            out["failed"] = [dict(x) for x in self.failed]
        return out

    def to_json(self) -> str:
        """Canonical JSON text: same plan, same bytes (`json_chunks`, joined)."""
        return b"".join(self.json_chunks()).decode("utf-8")

    def json_chunks(self) -> Iterator[bytes]:
        """The canonical JSON (UTF-8) in pieces, so a large plan is never held as one text nor as one dict.

        The bytes are exactly those of `json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"`:
        orjson writes the same escapes, separators and two-space indentation; the lists are encoded a
        chunk at a time, each cut at the plan's depth (`_batch`).
        """
        yield _head(self.as_of)
        yield from _json_list("actions", _batches(self.actions, _action_dicts))
        yield from _json_list("skipped", _batches(self.skipped, _dicts))
        yield from _json_list("warnings", _batches(self.warnings, _dicts))
        yield from _json_list("errors", _batches(self.errors, _dicts))
        yield from _tail(self.summary(), self.applied, self.failed)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """Read a plan written by `to_json` (for `bridge apply`)."""
        if data.get("version") != PLAN_VERSION:
            raise ValueError(f"plan version {data.get('version')!r} is not supported (expected {PLAN_VERSION})")
        return cls.build(
            as_of=date.fromisoformat(data["as_of"]),
            actions=[Action.from_dict(a) for a in data.get("actions", [])],
            skipped=[
                Skip(
                    s["connection"],
                    s["invoice"],
                    SkipCode(s["code"]),
                    s.get("detail", ""),
                    s.get("clause"),
                    s.get("key"),
                )
                for s in data.get("skipped", [])
            ],
            warnings=[
                Warning(w["connection"], w.get("invoice"), w["code"], w.get("detail", ""))
                for w in data.get("warnings", [])
            ],
            errors=[RecordError(e["connection"], e["record"], e["error"]) for e in data.get("errors", [])],
        )


_CHUNK = 2_000  # list items encoded at a time: large enough for C speed, small enough for little memory


def sorted_actions(actions: Iterable[Action], natural: NaturalKeys) -> list[Action]:
    """Actions in plan order (connection, invoice number, key); `natural`: the invoice numbers' keys so far."""
    return sorted(actions, key=lambda a: _order(a.connection, natural[a.invoice.number or ""], a.key, ""))


def sorted_skips(skipped: Iterable[Skip], natural: NaturalKeys) -> list[Skip]:
    """Skips in plan order (connection, invoice number, key, code)."""
    return sorted(skipped, key=lambda s: _order(s.connection, natural[s.invoice or ""], s.key, s.code))


def sorted_warnings(warnings: Iterable[Warning], natural: NaturalKeys) -> list[Warning]:
    """Warnings in plan order (connection, invoice number, code and detail)."""
    return sorted(warnings, key=lambda w: _order(w.connection, natural[w.invoice or ""], None, f"{w.code}:{w.detail}"))


def sorted_errors(errors: Iterable[RecordError]) -> list[RecordError]:
    """Record errors in plan order (connection, record, error)."""
    return sorted(errors, key=lambda e: (e.connection, natural_key(e.record), e.error))


class _Tally:
    """What a plan's summary counts of its actions, added up a batch at a time."""

    def __init__(self) -> None:
        self.actions = 0
        self.kinds: Counter[ActionKind] = Counter()
        self.fee_totals: dict[str, Decimal] = {}

    def add(self, actions: Sequence[Action]) -> None:
        self.actions += len(actions)
        self.kinds.update(map(attrgetter("kind"), actions))
        fee_totals, late_fee, zero = self.fee_totals, ActionKind.LATE_FEE, Decimal(0)
        for action in actions:
            if action.kind is late_fee and action.amount is not None:
                cur = action.invoice.currency
                fee_totals[cur] = fee_totals.get(cur, zero) + action.amount

    def summary(self, skipped: int, warnings: int, errors: int) -> dict[str, Any]:
        kinds, fee_totals = self.kinds, self.fee_totals
        return {
            "actions": self.actions,
            "late_fee_total": {cur: format_amount(fee_totals[cur], cur) for cur in sorted(fee_totals)},
            "reminders": kinds[ActionKind.REMINDER],
            "late_fees": kinds[ActionKind.LATE_FEE],
            "due_date_updates": kinds[ActionKind.UPDATE_DUE_DATE],
            "renegotiations_refused": kinds[ActionKind.RENEGOTIATION_REFUSED],
            "skipped": skipped,
            "warnings": warnings,
            "errors": errors,
        }


class PlanStream:
    """A plan written as it is evaluated, never held whole: what `bridge --json evaluate` prints.

    `groups` gives the actions and skips a few at a time, each batch in plan order and after the one before
    (the engine evaluates the invoices in plan order: bridge.policies.evaluate.evaluate_stream); `rest`, called
    once they are all given, the warnings and record errors in plan order. `json_chunks` writes the same bytes
    as the `Plan` of the same items: the actions as they come, the skips kept aside meanwhile (the plan lists
    every action before the first skip), then the rest and the summary. `summary()` and `errors` are known once
    the chunks are written.
    """

    def __init__(
        self,
        as_of: date,
        groups: Iterable[tuple[Sequence[Action], Sequence[Skip]]],
        rest: Callable[[], tuple[Sequence[Warning], Sequence[RecordError]]],
    ) -> None:
        self.as_of = as_of
        self._groups = groups
        self._rest = rest
        self._summary: dict[str, Any] | None = None
        self.errors: Sequence[RecordError] = ()

    def summary(self) -> dict[str, Any]:
        """The plan's summary, once `json_chunks` has been read to the end."""
        if self._summary is None:
            raise RuntimeError("the plan's summary is known once its JSON is written")
        return self._summary

    def json_chunks(self, spool: IO[bytes] | None = None) -> Iterator[bytes]:
        """The canonical JSON (UTF-8) in pieces, evaluated as they are written (once only).

        `spool`: an empty binary file that keeps the encoded skips until the last action is written (the shell
        gives a temporary file, so that a large plan's skips are not held in memory); in memory when not given.
        """
        kept = io.BytesIO() if spool is None else spool
        tally = _Tally()
        actions: list[Action] = []
        skips: list[Skip] = []
        skipped = 0
        yield _head(self.as_of)
        head = _list_head("actions")
        for group_actions, group_skips in self._groups:
            actions += group_actions
            skips += group_skips
            if len(actions) >= _CHUNK:
                tally.add(actions)
                yield head + _batch(actions, _action_dicts)
                head, actions = b",\n  ", []
            if len(skips) >= _CHUNK:
                kept.write((b",\n  " if skipped else b"") + _batch(skips, _dicts))
                skipped, skips = skipped + len(skips), []
        if actions:
            tally.add(actions)
            yield head + _batch(actions, _action_dicts)
        yield _list_end("actions", tally.actions)
        if skips:
            kept.write((b",\n  " if skipped else b"") + _batch(skips, _dicts))
            skipped += len(skips)
        if skipped:
            yield _list_head("skipped")
            kept.seek(0)
            yield from iter(lambda: kept.read(1 << 20), b"")
        yield _list_end("skipped", skipped)
        warnings, self.errors = self._rest()
        yield from _json_list("warnings", _batches(warnings, _dicts))
        yield from _json_list("errors", _batches(self.errors, _dicts))
        self._summary = tally.summary(skipped, len(warnings), len(self.errors))
        yield from _tail(self._summary, None, None)


def _head(as_of: date) -> bytes:
    return b'{\n  "version": %d,\n  "as_of": "%s"' % (PLAN_VERSION, as_of.isoformat().encode())


def _tail(
    summary: dict[str, Any], applied: Sequence[Mapping[str, Any]] | None, failed: Sequence[Mapping[str, Any]] | None
) -> Iterator[bytes]:
    tail: dict[str, Any] = {"summary": summary}
    if applied is not None:
        tail["applied"] = [dict(x) for x in applied]
    if failed is not None:
        tail["failed"] = [dict(x) for x in failed]
    # Encoded as an object of their own, the members sit at the plan's depth: b'{\n  "summary": ...\n}' less its braces.
    yield b",\n" + orjson.dumps(tail, option=orjson.OPT_INDENT_2)[2:-2] + b"\n}\n"


def _dicts(items: Sequence[Skip | Warning | RecordError]) -> list[dict[str, Any]]:
    return [x.to_dict() for x in items]


def _action_dicts(actions: Sequence[Action]) -> list[dict[str, Any]]:
    # An invoice's actions are next to each other in a plan and share its InvoiceRef: make its JSON form once.
    out: list[dict[str, Any]] = []
    ref: InvoiceRef | None = None
    invoice: dict[str, Any] = {}
    for a in actions:
        if a.invoice is not ref:
            ref, invoice = a.invoice, a.invoice.to_dict()
        out.append(a.to_dict(invoice))
    return out


def _batch(items: Sequence[Any], to_dicts: Callable[[Sequence[Any]], list[dict[str, Any]]]) -> bytes:
    """Items as they sit in a plan's list: `{...},\n    {...}`, two spaces deeper than orjson puts a list."""
    if not items:
        return b""
    # orjson indents from the top only. As the one member of an object, the list's items sit where the plan has
    # them (b'{\n  "": [\n    {...},\n    {...}\n  ]\n}'): cut them out, less the two spaces the list's head gives.
    return orjson.dumps({"": to_dicts(items)}, option=orjson.OPT_INDENT_2)[_ITEMS_FROM:_ITEMS_TO]


_ITEMS_FROM = len(b'{\n  "": [\n  ')
_ITEMS_TO = -len(b"\n  ]\n}")


def _batches(items: Sequence[Any], to_dicts: Callable[[Sequence[Any]], list[dict[str, Any]]]) -> Iterator[bytes]:
    for start in range(0, len(items), _CHUNK):
        yield _batch(items[start : start + _CHUNK], to_dicts)


def _list_head(name: str) -> bytes:
    return b",\n  " + orjson.dumps(name) + b": [\n  "


def _list_end(name: str, count: int) -> bytes:
    return b"\n  ]" if count else b",\n  " + orjson.dumps(name) + b": []"


def _json_list(name: str, batches: Iterable[bytes]) -> Iterator[bytes]:
    """`  "name": [...]` as a member of the plan object (after a comma), from its items' batches."""
    head, count = _list_head(name), 0
    for batch in batches:
        yield head + batch
        head, count = b",\n  ", count + 1
    yield _list_end(name, count)


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _date_or_none(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value))
