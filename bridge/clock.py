"""The only place that reads the wall clock (ruff bans datetime.now / date.today / time.time elsewhere)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def now_utc() -> datetime:
    """The current instant, timezone-aware, in UTC."""
    return datetime.now(UTC)


def today_in(timezone: str) -> date:
    """Today's calendar date in the given IANA time zone."""
    return datetime.now(ZoneInfo(timezone)).date()


def monotonic() -> float:
    """Seconds on a clock that never goes back (for deadlines and elapsed times, never for dates)."""
    return time.monotonic()
