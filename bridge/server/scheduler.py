"""When a connection runs next: its cron (`schedule`) read in its own time zone (`timezone`)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from bridge.config import ConnectionSettings


def next_run(connection: ConnectionSettings, after: datetime) -> datetime:
    """The first time strictly after `after` that the connection's cron names, in UTC.

    The cron is read on the connection's wall clock: "0 7 * * 1-5" in Europe/London is 07:00 London time,
    winter and summer alike.
    """
    local = after.astimezone(ZoneInfo(connection.timezone))
    found: datetime = croniter(connection.schedule, local).get_next(datetime)
    return found.astimezone(UTC)
