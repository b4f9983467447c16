"""Contract terms as typed, validated, frozen settings (docs/policy.md; config keys of docs/interfaces.md).

Every number of docs/policy.md is a field here with the documented default. Unknown
keys are errors: a typo must never silently disable a late-fee cap.
"""

from __future__ import annotations

import difflib
from decimal import Decimal
from enum import StrEnum
from functools import cache
from itertools import pairwise
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from bridge.delivery import Delivery
from bridge.messages import template_sets
from bridge.model import Money
from bridge.money import is_currency, quantum

# A step number past any real schedule: a larger escalate_from_step is a typo, not a plan (e.g. 40 for 4).
MAX_ESCALATION_STEP = 30

NonNegativeMoney = Annotated[Money, Field(ge=0)]
Percent = Annotated[Decimal, BeforeValidator(lambda v: _reject_float(v)), Field(ge=0, le=100)]


def _reject_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError('percentages are strings, e.g. "1.5", not floats')
    return value


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Terms(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProjectKey(StrEnum):
    """What one renegotiation is allowed per (docs/policy.md §1)."""

    CUSTOMER = "customer"
    INVOICE = "invoice"
    PROVIDER = "provider"


@cache
def _holiday_countries() -> frozenset[str]:
    """The country codes the holidays package knows, from its registry: no calendar is imported (listing them
    all with `list_supported_countries` imports some 250 modules, a tenth of a second at every start)."""
    from holidays.registry import EntityLoader

    return frozenset(EntityLoader.get_country_codes())


@cache
def _holiday_subdivisions(country: str) -> tuple[str, ...] | None:
    """The subdivisions of a country the holidays package knows (what `list_supported_countries` gives it), or
    None when it does not know the code. Only that country's calendar is imported, and only when a subdivision is
    asked for: a country's calendar alone can take a third of a second to import, which a sync that evaluates
    nothing again (bridge.evaluations) need not pay."""
    import holidays

    if country not in _holiday_countries():
        return None
    return tuple(getattr(holidays, country).subdivisions)


class Reminders(_Terms):
    """`[contracts.NAME.reminders]`: when and how politely a client is reminded (docs/policy.md §4)."""

    schedule: tuple[int, ...] = (-3, 1, 7, 14, 30)
    repeat_every_days: int = Field(30, ge=0)
    max_reminders: int = Field(8, ge=0)
    min_gap_days: int = Field(3, ge=0)
    business_days: bool = True
    holidays: str | None = None
    # provider: the accounting package's own send; smtp: the contract's message from the firm's mailbox ([smtp]).
    channel: Literal["provider", "smtp"] = "provider"
    # Off when None: from this step on, a reminder also goes to the client's other billing contacts (copies).
    escalate_from_step: int | None = Field(None, ge=1, le=MAX_ESCALATION_STEP)
    template: str = Field("polite", pattern=r"^[a-z][a-z0-9_-]*$")
    # None: the smallest unit of the currency (the contract's, else the invoice's).
    min_balance: NonNegativeMoney | None = None

    @field_validator("channel", mode="before")
    @classmethod
    def _available_channel(cls, value: Any) -> Any:
        channels = ["provider", "smtp"]
        if isinstance(value, str) and value not in channels:
            raise ValueError(f"unknown channel {value!r}; available: provider, smtp{_did_you_mean(value, channels)}")
        return value

    @field_validator("template", mode="before")
    @classmethod
    def _known_template_set(cls, value: Any) -> Any:
        # A set that does not ship would only fail when the first reminder is rendered.
        known = template_sets()
        if isinstance(value, str) and value not in known:
            raise ValueError(
                f"unknown template set {value!r}; available: {', '.join(known)}{_did_you_mean(value, list(known))}"
            )
        return value

    @field_validator("schedule")
    @classmethod
    def _strictly_increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(b <= a for a, b in pairwise(value)):
            raise ValueError(f"must be strictly increasing, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _escalation_reachable(self) -> Reminders:
        """A step that never comes would leave escalation silently off: without repeats, the schedule's steps are
        the only ones."""
        step = self.escalate_from_step
        if step is not None and self.repeat_every_days == 0 and step > len(self.schedule):
            raise ValueError(
                f"escalate_from_step = {step}: with repeat_every_days = 0 there are only {len(self.schedule)} "
                f"step(s) (schedule = {list(self.schedule)}), so step {step} never comes"
            )
        return self

    @field_validator("holidays")
    @classmethod
    def _known_holiday_calendar(cls, value: str | None) -> str | None:
        if value is None:
            return None
        country, _, subdivision = value.partition("-")
        if country not in _holiday_countries():
            raise ValueError(f"{value!r} is not a country code the holidays package knows (e.g. 'US', 'GB')")
        if subdivision and subdivision not in (_holiday_subdivisions(country) or ()):
            raise ValueError(f"{value!r}: {country} has no subdivision {subdivision!r}")
        return value


class LateFee(_Terms):
    """`[contracts.NAME.late_fee]`: what a late payment costs, and its caps (docs/policy.md §5)."""

    flat: NonNegativeMoney = Decimal(0)
    percent: Percent = Decimal(0)
    combine: Literal["sum", "max"] = "sum"
    grace_days: int = Field(0, ge=0)
    every_days: int = Field(30, ge=0)
    max_occurrences: int = Field(12, ge=0)
    max_total: NonNegativeMoney | None = None
    max_percent_of_total: Percent | None = None
    # None: the smallest unit of the currency (the contract's, else the invoice's).
    min_fee: NonNegativeMoney | None = None
    compounding: bool = False
    mode: Literal["line", "invoice"] = "line"
    item: str = Field("Late Fee", min_length=1)
    description: str = "Late fee ({period}) on invoice {number}"

    @field_validator("description")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            value.format(number="1", period="1")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only the placeholders {{number}} and {{period}} are allowed ({exc})") from None
        return value

    @property
    def charges_anything(self) -> bool:
        """False when neither a flat nor a percent fee is set: the clause is then inert."""
        return self.flat > 0 or self.percent > 0


class Renegotiation(_Terms):
    """`[contracts.NAME.renegotiation]`: the one-time schedule renegotiation (docs/policy.md §6)."""

    max_per_project: int = Field(1, ge=0)
    max_extension_days: int = Field(30, ge=0)


def known_zone(value: str) -> str:
    """`value` when it names an IANA time zone; a ValueError saying so otherwise (contracts and connections)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'America/New_York')") from None
    return value


class Contract(_Terms):
    """`[contracts.NAME]`: a named set of terms and the customers it applies to."""

    name: str
    applies_to: tuple[str, ...] = Field(min_length=1)
    currency: str | None = None
    timezone: str = "UTC"
    locale: str = "en_US"
    project_key: ProjectKey = ProjectKey.CUSTOMER
    # Off when None: an invoice more than this percent over its accepted estimate gets no reminder and no fee.
    estimate_tolerance_percent: Percent | None = None
    reminders: Reminders = Reminders()
    late_fee: LateFee | None = None
    renegotiation: Renegotiation = Renegotiation()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str | None) -> str | None:
        if value is not None and not is_currency(value):
            raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. 'USD', 'EUR', 'JPY')")
        return value

    @model_validator(mode="after")
    def _amounts_need_a_currency(self) -> Contract:
        """POLICY §1: an amount written in a contract is only ever applied in the currency the contract states."""
        if self.currency is not None:
            return self
        amounts = [("reminders.min_balance", self.reminders.min_balance)]
        if self.late_fee is not None:
            fee = self.late_fee
            amounts += [("late_fee.flat", fee.flat), ("late_fee.max_total", fee.max_total)]
            amounts += [("late_fee.min_fee", fee.min_fee)]
        stated = [f"{key} = {value}" for key, value in amounts if value is not None and value != 0]
        if stated:
            raise ValueError(
                f"{', '.join(stated)}: a contract with money amounts must state its currency "
                '(e.g. currency = "USD"); without one it may hold percentages only'
            )
        return self

    def matches_currency(self, currency: str) -> bool:
        """True when the contract may govern an invoice in `currency` (a contract without one takes any)."""
        return self.currency is None or self.currency == currency

    def min_balance(self, currency: str) -> Decimal:
        """`reminders.min_balance`, or the currency's smallest unit when unset."""
        value = self.reminders.min_balance
        return quantum(currency) if value is None else value

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        try:
            Locale.parse(value)
        except (UnknownLocaleError, ValueError):
            raise ValueError(f"{value!r} is not a locale Babel knows (e.g. 'en_US', 'de_DE')") from None
        return value

    def clause(self, part: str | None = None) -> str:
        """The dotted config path actions and skips cite, e.g. `contracts.standard.late_fee`."""
        return f"contracts.{self.name}" + (f".{part}" if part else "")


class Hold(_Terms):
    """`[hold]`: invoices (by number) and customers (by id, name or e-mail) never touched."""

    invoices: tuple[str, ...] = ()
    customers: tuple[str, ...] = ()


class Exclude(_Terms):
    """`[exclude]`: customers (by id, name or e-mail) the contracts do not cover."""

    customers: tuple[str, ...] = ()


class Terms(_Terms):
    """Everything the policy engine reads from the config: contracts in file order, holds, exclusions.

    `fee_modes` holds each connection's `fee_mode` override of `late_fee.mode`; `firm_name` (`[firm].name`)
    signs every message to a client; `provider_channels` what each installed provider's own reminder e-mail
    carries (from the provider descriptors, not from the file).
    """

    contracts: tuple[Contract, ...] = ()
    hold: Hold = Hold()
    exclude: Exclude = Exclude()
    fee_modes: dict[str, Literal["line", "invoice"]] = Field(default_factory=dict)
    firm_name: str = ""
    provider_channels: dict[str, Delivery] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> Terms:
        names = [c.name for c in self.contracts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"contract names must be unique: {dupes}")
        return self

    @property
    def checks_estimates(self) -> bool:
        """Some contract sets `estimate_tolerance_percent`: the pulls then read estimates too (§2.1)."""
        return any(c.estimate_tolerance_percent is not None for c in self.contracts)
