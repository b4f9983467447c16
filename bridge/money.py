"""Money helpers: ISO 4217 minor units and the two roundings the contracts use.

Amounts are `Decimal` everywhere. The minor-unit table is ISO 4217's, not CLDR's
(CLDR rounds some currencies, e.g. HUF or IDR, for cash display only).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from functools import cache

from babel.numbers import list_currencies

# ISO 4217 currencies whose minor unit is not 2.
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}


@cache
def known_currencies() -> frozenset[str]:
    """Every ISO 4217 code the locale data knows."""
    return frozenset(list_currencies())


def is_currency(code: str) -> bool:
    """True when `code` is an ISO 4217 currency code."""
    return code in known_currencies()


def minor_units(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (2 unless ISO 4217 says otherwise)."""
    return _MINOR_UNITS.get(currency, 2)


@cache
def quantum(currency: str) -> Decimal:
    """The smallest amount of the currency, e.g. Decimal('0.01') for USD, Decimal('1') for JPY."""
    return Decimal(1).scaleb(-minor_units(currency))


def round_half_up(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, halves away from zero (1.005 USD -> 1.01)."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def round_down(amount: Decimal, currency: str) -> Decimal:
    """Truncate to the currency's minor unit (used for caps, which must never be exceeded)."""
    return amount.quantize(quantum(currency), rounding=ROUND_DOWN)


def format_amount(amount: Decimal, currency: str) -> str:
    """The plan's string form: exactly the currency's minor-unit places, no exponent."""
    return f"{amount.quantize(quantum(currency)):f}"
