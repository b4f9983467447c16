"""Mapping helpers shared by every provider (pure)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ParamSpec, TypeVar

from bridge.errors import DataError
from bridge.model import Allocation, Customer, Estimate, EstimateRecord, Invoice, Payment
from bridge.money import is_currency, minor_units, quantum

P = ParamSpec("P")
R = TypeVar("R")


def refuses_malformed(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A mapping function that refuses a malformed record only with `DataError` (the caller quarantines it).

    The mappings name the field for every problem they foresee; a payload hostile in a way nobody
    foresaw (a list where a string was due, an object for a number) must still be a refusal of that
    record, never an exception that stops the whole pull.
    """

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except DataError:
                raise
            except (TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError) as exc:
                raise DataError(f"{what}: malformed record ({type(exc).__name__}: {str(exc)[:200]})") from None

        return guarded

    return wrap


_FEE_FOR = re.compile(r"\(bridge fee_for=([^)\s]+)\)")


def fee_mark(invoice_id: str) -> str:
    """The mark a separate fee invoice carries in its note or reference: the id of the invoice it charges."""
    return f"(bridge fee_for={invoice_id})"


def fee_for(note: str | None) -> str | None:
    """The invoice id in a fee invoice's mark (`fee_mark`), if `note` carries one."""
    found = _FEE_FOR.search(note or "")
    return found.group(1) if found else None


def customer(customer_id: str, name: str, email: Any, cc: tuple[str, ...] = ()) -> Customer:
    """The model's customer from a provider's fields: an e-mail that is not a non-empty text is none."""
    return Customer(id=customer_id, name=name, email=email if isinstance(email, str) and email else None, cc=cc)


def email_list(values: Iterable[Any]) -> tuple[str, ...]:
    """The e-mail addresses among `values` (each a string, possibly several addresses separated by commas or
    semicolons), each once, in order; anything that is not a string or holds no `@` is left out."""
    out: list[str] = []
    for value in values:
        if not isinstance(value, str):
            continue
        for part in value.replace(";", ",").split(","):
            address = part.strip()
            if "@" in address and address.casefold() not in {seen.casefold() for seen in out}:
                out.append(address)
    return tuple(out)


def attach_payments(invoices: Sequence[Invoice], payments: Iterable[Payment]) -> list[Invoice]:
    """Invoices with `payments` filled from the payments' allocations (one payment may pay several invoices)."""
    by_invoice: dict[str, list[Allocation]] = defaultdict(list)
    for payment in payments:
        for allocation in payment.allocations:
            if allocation.invoice_id is not None:
                by_invoice[allocation.invoice_id].append(allocation)
    out: list[Invoice] = []
    for inv in invoices:
        found = by_invoice.get(inv.id)
        if found:
            ordered = tuple(sorted(found, key=lambda a: (a.date, a.payment_id or "")))
            inv = dataclasses.replace(inv, payments=ordered)
        out.append(inv)
    return out


def attach_estimates(invoices: Sequence[Invoice], estimates: Iterable[EstimateRecord]) -> list[Invoice]:
    """Invoices with `estimate` filled from the accepted estimates they name (docs/policy.md §2.1).

    An invoice names its estimates by `estimate_keys` (each provider's mapping says how); every accepted estimate
    of the invoice's currency one of those keys finds counts once, and several add up (an invoice made from two
    estimates bills what both agreed). An invoice that names none, or only estimates not accepted or in another
    currency, is left as it is; so is one that already carries an estimate (given as input)."""
    by_key: dict[str, list[EstimateRecord]] = defaultdict(list)
    for record in estimates:
        if record.accepted:
            for key in record.keys:
                by_key[key].append(record)
    if not by_key:
        return list(invoices)
    out: list[Invoice] = []
    for inv in invoices:
        if inv.estimate_keys and inv.estimate is None:
            found: dict[str, EstimateRecord] = {}
            for key in inv.estimate_keys:
                for record in by_key.get(key, ()):
                    if record.currency == inv.currency:
                        found.setdefault(record.id, record)
            if found:
                chosen = sorted(found.values(), key=lambda r: (r.number, r.id))
                total = sum((r.total for r in chosen), Decimal(0))
                inv = dataclasses.replace(
                    inv, estimate=Estimate(number=" + ".join(r.number for r in chosen), total=total)
                )
        out.append(inv)
    return out


def idempotency_key(action_key: str, *, limit: int = 50) -> str:
    """A provider idempotency key derived from an action key: stable, short, opaque.

    QuickBooks takes up to 50 characters (`requestid`), Xero up to 128 (`Idempotency-Key`).
    """
    digest = hashlib.sha256(action_key.encode("utf-8")).hexdigest()
    return ("bridge-" + digest)[:limit]


def objects(raw: Mapping[str, Any], key: str, field: str) -> list[Mapping[str, Any]]:
    """`raw[key]`, a list of objects (none when absent); a `DataError` naming `field` when it is anything else."""
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise DataError(f"{field} is not a list")
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise DataError(f"{field}[{index}] is not an object")
    return value


def money(value: Any, currency: str, field: str) -> Decimal:
    """An amount from the wire as an exact Decimal in the currency's minor units (never via float).

    Never rounded: an amount finer than the currency's minor unit (12.345 USD, 1500.5 JPY) is refused
    with `DataError`, so the invoice or payment holding it is quarantined with the reason (the plan's
    `errors`, exit 3) instead of being rounded one way here while the policy rounds another. Only the
    value counts, not how it is written: trailing zeros ("40.0000", 1500.0 JPY) are exact and accepted,
    and the amount comes back with exactly the currency's places.
    """
    if isinstance(value, float):
        raise DataError(f"{field}: amount arrived as a binary float ({value!r}); parse JSON with Decimal")
    if isinstance(value, bool) or value is None:
        raise DataError(f"{field}: missing or not an amount ({value!r})")
    try:
        amount = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise DataError(f"{field}: {value!r} is not an amount") from None
    if not amount.is_finite():
        raise DataError(f"{field}: {value!r} is not a finite amount")
    if abs(amount) >= Decimal("1e15"):
        raise DataError(f"{field}: {value!r} is out of range")
    exact = amount.quantize(quantum(currency))
    if exact != amount:
        places = minor_units(currency)
        raise DataError(
            f"{field}: {str(value)[:40]} {currency} is finer than the currency's minor unit ({places} decimal "
            f"place{'' if places == 1 else 's'}); not rounded: the record is left out until it is corrected"
        )
    return exact


def iso_date(value: Any, field: str, *, required: bool = True) -> date | None:
    """A calendar day from 'YYYY-MM-DD' (a longer timestamp is cut to its date part)."""
    if value in (None, ""):
        if required:
            raise DataError(f"{field} missing")
        return None
    if not isinstance(value, str):
        raise DataError(f"{field}: {value!r} is not a date")
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise DataError(f"{field}: {value!r} is not a date") from None


def timestamp(value: Any, field: str) -> datetime:
    """An ISO 8601 timestamp with its offset (QuickBooks sends local time with an offset)."""
    if not isinstance(value, str):
        raise DataError(f"{field}: {value!r} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise DataError(f"{field}: {value!r} is not a timestamp") from None
    if parsed.tzinfo is None:
        raise DataError(f"{field}: {value!r} has no UTC offset")
    return parsed


def currency_code(value: Any, field: str, default: str | None = None) -> str:
    """An ISO 4217 code; `default` when the provider leaves it out (home currency)."""
    code = value if value not in (None, "") else default
    if not isinstance(code, str) or not is_currency(code):
        raise DataError(f"{field}: {value!r} is not an ISO 4217 currency")
    return code


def text(value: Any, field: str, *, required: bool = True, limit: int = 4000) -> str:
    """A string field, bounded (hostile payloads carry huge strings)."""
    if value is None or value == "":
        if required:
            raise DataError(f"{field} missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataError(f"{field}: {value!r} is not text")
    out = str(value)
    if len(out) > limit:
        raise DataError(f"{field}: longer than {limit} characters")
    return out
