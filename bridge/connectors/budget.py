"""A provider account's rate budget shared by every process: in a file on one machine, in Redis across machines.

A provider counts calls per account (QuickBooks per company, Xero per organisation, FreshBooks per account), not
per process. Two `bridge` processes on one account (a scheduled sync and a manual one, or `sync --dry-run` and
then `sync` within the same minute) would each let the whole budget through and get 429s together; so every
limiter `shared_limiter` hands out counts in a window every process shares.

On one machine (the default) that window is a small file per account, `MachineLimiter`, in the user's cache
folder (`$XDG_CACHE_HOME/bridge/budget`, else `~/.cache/bridge/budget`): what it holds is worth a minute at
most, and losing it costs no more than one window's count. With `bridge worker` processes on several machines,
`share_budgets(url)` puts it in Redis instead: a `RedisLimiter` per account, one Redis sorted set each.

Both count a sliding window (at most `max_calls` in any `per_seconds`). A token bucket (`RateLimiter(rate,
burst)`) becomes the window of `burst` calls per `burst / rate` seconds: the same long-run rate and the same
largest burst, never more calls in any interval. Redis counts on the server's clock, so every machine sees the
same window however their clocks drift; the file counts on this machine's monotonic clock (below).
"""

from __future__ import annotations

import array
import bisect
import contextlib
import fcntl
import hashlib
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.clock import now_utc
from bridge.connectors.http import (
    SYSTEM_CLOCK,
    Clock,
    Limiter,
    RateLimiter,
    WindowLimiter,
    _who,
    set_budget,
    waiting,
    window_pause,
)

if TYPE_CHECKING:  # redis is imported when a budget is put in it (`share_budgets`), not by every CLI start
    import redis
from bridge.errors import Unreachable

# KEYS[1]: the account's window; ARGV: max calls, window (µs), a unique member.
# Returns 0 when the call was counted, else the microseconds until the oldest call leaves the window.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

PREFIX = "bridge:budget:"

log = logging.getLogger(__name__)

STALE_WINDOW = 86_400.0  # seconds without a call after which an account's window file is removed


def window_of(limiter: Limiter) -> tuple[int, float]:
    """The sliding window (max calls, seconds) that allows what an in-process limiter allows."""
    if isinstance(limiter, WindowLimiter | MachineLimiter):
        return limiter.max_calls, limiter.per_seconds
    if isinstance(limiter, RateLimiter):
        return limiter.burst, limiter.burst / limiter.rate
    raise TypeError(f"no shared form for {type(limiter).__name__}")


def account_key(key: tuple[str, ...]) -> str:
    """The Redis key of one account's window (hashed: base URLs and tenant ids are not key material)."""
    return PREFIX + _digest(key)


def _digest(key: tuple[str, ...]) -> str:
    return hashlib.sha256("\x1f".join(key).encode()).hexdigest()[:32]


def machine_folder() -> Path:
    """Where this user's processes keep the accounts' windows on this machine."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "bridge" / "budget"


def on_this_machine(key: tuple[str, ...], local: Limiter) -> Limiter:
    """The limiter every process of this user on this machine shares for the account `key`, with the allowance of
    `local` (the in-process limiter it would have had), which stays the limiter when no window file can be made
    there (a read-only home, say: then each process paces alone, as a warning says)."""
    max_calls, per_seconds = window_of(local)
    folder = machine_folder()
    path = folder / f"{_digest((*key, f'{per_seconds:g}'))}.window"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _sweep(folder)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:
        log.warning("no rate window shared on this machine (%s); this process paces its calls alone", exc)
        return local
    return MachineLimiter(path, max_calls, per_seconds)


def _sweep(folder: Path) -> None:
    """Remove the windows no call has touched for a day (an emulator's account, a connection removed): each holds
    a minute at most, and one still in use is made again by its next call."""
    stale = now_utc().timestamp() - STALE_WINDOW  # file times are wall times
    for entry in os.scandir(folder):
        if entry.name.endswith(".window"):
            with contextlib.suppress(OSError):  # another process swept it first
                if entry.stat().st_mtime < stale:
                    os.unlink(entry.path)


class MachineLimiter:
    """At most `max_calls` in any `per_seconds` for one provider account, counted in the file `path` by every
    process on this machine. Same interface as the in-process limiters: `acquire()` waits until a call fits,
    returns the seconds waited. Thread-safe and fork-safe (each acquire opens the file and locks it afresh).

    The file is the window's log: the times of the calls still in it, oldest first, as 8-byte floats. Each
    acquire holds an exclusive `flock` on it for one read and, when the call fits, one write (never while it
    waits), so it costs a few system calls and a few hundred bytes. The kernel drops a lock when its process
    ends, so a killed process leaves no lock behind; a file that is missing is made again, and one that does not
    read as a log (a torn write, another program's bytes) counts as empty and is written afresh.

    The times are `time.monotonic()` (CLOCK_MONOTONIC on Linux: one clock for every process since boot), not
    wall time: a wall clock stepped forward (NTP, by hand) would age the log and let a burst through into a
    429, one stepped back would stall calls for as long. After a reboot the clock starts again, so a time
    later than now is from before it and is dropped; an earlier one only makes the first minute wait longer.
    """

    def __init__(self, path: Path, max_calls: int, per_seconds: float, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.max_calls = max_calls
        self.per_seconds = per_seconds
        self.name = "provider"  # who waits, in log lines (see `speaking_for`)
        self._monotonic, self._sleep = clock.monotonic, clock.sleep

    def acquire(self) -> float:
        """Wait until a call fits in the machine's window, then count it; returns the seconds waited."""
        waited = 0.0
        while True:
            with self.held() as fd:
                now = self._monotonic()
                calls = _read_log(fd, now, self.path)
                start, pause = window_pause(calls, now, self.max_calls, self.per_seconds)
                if not pause:
                    kept = calls[start:]
                    kept.append(now)
                    data = kept.tobytes()
                    # Cut first, then write: a process killed in between leaves the start of the old log, in order.
                    os.ftruncate(fd, min(os.fstat(fd).st_size, len(data)))
                    os.pwrite(fd, data, 0)
                    return waited
            why = f"for the rate limit ({self.max_calls} calls per {self.per_seconds:g} s, on this machine)"
            waiting(self._sleep, pause, why, _who(self.name))
            waited += pause

    @contextlib.contextmanager
    def held(self) -> Iterator[int]:
        """The window file, open and exclusively locked for the block (made again if it went missing)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd  # closing the file drops the lock
        finally:
            os.close(fd)


def _read_log(fd: int, now: float, path: Path) -> array.array[float]:
    """The call times in an open window file, oldest first, none after `now` (a later time is from before a
    reboot); empty when the file does not read as a log. Every step is a loop in C: a file holds a minute."""
    data = os.pread(fd, os.fstat(fd).st_size, 0)
    calls = array.array("d")
    if len(data) % calls.itemsize == 0:
        calls.frombytes(data)
        if calls == calls and calls.tolist() == sorted(calls):  # no NaN (unequal to itself), in order
            return calls[: bisect.bisect_right(calls, now)]
    log.warning("the rate window file %s did not read as one; counting afresh", path)
    return array.array("d")


class RedisLimiter:
    """At most `max_calls` in any `per_seconds` for one provider account, counted in Redis across processes.
    Same interface as the in-process limiters: `acquire()` waits until a call fits, returns the seconds waited."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        max_calls: int,
        per_seconds: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_calls = max_calls
        self.per_seconds = per_seconds
        self.name = "provider"  # who waits, in log lines (see `speaking_for`)
        self._key = key
        self._script = client.register_script(_ACQUIRE)
        self._sleep = sleep
        self._member = f"{os.getpid()}-{uuid.uuid4().hex[:12]}-"
        self._count = itertools.count()

    def acquire(self) -> float:
        """Wait until a call fits in the shared window, then count it; returns the seconds waited."""
        import redis

        waited = 0.0
        window_us = max(1, round(self.per_seconds * 1_000_000))
        while True:
            member = f"{self._member}{next(self._count)}"
            try:
                wait_us = int(self._script(keys=[self._key], args=[self.max_calls, window_us, member]))
            except redis.RedisError as exc:
                # No call goes out uncounted: without the shared budget a worker could push the account into 429s.
                raise Unreachable(f"the shared rate budget (Redis) is unreachable: {exc}") from exc
            if wait_us == 0:
                return waited
            pause = wait_us / 1_000_000
            why = f"for the shared rate limit ({self.max_calls} calls per {self.per_seconds:g} s)"
            waiting(self._sleep, pause, why, _who(self.name))
            waited += pause


def share_budgets(url: str | None) -> None:
    """From now on, in this process, every provider account's limiter lives in the Redis at `url` (None: back to
    the window on this machine). Called once at start-up by `bridge worker` and by `bridge serve --broker`."""
    if not url:
        set_budget(None)
        return
    import redis

    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)

    def shared(key: tuple[str, ...], local: Limiter) -> Limiter:
        max_calls, per_seconds = window_of(local)
        return RedisLimiter(client, account_key(key), max_calls, per_seconds)

    set_budget(shared)
