"""The normalized model every connector maps into and the policy engine reads.

Money is `Decimal` (never float), days are `date`. Models are frozen: a record
read from a provider is a fact, not something to patch in place.

The records that come by the hundred thousand (invoices, customers, lines, allocations,
ledger entries) are frozen pydantic dataclasses with slots: validated like the models, but
about 70 bytes an object instead of about 490 (no per-instance `__dict__`), and quicker to
read; the policy engine reads every one. Assigning to a field raises FrozenInstanceError.
"""

from __future__ import annotations

import datetime
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, field_validator
from pydantic.dataclasses import dataclass

from bridge.money import is_currency


def _no_float(value: Any) -> Any:
    """Money arrives as a string or an exact number; a binary float has already lost cents."""
    if isinstance(value, float):
        raise ValueError("money must be a string or an exact decimal, not a float")
    return value


Money = Annotated[Decimal, BeforeValidator(_no_float), Field(allow_inf_nan=False)]


class InvoiceStatus(StrEnum):
    """Lifecycle of an invoice, derived by each mapping from the provider's own fields."""

    DRAFT = "draft"
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    VOID = "void"
    DELETED = "deleted"

    @property
    def is_open(self) -> bool:
        """Open or partially paid: the only states the contract acts on."""
        return self in (InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


_RECORD = ConfigDict(extra="forbid", defer_build=True)


@dataclass(frozen=True, slots=True, kw_only=True, config=_RECORD)
class Customer:
    """The client an invoice is addressed to.

    `cc` and `bcc` are the client's other billing contacts (QuickBooks' `BillEmailCc` / `BillEmailBcc`, Xero's
    contact persons included in e-mails, FreshBooks' client contacts): the reminders of an escalating contract
    copy them from its `escalate_from_step` on (docs/policy.md §4).
    """

    id: str
    name: str = ""
    email: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True, config=_RECORD)
class LineItem:
    """One line of an invoice. `provider_late_fee` marks a fee the provider added on its own."""

    id: str | None = None
    item: str | None = None
    description: str = ""
    amount: Money
    provider_late_fee: bool = False


@dataclass(frozen=True, slots=True, kw_only=True, config=_RECORD)
class Allocation:
    """Part of a payment or credit applied to one invoice, on a given day."""

    date: datetime.date  # spelled out: the slot named `date` would hide the type
    amount: Money
    kind: Literal["payment", "credit"] = "payment"
    payment_id: str | None = None
    invoice_id: str | None = None


class Payment(_Frozen):
    """A payment as the provider records it; one payment may pay several invoices."""

    id: str
    connection: str
    customer_id: str | None = None
    date: date
    amount: Money
    currency: str
    allocations: tuple[Allocation, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True, config=_RECORD)
class Estimate:
    """The accepted estimate (quote) an invoice was made from: what the client agreed to pay, in the
    invoice's currency (QuickBooks' linked Estimate, Xero's quote, FreshBooks' estimate)."""

    number: str
    total: Money


@dataclass(frozen=True, slots=True, kw_only=True, config=_RECORD)
class EstimateRecord:
    """An estimate (quote) as pulled from a provider, normalized: what the store keeps to attach to invoices.

    `keys` are the link texts an invoice names it by (`Invoice.estimate_keys`), in the provider's own terms
    (bridge.mapping.<provider>); `accepted` is False for a draft, sent, declined or deleted one, which no
    invoice is checked against."""

    id: str
    connection: str
    keys: tuple[str, ...] = ()
    number: str
    currency: str
    total: Money
    accepted: bool


@dataclass(frozen=True, slots=True, kw_only=True, config=_RECORD)
class Invoice:
    """A sales invoice, normalized.

    `editable` is False when the provider refuses edits (Xero: a payment or credit
    is allocated, or the period is locked); a fee line then becomes a fee invoice.
    `fee_for` is set on a separate fee invoice the bridge created for another one.
    """

    id: str
    number: str
    connection: str
    provider: str = ""
    customer: Customer
    currency: str
    issue_date: date | None = None
    due_date: date | None
    total: Money
    amount_due: Money
    status: InvoiceStatus
    payments: tuple[Allocation, ...] = ()
    lines: tuple[LineItem, ...] = ()
    project: str | None = None
    disputed: bool = False
    is_sale: bool = True
    editable: bool = True
    fee_for: str | None = None
    estimate: Estimate | None = None  # docs/policy.md §2: an invoice well over it is not chased
    # How the invoice names the estimate(s) it was made from (matched to `EstimateRecord.keys` when it is read)
    estimate_keys: tuple[str, ...] = ()

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        if not is_currency(value):
            raise ValueError(f"{value!r} is not an ISO 4217 currency code")
        return value


@dataclass(frozen=True, slots=True, kw_only=True, config=ConfigDict(extra="ignore", defer_build=True))
class HistoryEntry:
    """An action already carried out (the ledger's `applied` list, or a fee line found on an invoice).

    Extra fields of the ledger (response ids, timestamps) are ignored.
    """

    key: str
    kind: str
    amount: Money | None = None
    applied_on: date | None = None
    note: str | None = None  # why, where it matters to a plan (a fee forgiven: who and why)


class RenegotiationRequest(_Frozen):
    """A client's request to move an invoice's due date, and once decided, the decision.

    `status` is None until decided. `original_due_date` is the invoice's due date
    before any renegotiation (the provider's due date changes when the new one is
    written back). `project` is the renegotiation scope it counted against. `key` is
    the request's identity, the key of the one action it yields (POLICY §6), set when
    it is recorded; a request without one gets the key its place among the requests
    on the same invoice gives it (the order they were recorded or listed in).
    """

    connection: str
    invoice_id: str | None = None
    invoice_number: str | None = None
    requested_on: date
    new_due_date: date
    note: str = ""
    requested_by: str = ""
    key: str | None = None
    # the decision
    status: Literal["accepted", "refused"] | None = None
    reason: str | None = None
    decided_on: date | None = None
    original_due_date: date | None = None
    previous_due_date: date | None = None
    project: str | None = None


INVOICE_JSON: TypeAdapter[Invoice] = TypeAdapter(Invoice)
"""An invoice to and from JSON (`dump_json`, `validate_json`, `validate_python`): what the store keeps."""
