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


def local_text(instant: datetime) -> str:
    """An instant as the reader's local time, to the second, with the zone: `2026-12-07 03:30:12 CET`.

    A naive datetime is taken as UTC (the store keeps UTC).
    """
    aware = instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)
    local = aware.astimezone()
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or local.strftime('%z')}"


def now_local_text() -> str:
    """Now, as `local_text` shows it (log lines)."""
    return local_text(now_utc())
