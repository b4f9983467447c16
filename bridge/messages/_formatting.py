"""Locale-aware amounts and dates for client messages, cached for bulk rendering.

Amounts are shown with the currency's ISO 4217 minor unit (`bridge.money`), the
same number of places the plan and the invoice carry. Babel's own default is
CLDR's, which drops the decimals of some currencies (HUF, IDR, COP, IQD, …) and
would round the amount a client is asked to pay; so the locale's currency
pattern is used with the ISO places forced.

Babel's `format_currency` costs ~20 µs a call, too slow for 100,000 reminders.
For each (currency, locale) an `_AmountFormatter` is built once: if a plain
`format(amount, ",.Nf")` with the locale's symbols swapped in reproduces Babel's
output exactly on a set of probe amounts, it is used for non-negative amounts
(~1 µs); otherwise (Indian grouping, minimum grouping digits, other numbering
systems, …) every call goes to Babel. Negative, infinite and NaN amounts always
go to Babel.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import NumberPattern, format_currency, get_decimal_symbol, get_group_symbol
from babel.numbers import format_percent as _babel_percent

from bridge.money import minor_units

# Amounts the fast path must reproduce byte for byte before it is trusted: every
# grouping length up to 10 integer digits, fractions that round, exact halves.
_PROBES: tuple[Decimal, ...] = tuple(
    Decimal(p)
    for p in (
        "0", "0.5", "1", "9.99", "12", "123.45", "999.995", "1234.5", "12345.678", "123456",
        "1234567.891", "12345678", "123456789.5", "1234567890.12", "0.125", "2.5", "1.005",
    )
)  # fmt: skip
_ANCHOR = Decimal("1234567.891")


@lru_cache(maxsize=64)
def get_locale(name: str) -> Locale:
    """The Babel `Locale` for `name` ('en_US' or 'en-US'); ValueError when Babel does not know it."""
    try:
        return Locale.parse(name.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{name!r} is not a locale Babel knows (e.g. 'en_US', 'de_DE')") from exc


@lru_cache(maxsize=4096)
def format_long_date(day: date, locale: str) -> str:
    """`day` in the locale's long form: 'September 7, 2026' (en_US), '7. September 2026' (de_DE).

    French writes the first of the month as an ordinal, '1er octobre 2026', where CLDR has '1 octobre 2026'."""
    loc = get_locale(locale)
    text = format_date(day, format="long", locale=loc)
    if day.day == 1 and loc.language == "fr" and text.startswith("1 "):
        text = "1er " + text[2:]
    return text


def format_money(amount: Decimal, currency: str, locale: str) -> str:
    """`amount` as the locale writes it, with the currency's ISO 4217 places: '$1,500.00', '¥1,500'."""
    return _amount_formatter(currency, locale)(amount)


def amount_formatter(currency: str, locale: str) -> Callable[[Decimal], str]:
    """`format_money` for one currency and locale, to call for many amounts (cached, bounded)."""
    return _amount_formatter(currency, locale)


@lru_cache(maxsize=256)
def _amount_formatter(currency: str, locale: str) -> _AmountFormatter:
    return _AmountFormatter(currency, get_locale(locale))


class _AmountFormatter:
    """Formats amounts of one currency for one locale; see the module docstring."""

    __slots__ = ("_currency", "_fast", "_locale", "_pattern", "_prefix", "_spec", "_suffix", "_table")

    def __init__(self, currency: str, locale: Locale) -> None:
        places = minor_units(currency)
        pattern: NumberPattern = copy.copy(locale.currency_formats["standard"])
        pattern.frac_prec = (places, places)
        self._currency = currency
        self._locale = locale
        self._pattern = pattern
        self._spec = f",.{places}f"
        group, decimal = get_group_symbol(locale), get_decimal_symbol(locale)
        # None when the locale writes ',' and '.' as Python does: nothing to translate.
        self._table = None if (group, decimal) == (",", ".") else str.maketrans({",": group, ".": decimal})
        self._prefix = self._suffix = ""
        self._fast = False
        reference = self._babel(_ANCHOR)
        number = self._number(_ANCHOR)
        at = reference.find(number)
        if at >= 0:
            self._prefix, self._suffix = reference[:at], reference[at + len(number) :]
            self._fast = all(self._fast_format(p) == self._babel(p) for p in _PROBES)

    def __call__(self, amount: Decimal) -> str:
        if self._fast and amount.is_finite() and not amount.is_signed():
            # _fast_format, inlined: this runs for every amount of every message.
            number = format(amount, self._spec)
            if self._table is not None:
                number = number.translate(self._table)
            return f"{self._prefix}{number}{self._suffix}"
        return self._babel(amount)

    def _number(self, amount: Decimal) -> str:
        # Decimal formatting rounds with the context's rounding, as Babel's quantize does.
        number = format(amount, self._spec)
        return number if self._table is None else number.translate(self._table)

    def _fast_format(self, amount: Decimal) -> str:
        return f"{self._prefix}{self._number(amount)}{self._suffix}"

    def _babel(self, amount: Decimal) -> str:
        return format_currency(amount, self._currency, format=self._pattern, locale=self._locale, currency_digits=False)


@lru_cache(maxsize=256)
def format_percent(percent: Decimal, locale: str) -> str:
    """`percent` (1.5 means 1.5%) as the locale writes a percentage, every given decimal kept: '1.5%', '1,5 %'."""
    loc = get_locale(locale)
    pattern: NumberPattern = copy.copy(loc.percent_formats[None])
    places = max(0, -int(percent.normalize().as_tuple().exponent))
    pattern.frac_prec = (places, places)
    return _babel_percent(percent / 100, format=pattern, locale=loc)
