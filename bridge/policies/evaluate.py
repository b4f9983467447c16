"""evaluate(invoices, terms, history, renegotiations, today) -> Plan  (docs/policy.md).

Pure: no I/O, no clock. `today` is a date, or a mapping of contract name to the
date in that contract's time zone. The same inputs give the same plan, byte for
byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from operator import itemgetter
from typing import Literal, NamedTuple, TypeVar

from bridge.delivery import NOT_SENT, SMTP, Delivery, reminder_delivery
from bridge.messages import MessageContext, RenderedMessage, render_message
from bridge.model import Customer, HistoryEntry, Invoice, InvoiceStatus, RenegotiationRequest
from bridge.money import format_amount
from bridge.plan import (
    Action,
    ActionKind,
    InvoiceRef,
    NaturalKeys,
    Plan,
    PlanStream,
    RecordError,
    Skip,
    SkipCode,
    Warning,
    WarningCode,
    natural_key,
    sorted_actions,
    sorted_errors,
    sorted_skips,
    sorted_warnings,
)
from bridge.policies.history import History, InvoiceHistory
from bridge.policies.late_fees import FeeOutcome, decide_late_fees, fee_description, fee_terms
from bridge.policies.reminders import ReminderDecision, Step, decide_step, latest_due_step
from bridge.policies.renegotiation import decide, project_of, renegotiation_terms
from bridge.policies.terms import Contract, LateFee, Terms

_CLOSED = {
    InvoiceStatus.DRAFT: (SkipCode.DRAFT, "invoice is a draft"),
    InvoiceStatus.VOID: (SkipCode.VOID, "invoice is void"),
    InvoiceStatus.DELETED: (SkipCode.VOID, "invoice is deleted"),
    InvoiceStatus.PAID: (SkipCode.PAID, "invoice is paid"),
}


class _CustomerMatcher:
    """Matches a customer against lists of ids, names or e-mails (names and e-mails case-insensitively)."""

    __slots__ = ("_any", "_tokens")

    def __init__(self, entries: Iterable[str]) -> None:
        entries = tuple(entries)
        self._any = "*" in entries
        self._tokens = frozenset(entries) | frozenset(e.casefold() for e in entries)

    def matches(self, customer_id: str, name: str, email: str | None) -> bool:
        tokens = self._tokens
        return (
            self._any
            or customer_id in tokens
            or (bool(name) and name.casefold() in tokens)
            or (email is not None and email.casefold() in tokens)
        )


@dataclass(slots=True)
class _Scope:
    """Which contract applies to which invoice, and which invoices are out of scope (docs/policy.md §1-2)."""

    terms: Terms
    _contracts: list[tuple[Contract, _CustomerMatcher]] = field(init=False)
    _hold_customers: _CustomerMatcher = field(init=False)
    _hold_invoices: frozenset[str] = field(init=False)
    _excluded: _CustomerMatcher = field(init=False)
    # Per customer (id, name, e-mail): on hold, excluded, and the contracts whose applies_to matches, in file order.
    _customers: dict[tuple[str, str, str | None], tuple[bool, bool, tuple[Contract, ...]]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._contracts = [(c, _CustomerMatcher(c.applies_to)) for c in self.terms.contracts]
        self._hold_customers = _CustomerMatcher(self.terms.hold.customers)
        self._hold_invoices = frozenset(self.terms.hold.invoices)
        self._excluded = _CustomerMatcher(self.terms.exclude.customers)

    def _rules(self, customer: Customer) -> tuple[bool, bool, tuple[Contract, ...]]:
        key = (customer.id, customer.name, customer.email)
        rules = self._customers.get(key)
        if rules is None:
            rules = self._customers[key] = (
                self._hold_customers.matches(*key),
                self._excluded.matches(*key),
                tuple(k for k, m in self._contracts if m.matches(*key)),
            )
        return rules

    def contract_for(self, invoice: Invoice) -> Contract | None:
        """The first contract, in file order, whose `applies_to` matches the customer and whose currency fits."""
        return next((k for k in self._rules(invoice.customer)[2] if k.matches_currency(invoice.currency)), None)

    def check(self, invoice: Invoice) -> tuple[Contract | None, Skip | None]:
        """The contract that governs the invoice, or the first scope rule it fails, as a skip."""
        conn, number = invoice.connection, invoice.number
        if not invoice.is_sale:
            return None, Skip(conn, number, SkipCode.NOT_A_SALE, "not a sales invoice")
        closed = _CLOSED.get(invoice.status)
        if closed is not None:
            return None, Skip(conn, number, closed[0], closed[1])
        if invoice.fee_for is not None:
            return None, Skip(conn, number, SkipCode.FEE_INVOICE, f"late-fee invoice for invoice id {invoice.fee_for}")
        if invoice.due_date is None:
            return None, Skip(conn, number, SkipCode.NO_DUE_DATE, "invoice has no due date")
        c = invoice.customer
        if invoice.disputed:
            return None, Skip(conn, number, SkipCode.ON_HOLD, "disputed or on hold at the provider")
        if number in self._hold_invoices:
            return None, Skip(conn, number, SkipCode.ON_HOLD, "invoice listed in hold.invoices", "hold.invoices")
        held, excluded, candidates = self._rules(c)
        if held:
            return None, Skip(
                conn, number, SkipCode.ON_HOLD, f"customer {c.name or c.id} listed in hold.customers", "hold.customers"
            )
        if excluded:
            return None, Skip(
                conn,
                number,
                SkipCode.EXCLUDED,
                f"customer {c.name or c.id} listed in exclude.customers",
                "exclude.customers",
            )
        if not candidates:
            return None, Skip(
                conn, number, SkipCode.NO_CONTRACT, f"no contract applies to customer {c.name or c.id}", "contracts"
            )
        contract = next((k for k in candidates if k.matches_currency(invoice.currency)), None)
        if contract is None:
            stated = ", ".join(f"{k.name} ({k.currency})" for k in candidates)
            return None, Skip(
                conn,
                number,
                SkipCode.CURRENCY_MISMATCH,
                f"the invoice is in {invoice.currency}; the contracts for customer {c.name or c.id} are in other "
                f"currencies: {stated}",
                candidates[0].clause("currency"),
            )
        min_balance = contract.min_balance(invoice.currency)
        if invoice.amount_due < min_balance:
            due = format_amount(invoice.amount_due, invoice.currency)
            detail = f"amount due {due} is below min_balance {format_amount(min_balance, invoice.currency)}"
            return None, Skip(
                conn, number, SkipCode.BELOW_MIN_BALANCE, detail, contract.clause("reminders.min_balance")
            )
        return contract, None


def over_estimate(invoice: Invoice, contract: Contract) -> tuple[Skip, Warning] | None:
    """docs/policy.md §2.1: the skip and the warning of an invoice that bills more than its accepted estimate
    plus the contract's `estimate_tolerance_percent`; None when it does not (or either is absent)."""
    tolerance, estimate = contract.estimate_tolerance_percent, invoice.estimate
    if tolerance is None or estimate is None:
        return None
    allowed = estimate.total * (1 + tolerance / 100)
    if invoice.total <= allowed:
        return None
    cur = invoice.currency
    billed, agreed = f"{format_amount(invoice.total, cur)} {cur}", f"{format_amount(estimate.total, cur)} {cur}"
    over = (
        f"{((invoice.total - estimate.total) * 100 / estimate.total).quantize(Decimal('0.1'), ROUND_HALF_UP)}% over"
        if estimate.total > 0
        else "over"
    )
    detail = (
        f"invoice total {billed} is {over} estimate {estimate.number} ({agreed}); "
        f"the contract tolerates {tolerance.normalize():f}%"
    )
    clause = contract.clause("estimate_tolerance_percent")
    talk = (
        f"talk to the client before chasing invoice {invoice.number}: it bills {billed} against the accepted "
        f"estimate {estimate.number} of {agreed}; no reminder or fee goes out until the difference is agreed"
    )
    return (
        Skip(invoice.connection, invoice.number, SkipCode.EXCEEDS_ESTIMATE, detail, clause),
        Warning(invoice.connection, invoice.number, WarningCode.EXCEEDS_ESTIMATE, talk),
    )


def _ref(invoice: Invoice, effective_due: date | None) -> InvoiceRef:
    return InvoiceRef(
        id=invoice.id,
        number=invoice.number,
        customer=invoice.customer.name,
        currency=invoice.currency,
        total=invoice.total,
        amount_due=invoice.amount_due,
        due_date=invoice.due_date,
        effective_due_date=effective_due,
    )


def _today_for(today: date | Mapping[str, date], contract: Contract | None) -> date:
    if isinstance(today, date):
        return today
    if contract is None:
        return max(today.values())
    return today[contract.name]


class _Renegotiations:
    """Renegotiation requests in the order they were made: decisions, effective due dates, actions."""

    def __init__(self) -> None:
        self.effective_due: dict[tuple[str, str], date] = {}
        self.by_project: dict[str, list[RenegotiationRequest]] = {}
        self.by_invoice: dict[tuple[str, str], list[RenegotiationRequest]] = {}

    def accept(self, record: RenegotiationRequest, project: str, invoice_key: tuple[str, str]) -> None:
        self.by_project.setdefault(project, []).append(record)
        self.by_invoice.setdefault(invoice_key, []).append(record)
        self.effective_due[invoice_key] = record.new_due_date


def _renegotiation_key(kind: ActionKind, connection: str, invoice_id: str, ordinal: int) -> str:
    if kind is ActionKind.UPDATE_DUE_DATE:
        base = f"renegotiation:{connection}:{invoice_id}"
        return base if ordinal == 1 else f"{base}:{ordinal}"
    return f"renegotiation_refused:{connection}:{invoice_id}:{ordinal}"


class Evaluated(NamedTuple):
    """What the contracts call for on one invoice: its actions, skips and warnings (renegotiations aside).

    `evaluate_each` gives one per invoice, and takes one back in place of an invoice whose inputs are
    unchanged: the invoice itself, its ledger entries, the terms and the day (bridge.evaluations keys them).
    """

    actions: tuple[Action, ...]
    skips: tuple[Skip, ...]
    warnings: tuple[Warning, ...]


def evaluate(
    invoices: Sequence[Invoice],
    terms: Terms,
    history: Iterable[HistoryEntry] | History = (),
    renegotiations: Iterable[RenegotiationRequest] = (),
    today: date | Mapping[str, date] = date.min,
    errors: Iterable[RecordError] = (),
) -> Plan:
    """Decide what the contracts call for today on every invoice (docs/policy.md §1-6)."""
    return _evaluate(invoices, terms, history, renegotiations, today, errors, None)


def evaluate_each(
    entries: Sequence[Invoice | Evaluated],
    terms: Terms,
    history: Iterable[HistoryEntry] | History = (),
    renegotiations: Iterable[RenegotiationRequest] = (),
    today: date | Mapping[str, date] = date.min,
    errors: Iterable[RecordError] = (),
) -> tuple[Plan, list[Evaluated]]:
    """`evaluate`, and what each entry came to, in the entries' order.

    An entry is an invoice to evaluate, or the `Evaluated` an earlier call gave for an invoice whose inputs
    have not changed since: the same invoice (payments included), the same ledger entries for it, the same
    terms and the same day. It is taken as it is, so the plan is the one evaluating that invoice again gives.
    An invoice a renegotiation request names must be given as an invoice (the requests are decided anew), and so
    must every invoice when a contract escalates (`escalate_from_step`: its warnings gather invoices across the
    book).
    """
    each: list[Evaluated] = []
    plan = _evaluate(entries, terms, history, renegotiations, today, errors, each)
    return plan, each


def evaluate_stream(
    invoices: Sequence[Invoice],
    terms: Terms,
    history: Iterable[HistoryEntry] | History,
    renegotiations: Iterable[RenegotiationRequest],
    today: date | Mapping[str, date],
    errors: Iterable[RecordError] = (),
) -> PlanStream:
    """`evaluate`, as a plan written while it is evaluated (`bridge --json evaluate`): the same plan, byte for byte,
    without holding its actions and skips.

    The invoices are evaluated in plan order (connection, then invoice number), those that share a place in it
    together, so each batch of actions and skips follows the one before; what depends on the order of the input
    (the first reminder of a connection sent as the provider's e-mail, the first invoice of an escalation warning)
    is kept by input position, as `evaluate` sees it.
    """
    run, reneg = _start(invoices, terms, history, renegotiations, today)

    def place(index: int) -> tuple[str, tuple[int | str, ...]]:
        return invoices[index].connection, natural_key(invoices[index].number)

    order = sorted(range(len(invoices)), key=place)  # the keys are freed once sorted: made again as needed
    # Renegotiations are decided first (their requests span invoices): their items join their invoice's batch.
    early: dict[tuple[str, tuple[int | str, ...]], tuple[list[Action], list[Skip]]] = {}
    for action in reneg.actions:
        early.setdefault((action.connection, natural_key(action.invoice.number)), ([], []))[0].append(action)
    for skip in reneg.skips:
        early.setdefault((skip.connection, natural_key(skip.invoice)), ([], []))[1].append(skip)
    found: list[tuple[int, list[Warning]]] = []

    def groups() -> Iterator[tuple[list[Action], list[Skip]]]:
        at, end = 0, len(order)
        while at < end:
            here, first = place(order[at]), at
            renegotiated = early.pop(here, None)
            actions, skips = renegotiated or ([], [])
            while at < end and (at == first or place(order[at]) == here):
                index = order[at]
                warnings: list[Warning] = []
                run.invoice(invoices[index], index, actions, skips, warnings)
                if warnings:
                    found.append((index, warnings))
                at += 1
            if renegotiated is None and at == first + 1:
                # One invoice alone gives its actions and skips in plan order already: fee occurrences, then the
                # reminder step (and the steps it supersedes, then the one held back), keys ascending.
                yield actions, skips
            else:
                natural = NaturalKeys()  # one place's numbers only: the keys of the whole input would cost memory
                yield sorted_actions(actions, natural), sorted_skips(skips, natural)

    def rest() -> tuple[list[Warning], list[RecordError]]:
        found.sort(key=itemgetter(0))
        warnings = [*reneg.warnings, *(w for _, some in found for w in some), *run.closing_warnings()]
        return sorted_warnings(warnings, NaturalKeys()), sorted_errors(errors)

    return PlanStream(_as_of(today), groups(), rest)


def _evaluate(
    entries: Sequence[Invoice | Evaluated],
    terms: Terms,
    history: Iterable[HistoryEntry] | History,
    renegotiations: Iterable[RenegotiationRequest],
    today: date | Mapping[str, date],
    errors: Iterable[RecordError],
    each: list[Evaluated] | None,
) -> Plan:
    run, reneg = _start(entries, terms, history, renegotiations, today)
    actions, skips, warnings = list(reneg.actions), list(reneg.skips), list(reneg.warnings)
    for index, inv in enumerate(entries):
        if isinstance(inv, Evaluated):  # an unchanged invoice's result, taken as it is
            actions += inv.actions
            skips += inv.skips
            warnings += inv.warnings
            if each is not None:
                each.append(inv)
            for action in inv.actions:
                run.note_template_mail(action, index)
            continue
        mark = len(actions), len(skips), len(warnings)
        run.invoice(inv, index, actions, skips, warnings)
        if each is not None:
            each.append(Evaluated(tuple(actions[mark[0] :]), tuple(skips[mark[1] :]), tuple(warnings[mark[2] :])))
    warnings += run.closing_warnings()
    del run  # the ledger index is not needed to sort the plan: free it before the sort's keys are made
    return Plan.build(_as_of(today), actions, skips, warnings, errors)


def _as_of(today: date | Mapping[str, date]) -> date:
    return today if isinstance(today, date) else max(today.values(), default=date.min)


_Today = date | Mapping[str, date]  # a day, or a day per contract name


def _start(
    entries: Sequence[Invoice | Evaluated], terms: Terms, history: Iterable[HistoryEntry] | History,
    renegotiations: Iterable[RenegotiationRequest], today: _Today
) -> tuple[_Run, _Replay]:  # fmt: skip
    """What every evaluation does first: the ledger indexed, the renegotiations replayed."""
    if not isinstance(today, date | Mapping) or (isinstance(today, date) and today == date.min):
        raise ValueError("evaluate needs `today` (a date, or a date per contract name)")
    hist = history if isinstance(history, History) else History(history)
    scope = _Scope(terms)
    requests = list(renegotiations)
    requested = _requested((e for e in entries if isinstance(e, Invoice)), requests)
    reneg = _plan_renegotiations(requests, requested, scope, hist, today)
    return _Run(terms, scope, hist, reneg.effective_due, today), reneg


class _Run:
    """One evaluation of invoice after invoice: what it works out per contract, and the warnings it gathers across
    invoices, each kept from the invoice first in the input (`index`), whatever order they are evaluated in."""

    def __init__(
        self,
        terms: Terms,
        scope: _Scope,
        hist: History,
        effective_due: Mapping[tuple[str, str], date],
        today: date | Mapping[str, date],
    ) -> None:
        self.terms, self.scope, self.hist, self.effective_due, self.today = terms, scope, hist, effective_due, today
        self.per_contract: dict[str, _PerContract] = {}
        # Per connection and provider: a reminder sent as the provider's e-mail, and its input position.
        self.template_mail: dict[tuple[str, str], tuple[int, Action]] = {}
        self.escalation = _Escalation()

    def invoice(
        self, inv: Invoice, index: int, actions: list[Action], skips: list[Skip], warnings: list[Warning]
    ) -> None:
        """Evaluate one invoice, the `index`th of the input: its actions, skips and warnings added to the lists."""
        contract, skip = self.scope.check(inv)
        over = None if skip is not None or contract is None else over_estimate(inv, contract)
        if skip is not None:
            skips.append(skip)
            return
        if over is not None:
            skips.append(over[0])
            warnings.append(over[1])
            return
        assert contract is not None and inv.due_date is not None
        run = self.per_contract.get(contract.name)
        if run is None:
            run = self.per_contract[contract.name] = _PerContract(
                contract, _today_for(self.today, contract), self.terms
            )
        effective_due = self.effective_due.get((inv.connection, inv.id), inv.due_date)
        inv_hist = self.hist.for_invoice(inv.connection, inv.id)
        fee_mode = self.terms.fee_modes.get(inv.connection)
        # Fees come first: a reminder states the balance the fees of this same run leave (POLICY §4).
        fees = _late_fees(inv, run, effective_due, inv_hist, fee_mode)
        actions += fees.actions
        skips += fees.skips
        warnings += fees.warnings
        ref = fees.actions[0].invoice if fees.actions else None
        reminder, reminder_skips = _reminder(inv, run, effective_due, inv_hist, ref, fees.line_total)
        skips += reminder_skips
        if reminder is not None:
            actions.append(reminder)
            self.note_template_mail(reminder, index)
            if run.contract.reminders.escalate_from_step is not None:
                self.escalation.note(inv, reminder, run, index)

    def note_template_mail(self, action: Action, index: int) -> None:
        """Keep the first reminder (in the input) of each connection sent as the provider's own e-mail."""
        if action.kind is ActionKind.REMINDER and action.sends == "provider_invoice_email":
            key = (action.connection, action.provider)
            if _first(self.template_mail, key, index):
                self.template_mail[key] = (index, action)

    def closing_warnings(self) -> list[Warning]:
        """The warnings said once per connection or client, in the order of the input that gave them."""
        mail = sorted(self.template_mail.values(), key=itemgetter(0))
        channels = self.terms.provider_channels
        return [_template_mail_warning(a, channels) for _, a in mail] + self.escalation.warnings()


def _requested(invoices: Iterable[Invoice], requests: Sequence[RenegotiationRequest]) -> _Requested:
    """The invoices renegotiation requests name, by id and by number (only those: the full index costs memory)."""
    by_id: dict[tuple[str, str], Invoice] = {}
    by_number: dict[tuple[str, str], Invoice] = {}
    if requests:
        wanted_ids = {(r.connection, r.invoice_id) for r in requests if r.invoice_id is not None}
        wanted_numbers = {(r.connection, r.invoice_number) for r in requests if r.invoice_id is None}
        for inv in invoices:
            if (inv.connection, inv.id) in wanted_ids:
                by_id[(inv.connection, inv.id)] = inv
            if (inv.connection, inv.number) in wanted_numbers:
                by_number[(inv.connection, inv.number)] = inv
    return _Requested(by_id, by_number)


class _Requested(NamedTuple):
    by_id: dict[tuple[str, str], Invoice]
    by_number: dict[tuple[str, str], Invoice]

    def find(self, request: RenegotiationRequest) -> Invoice | None:
        if request.invoice_id is not None:
            return self.by_id.get((request.connection, request.invoice_id))
        return self.by_number.get((request.connection, request.invoice_number or ""))


class _Fees(NamedTuple):
    """One invoice's late-fee decisions, and the total the line-form fees add to its balance."""

    actions: list[Action]
    skips: list[Skip]
    warnings: list[Warning]
    line_total: Decimal


_NO_FEES = _Fees([], [], [], Decimal(0))


def _late_fees(
    inv: Invoice, run: _PerContract, effective_due: date, inv_hist: InvoiceHistory, fee_mode: str | None
) -> _Fees:
    """The late-fee occurrences owed on one invoice (POLICY §5), as actions and skips."""
    late_fee = run.late_fee
    if late_fee is None:
        return _NO_FEES
    outcome = decide_late_fees(inv, effective_due, late_fee, inv_hist, run.today)
    warnings = [_foreign_fee_warning(inv, outcome)] if outcome.foreign else []
    if not outcome.charges:
        return _Fees([], [], warnings, Decimal(0)) if warnings else _NO_FEES
    clause = run.late_fee_clause
    form = "line" if (fee_mode or late_fee.mode) == "line" and inv.editable else "invoice"
    actions: list[Action] = []
    skips: list[Skip] = []
    ref: InvoiceRef | None = None
    conn, number, provider, item = inv.connection, inv.number, inv.provider, late_fee.item
    prefix = f"late_fee:{conn}:{inv.id}:"
    forgiven_from, why = inv_hist.fees_forgiven or (0, "")
    fee = ActionKind.LATE_FEE
    for k, on, amount, _, reason, skip in outcome.charges:
        if forgiven_from and k >= forgiven_from:
            detail = f"every late fee on this invoice from occurrence {forgiven_from} on was forgiven for good: {why}"
            skips.append(Skip(conn, number, SkipCode.FORGIVEN, detail, clause, f"{prefix}{k}"))
            continue
        if skip is not None:
            skips.append(Skip(conn, number, SkipCode(skip), reason, clause, f"{prefix}{k}"))
            continue
        if ref is None:
            ref = _ref(inv, effective_due)
        # Positional, in Action's field order up to `description` (a keyword call costs more, per fee):
        # occurrence, occurrence_date, amount, form, item, description.
        actions.append(
            Action(
                f"{prefix}{k}", fee, conn, provider, ref, clause, reason, k, on, amount, form, item,
                fee_description(late_fee, number, k, on),
            )
        )  # fmt: skip
    line_total = sum((a.amount for a in actions if a.amount is not None), Decimal(0)) if form == "line" else Decimal(0)
    return _Fees(actions, skips, warnings, line_total)


def _foreign_fee_warning(inv: Invoice, outcome: FeeOutcome) -> Warning:
    described = "; ".join(f"{line.description or line.item or 'fee line'} {line.amount}" for line in outcome.foreign)
    slots = ", ".join(str(k) for k in outcome.foreign_slots)
    return Warning(
        inv.connection,
        inv.number,
        WarningCode.FOREIGN_LATE_FEE,
        f"late-fee line(s) the bridge did not write: {described}; "
        f"counted as occurrence(s) {slots} and towards the caps",
    )


def _reminder(
    inv: Invoice,
    run: _PerContract,
    effective_due: date,
    inv_hist: InvoiceHistory,
    ref: InvoiceRef | None,
    line_fees: Decimal,
) -> tuple[Action | None, list[Skip]]:
    """The one reminder due on an invoice today, if any (POLICY §4), and the steps skipped on the way."""
    step = run.latest_step(effective_due)
    decision = None if step is None else decide_step(step, run.contract.reminders, inv_hist, run.today)
    if decision is None:
        return None, []
    clause = run.reminders_clause
    conn, number = inv.connection, inv.number
    prefix = f"reminder:{conn}:{inv.id}:"
    step = decision.step
    superseded = SkipCode.SUPERSEDED
    skips = [Skip(conn, number, superseded, why, clause, f"{prefix}{n}") for n, why in run.superseded(decision)]
    if decision.blocked is not None:
        blocked_clause = f"{clause}.{decision.blocked}" + ("_days" if decision.blocked == "min_gap" else "")
        skips.append(
            Skip(
                inv.connection,
                inv.number,
                SkipCode(decision.blocked),
                decision.blocked_detail,
                blocked_clause,
                f"{prefix}{step.number}",
            )
        )
        return None, skips
    if not inv.customer.email:
        detail = (
            f"step {step.number} is due but the client has no e-mail address; add one at the provider "
            "and the latest due step goes out on the next run"
        )
        skips.append(Skip(inv.connection, inv.number, SkipCode.NO_EMAIL, detail, clause, f"{prefix}{step.number}"))
        return None, skips
    ref = ref or _ref(inv, effective_due)
    return _reminder_action(inv, run, ref, effective_due, step, prefix, inv.amount_due + line_fees), skips


def _template_mail_warning(reminder: Action, channels: Mapping[str, Delivery]) -> Warning:
    """Once per connection whose reminders go out as the provider's own invoice e-mail."""
    what = reminder_delivery(reminder.provider, reminder.channel or "provider", channels).what
    return Warning(
        reminder.connection,
        None,
        WarningCode.PROVIDER_EMAIL,
        f"reminders through this connection: {what}; the plan shows no message text for them because none of it "
        "is sent. To send the contract's own words, use the SMTP channel (the firm's own mailbox): "
        'reminders.channel = "smtp" and an [smtp] section.',
    )


class _PerContract:
    """What one evaluation works out once per contract rather than once per invoice."""

    __slots__ = (
        "_deliveries",
        "_step_reasons",
        "_steps",
        "_superseded",
        "channels",
        "contract",
        "fee_terms",
        "firm_name",
        "late_fee",
        "late_fee_clause",
        "reminders_clause",
        "today",
    )

    def __init__(self, contract: Contract, today: date, terms: Terms) -> None:
        self.contract = contract
        self.today = today
        self.firm_name = terms.firm_name
        self.channels = terms.provider_channels
        self.reminders_clause = contract.clause("reminders")
        self.late_fee_clause = contract.clause("late_fee")
        late_fee = contract.late_fee
        self.late_fee: LateFee | None = late_fee if late_fee is not None and late_fee.charges_anything else None
        self._steps: dict[date, Step | None] = {}
        self.fee_terms = fee_terms(late_fee)  # what reminders restate
        self._superseded: dict[tuple[int, tuple[int, ...]], tuple[tuple[int, str], ...]] = {}
        self._deliveries: dict[str, Delivery] = {}
        self._step_reasons: dict[tuple[int, date, date], str] = {}

    def delivery(self, provider: str) -> Delivery:
        """What this contract's reminders put in front of a client of `provider`."""
        delivery = self._deliveries.get(provider)
        if delivery is None:
            channel = self.contract.reminders.channel
            delivery = self._deliveries[provider] = reminder_delivery(provider, channel, self.channels)
        return delivery

    def step_reason(self, step: Step, effective_due: date) -> str:
        """How a reminder's reason begins, up to the amount it states (the same for invoices due the same day)."""
        key = (step.number, step.date, effective_due)
        text = self._step_reasons.get(key)
        if text is None:
            days_overdue = (self.today - effective_due).days
            when = f"{-days_overdue} days before" if days_overdue < 0 else f"{days_overdue} days after"
            text = self._step_reasons[key] = (
                f"step {step.number} fell on {step.date.isoformat()}, {when} the due date "
                f"{effective_due.isoformat()}; amount due "
            )
        return text

    def superseded(self, decision: ReminderDecision) -> tuple[tuple[int, str], ...]:
        """Each step the decision supersedes, with why it is skipped (the decided step replaces it). The texts are
        made once per (steps, latest step) and shared by every invoice (a large plan holds several per invoice)."""
        key = (decision.step.number, decision.superseded)
        pairs = self._superseded.get(key)
        if pairs is None:
            latest = decision.step.number
            pairs = self._superseded[key] = tuple(
                (n, f"step {n} was never sent; step {latest} replaces it") for n in decision.superseded
            )
        return pairs

    def latest_step(self, effective_due: date) -> Step | None:
        """The latest reminder step due today for an invoice due on `effective_due` (invoices share due dates)."""
        try:
            return self._steps[effective_due]
        except KeyError:
            step = self._steps[effective_due] = latest_due_step(effective_due, self.contract.reminders, self.today)
            return step


def _reminder_action(
    inv: Invoice,
    run: _PerContract,
    ref: InvoiceRef,
    effective_due: date,
    step: Step,
    prefix: str,
    balance: Decimal,
) -> Action:
    """The reminder of `step`, stating `balance` (what the invoice owes once this run's fees are on it)."""
    contract, today, terms = run.contract, run.today, run.contract.reminders
    message: Literal["upcoming", "overdue"] = "upcoming" if step.date < effective_due else "overdue"
    delivery = run.delivery(inv.provider)
    subject = body = None
    cc, bcc = _copies(inv.customer, terms.escalate_from_step, step.number, delivery)
    if delivery.sends == "contract_text":  # the plan shows message text only when that text is what is sent
        rendered = render_message(
            MessageContext(
                message=message,
                customer_name=inv.customer.name,
                invoice_number=inv.number,
                currency=inv.currency,
                amount_due=balance,
                total=inv.total + (balance - inv.amount_due),
                due_date=effective_due,
                today=today,
                days_overdue=(today - effective_due).days,
                clause=run.reminders_clause,
                firm_name=run.firm_name,
                fee_added=balance - inv.amount_due,
                late_fee=run.fee_terms,
                step=step.number,
            ),
            template_set=terms.template,
            locale=contract.locale,
        )
        subject, body = rendered.subject, rendered.body
    after_fees = " after this run's late fees" if balance != inv.amount_due else ""
    return Action(
        key=f"{prefix}{step.number}",
        kind=ActionKind.REMINDER,
        connection=inv.connection,
        provider=inv.provider,
        invoice=ref,
        clause=run.reminders_clause,
        reason=f"{run.step_reason(step, effective_due)}{format_amount(balance, inv.currency)}{after_fees}",
        balance=balance,
        step=step.number,
        step_date=step.date,
        message=message,
        channel=terms.channel,
        to=inv.customer.email,
        cc=cc,
        bcc=bcc,
        sends=delivery.sends,
        subject=subject,
        body=body,
    )


def other_contacts(customer: Customer) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The client's other billing contacts as (copies, blind copies): each address once, never the `to` address
    (compared case-insensitively), a copy before a blind copy."""
    seen = {customer.email.casefold()} if customer.email else set()
    out: tuple[list[str], list[str]] = ([], [])
    for kind, addresses in enumerate((customer.cc, customer.bcc)):
        for address in addresses:
            if address and address.casefold() not in seen:
                seen.add(address.casefold())
                out[kind].append(address)
    return tuple(out[0]), tuple(out[1])


def _copies(customer: Customer, from_step: int | None, step: int, delivery: Delivery) -> tuple[tuple[str, ...], ...]:
    """Who a reminder copies (docs/policy.md §4, `escalate_from_step`): the other contacts from that step on, on a
    channel that can copy; on a provider that copies them on every e-mail, at every step (the plan shows what
    really goes out). Nobody when the contract does not escalate."""
    if from_step is None or delivery.copies == "none" or (step < from_step and delivery.copies != "always"):
        return (), ()
    return other_contacts(customer)


class _Escalation:
    """The escalation warnings of one evaluation, each said once (docs/policy.md §4): `no_escalation_contact` once
    per client (connection and customer id) naming its invoices; a channel that cannot copy, or a provider that
    copies before the escalation step, once per connection (like `provider_email_template`)."""

    def __init__(self) -> None:
        # Each kept with the input position of the invoice that gave it: the first in the input is the one said.
        self.alone: dict[tuple[str, str], tuple[int, Invoice, str, list[tuple[int, str]]]] = {}
        self.cannot_copy: dict[str, tuple[int, Warning]] = {}
        self.early: dict[str, tuple[int, Warning]] = {}

    def note(self, inv: Invoice, reminder: Action, run: _PerContract, index: int) -> None:
        from_step, step = run.contract.reminders.escalate_from_step, reminder.step
        assert from_step is not None and step is not None
        delivery = run.delivery(inv.provider)
        others = any(other_contacts(inv.customer))
        clause = f"{run.reminders_clause}.escalate_from_step"
        conn = inv.connection
        if step >= from_step and not others:
            entry = self.alone.get((conn, inv.customer.id))
            if entry is None or index < entry[0]:
                entry = self.alone[(conn, inv.customer.id)] = (index, inv, clause, entry[3] if entry else [])
            entry[3].append((index, inv.number))
        elif step >= from_step and delivery.copies == "none" and _first(self.cannot_copy, conn, index):
            detail = (
                f"{clause}: reminders through this connection cannot copy the client's other billing contacts "
                f"({delivery.what}); they go to the client's own address only. The SMTP channel can copy them: "
                'reminders.channel = "smtp".'
            )
            self.cannot_copy[conn] = index, Warning(conn, None, WarningCode.CANNOT_COPY, detail)
        elif step < from_step and others and delivery.copies == "always" and _first(self.early, conn, index):
            detail = (
                f"{clause} = {from_step}: {inv.provider} copies the client's other billing contacts on every invoice "
                f"e-mail it sends, so reminders before step {from_step} reach them too (the plan lists them). "
                'To copy them only from that step on, use the SMTP channel: reminders.channel = "smtp".'
            )
            self.early[conn] = index, Warning(conn, None, WarningCode.PROVIDER_COPIES, detail)

    def warnings(self) -> list[Warning]:
        out = [w for _, w in sorted(self.cannot_copy.values(), key=itemgetter(0))]
        out += [w for _, w in sorted(self.early.values(), key=itemgetter(0))]
        for (conn, _), (_, inv, clause, noted) in sorted(self.alone.items(), key=lambda item: min(item[1][3])[0]):
            numbers = [number for _, number in sorted(noted)]
            customer = inv.customer
            who = f"{customer.name} ({customer.id})" if customer.name else customer.id
            out.append(
                Warning(
                    conn,
                    None,
                    WarningCode.NO_ESCALATION_CONTACT,
                    f"{clause}: client {who} has no other billing contact to copy; "
                    f"{'the reminder on invoice' if len(numbers) == 1 else 'the reminders on invoices'} "
                    f"{', '.join(sorted(numbers, key=natural_key))} {'goes' if len(numbers) == 1 else 'go'} to "
                    f"{customer.email} only. Add a second billing contact at the provider to escalate.",
                )
            )
        return out


_K = TypeVar("_K")


def _first(kept: Mapping[_K, tuple[int, object]], key: _K, index: int) -> bool:
    """Whether the invoice at input position `index` comes before the one that gave what is kept for `key`, if
    anything is (each such entry starts with that invoice's position)."""
    entry = kept.get(key)
    return entry is None or index < entry[0]


class _Replay(NamedTuple):
    """The renegotiations replayed: each invoice's effective due date, and what the requests call for."""

    effective_due: dict[tuple[str, str], date]
    actions: list[Action]
    skips: list[Skip]
    warnings: list[Warning]


def _plan_renegotiations(
    requests: Sequence[RenegotiationRequest],
    invoices: _Requested,
    scope: _Scope,
    hist: History,
    today: date | Mapping[str, date],
) -> _Replay:
    """Replay renegotiations in request order: decided ones as recorded, undecided ones decided now."""
    state = _Renegotiations()
    out = _Replay(state.effective_due, [], [], [])
    for request, inv, ordinal in _in_request_order(requests, invoices):
        if inv is None:
            detail = f"renegotiation requested on {request.requested_on} for an invoice that was not read"
            where = request.invoice_number or request.invoice_id
            out.warnings.append(Warning(request.connection, where, WarningCode.UNKNOWN_INVOICE, detail))
            continue
        contract, skip = scope.check(inv)
        day = _today_for(today, contract)
        if request.requested_on > day:
            continue  # not made yet as of `today`
        invoice_key = (inv.connection, inv.id)
        if contract is None:
            if request.status == "accepted" and request.project is not None:
                state.accept(request, request.project, invoice_key)  # still counts for the project
            elif request.status is None and skip is not None:
                detail = f"renegotiation request of {request.requested_on} not decided: {skip.detail}"
                out.skips.append(Skip(inv.connection, inv.number, skip.code, detail, skip.clause))
            continue
        project = request.project or project_of(inv, contract)
        in_project = state.by_project.get(project, [])
        record, why = _decided(request, inv, contract, in_project, state.by_invoice.get(invoice_key, []))
        earlier = in_project[-1] if in_project else None
        if record.status == "accepted":
            state.accept(record, project, invoice_key)
        kind = ActionKind.UPDATE_DUE_DATE if record.status == "accepted" else ActionKind.RENEGOTIATION_REFUSED
        key = request.key or _renegotiation_key(kind, inv.connection, inv.id, ordinal)
        if key not in hist:
            out.actions.append(
                _renegotiation_action(inv, contract, record, kind, key, why, earlier, day, scope.terms.firm_name)
            )
    return out


def _in_request_order(
    requests: Sequence[RenegotiationRequest], invoices: _Requested
) -> list[tuple[RenegotiationRequest, Invoice | None, int]]:
    """Each request with its invoice and its ordinal, in the order the requests were made.

    A request's identity is its place among the requests on its invoice, in the order they were recorded
    (or listed): the same ordinal `decide_request` gave it when it was recorded. Decisions are replayed in
    the order the requests were made, ties broken by what they ask.
    """
    resolved: list[tuple[RenegotiationRequest, Invoice | None, int]] = []
    count_on_invoice: dict[tuple[str, str], int] = {}
    for request in requests:
        inv = invoices.find(request)
        ordinal = 0
        if inv is not None:
            ordinal = count_on_invoice.get((inv.connection, inv.id), 0) + 1
            count_on_invoice[(inv.connection, inv.id)] = ordinal
        resolved.append((request, inv, ordinal))
    resolved.sort(
        key=lambda item: (
            item[0].requested_on,
            item[0].connection,
            item[0].invoice_id or "",
            item[0].invoice_number or "",
            item[0].new_due_date,
            item[0].note,
        )
    )
    return resolved


def _decided(
    request: RenegotiationRequest,
    inv: Invoice,
    contract: Contract,
    in_project: Sequence[RenegotiationRequest],
    on_invoice: Sequence[RenegotiationRequest],
) -> tuple[RenegotiationRequest, str]:
    """The request as decided, and why: as recorded, or decided now as of the day it was made."""
    if request.status is None:
        return decide(request, inv, contract, in_project, on_invoice, request.requested_on)
    why = (
        f"due date moved to {request.new_due_date}"
        if request.status == "accepted"
        else f"refused ({request.reason}) on {request.decided_on or request.requested_on}"
    )
    return request, why


def _renegotiation_action(
    inv: Invoice,
    contract: Contract,
    record: RenegotiationRequest,
    kind: ActionKind,
    key: str,
    why: str,
    earlier: RenegotiationRequest | None,
    today: date,
    firm_name: str,
) -> Action:
    """The action a decided request calls for, with the message for the client (sent by the SMTP channel when the
    contract's reminders use it; otherwise handed to you, not sent)."""
    accepted = kind is ActionKind.UPDATE_DUE_DATE
    effective = record.new_due_date if accepted else (record.previous_due_date or inv.due_date)
    assert effective is not None or not accepted
    rendered = _renegotiation_message(inv, contract, record, accepted, effective, earlier, today, firm_name)
    by_smtp = contract.reminders.channel == "smtp" and bool(inv.customer.email)
    clause = contract.clause("renegotiation")
    if record.reason == "limit_reached":
        clause += ".max_per_project"
    elif record.reason == "extension_too_long":
        clause += ".max_extension_days"
    return Action(
        key=key,
        kind=kind,
        connection=inv.connection,
        provider=inv.provider,
        invoice=_ref(inv, record.new_due_date if accepted else effective),
        clause=clause,
        reason=f"request of {record.requested_on}: {why}",
        new_due_date=record.new_due_date if accepted else None,
        requested_due_date=None if accepted else record.new_due_date,
        refusal_reason=record.reason,
        to=inv.customer.email,
        # By the SMTP channel the answer goes to the client; otherwise it is handed to you to pass on.
        channel="smtp" if by_smtp else None,
        sends=SMTP.sends if by_smtp else NOT_SENT.sends,
        subject=rendered.subject,
        body=rendered.body,
    )


def _renegotiation_message(
    inv: Invoice,
    contract: Contract,
    record: RenegotiationRequest,
    accepted: bool,
    effective: date | None,
    earlier: RenegotiationRequest | None,
    today: date,
    firm_name: str,
) -> RenderedMessage:
    """The accepted or refused message, restating the clause (and the earlier renegotiation on limit_reached)."""
    limit = earlier is not None and record.reason == "limit_reached"
    return render_message(
        MessageContext(
            message="renegotiation_accepted" if accepted else "renegotiation_refused",
            customer_name=inv.customer.name,
            invoice_number=inv.number,
            currency=inv.currency,
            amount_due=inv.amount_due,
            total=inv.total,
            due_date=effective or today,
            today=today,
            days_overdue=(today - effective).days if effective else 0,
            clause=contract.clause("renegotiation"),
            firm_name=firm_name,
            renegotiation=renegotiation_terms(contract),
            new_due_date=record.new_due_date if accepted else None,
            requested_due_date=record.new_due_date,
            refusal_reason=record.reason,
            earlier_invoice=(earlier.invoice_number or earlier.invoice_id) if limit and earlier else None,
            earlier_date=(earlier.decided_on or earlier.requested_on) if limit and earlier else None,
        ),
        template_set=contract.reminders.template,
        locale=contract.locale,
    )


def decide_request(
    request: RenegotiationRequest,
    invoice: Invoice,
    terms: Terms,
    earlier: Iterable[RenegotiationRequest],
    history: Iterable[HistoryEntry] | History = (),
) -> tuple[RenegotiationRequest, Action]:
    """Decide one new renegotiation request at once (the `renegotiate` command), as of its request date.

    `earlier` are the requests already recorded; the returned action is the one the
    next plan would carry for this request (update_due_date or renegotiation_refused),
    with its message rendered. A ValueError says why no contract can decide it.
    """
    scope = _Scope(terms)
    contract = scope.contract_for(invoice)
    if contract is None:
        raise ValueError(
            f"no contract applies to invoice {invoice.number}'s customer {invoice.customer.name or invoice.customer.id}"
        )
    project = project_of(invoice, contract)
    ordered = sorted(earlier, key=lambda r: (r.requested_on, r.new_due_date, r.note))
    accepted = [r for r in ordered if r.status == "accepted" and r.requested_on <= request.requested_on]
    in_project = [r for r in accepted if (r.project or "") == project]
    on_invoice = [r for r in accepted if r.connection == invoice.connection and r.invoice_id == invoice.id]
    # Its identity: one more than the requests already recorded on this invoice, as the replay counts them.
    ordinal = 1 + sum(1 for r in ordered if r.connection == invoice.connection and r.invoice_id == invoice.id)
    record, why = decide(request, invoice, contract, in_project, on_invoice, request.requested_on)
    kind = ActionKind.UPDATE_DUE_DATE if record.status == "accepted" else ActionKind.RENEGOTIATION_REFUSED
    key = _renegotiation_key(kind, invoice.connection, invoice.id, ordinal)
    record = record.model_copy(update={"key": key})
    earlier_one = in_project[-1] if in_project else None
    action = _renegotiation_action(
        invoice, contract, record, kind, key, why, earlier_one, request.requested_on, terms.firm_name
    )
    return record, action


def contract_for(terms: Terms, invoice: Invoice) -> Contract | None:
    """The contract that governs an invoice's customer (docs/policy.md §1), whatever the invoice's state."""
    return _Scope(terms).contract_for(invoice)
