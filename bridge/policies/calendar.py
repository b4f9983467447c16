"""Business days: weekends and a country's public holidays (the `holidays` package, pure data)."""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache, lru_cache
from typing import Any

_ONE_DAY = timedelta(days=1)


@cache
def _calendar(code: str) -> Any:
    """The holiday calendar of `code` ('US' or 'US-CA'); years are filled in lazily as they are asked for."""
    import holidays

    country, _, subdivision = code.partition("-")
    return holidays.country_holidays(country, subdiv=subdivision or None)


@lru_cache(maxsize=1 << 16)
def next_business_day(day: date, holidays_code: str | None) -> date:
    """`day` itself when it is a business day, else the next one (Saturday, Sunday and holidays move forward)."""
    calendar = _calendar(holidays_code) if holidays_code else None
    while day.weekday() >= 5 or (calendar is not None and day in calendar):
        day += _ONE_DAY
    return day
