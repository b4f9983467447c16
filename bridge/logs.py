"""Where the `bridge` logger's lines go: one handler, installed by the CLI for the length of a command.

On a terminal the lines of slow work (pulls, rate-limit waits, retries) drive the live status of the
command's progress display, and warnings are printed; otherwise each line goes to stderr with a timestamp
in local time (`2026-12-07 03:30:12 CET acme-xero: waiting 43.0 s for the rate limit`). `-q` keeps only
warnings and errors. Nothing is logged anywhere until a handler is installed: the library stays silent.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from rich.console import Console
from rich.text import Text

from bridge import clock
from bridge.render import printable

LOGGER = logging.getLogger("bridge")


class PlainFormatter(logging.Formatter):
    """`<local time with zone> <message>`, control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        when = clock.local_text(datetime.fromtimestamp(record.created, UTC))
        return f"{when} {printable(record.getMessage())}"


class StatusHandler(logging.Handler):
    """On a terminal: info lines become the live status while one is shown (else they are printed, dimmed);
    warnings and errors are always printed."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self.status: Callable[[str], None] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        text = printable(record.getMessage())
        if record.levelno < logging.WARNING:
            if self.status is not None:
                self.status(text)
            else:
                self.console.print(Text(text, style="dim"))
            return
        self.console.print(Text(text, style="yellow" if record.levelno == logging.WARNING else "red"))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (a server's log): time (UTC, ISO 8601), level, logger, message, and the
    exception's text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


_installed: list[logging.Handler] = []


def install(
    *, terminal: bool, quiet: bool, console: Console | None = None, json_lines: bool = False
) -> Callable[[], None]:
    """Send the `bridge` logger's lines to stderr (see the module; `json_lines`: one JSON object per line, as
    `bridge serve` logs), through this handler alone: one installed before and never undone (a command run in the
    same process before this one, whose stderr may be closed by now) is dropped. Returns what undoes it."""
    _drop_installed()
    handler: logging.Handler
    if json_lines:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif terminal:
        handler = StatusHandler(console or Console(stderr=True, markup=False, emoji=False, highlight=False))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(PlainFormatter())
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    previous = LOGGER.level, LOGGER.propagate
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    _installed.append(handler)

    def remove() -> None:
        LOGGER.removeHandler(handler)
        if handler in _installed:
            _installed.remove(handler)
        LOGGER.setLevel(previous[0])
        LOGGER.propagate = previous[1]

    return remove


def _drop_installed() -> None:
    for handler in list(_installed):
        LOGGER.removeHandler(handler)
        _installed.remove(handler)


def status_handler() -> StatusHandler | None:
    """The terminal handler in force, if any (a progress display attaches its status line to it)."""
    found = [h for h in _installed if isinstance(h, StatusHandler)]
    return found[-1] if found else None


def switch_to_json(*, quiet: bool, also: tuple[str, ...] = ()) -> Callable[[], None]:
    """From now on, one JSON object per line on stderr (a server): the handlers installed so far are replaced.

    `also` names other loggers (e.g. "uvicorn") whose lines go the same way. Returns what undoes it.
    """
    remove = install(terminal=False, quiet=quiet, json_lines=True)
    handler = _installed[-1]
    for name in also:
        other = logging.getLogger(name)
        other.handlers = [handler]
        other.propagate = False
    return remove
