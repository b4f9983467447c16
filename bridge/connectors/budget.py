"""A provider account's rate budget shared by every process: the limiter in Redis, when a broker is set.

A provider counts calls per account (QuickBooks per company, Xero per organisation, FreshBooks per account), not
per process. With `bridge worker` processes on several machines, each process's own limiter would let N times the
budget through; so when a broker is set, `share_budgets(url)` makes every limiter `shared_limiter` hands out a
`RedisLimiter` with the same allowance, kept in one Redis sorted set per account.

The allowance is a sliding window (at most `max_calls` in any `per_seconds`), counted by one Lua script on the
Redis server's clock, so every process and machine sees the same window however their clocks drift. A token
bucket (`RateLimiter(rate, burst)`) becomes the window of `burst` calls per `burst / rate` seconds: the same
long-run rate and the same largest burst, never more calls in any interval.

In-process limiters stay the default; nothing here runs without a broker.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
import uuid
from collections.abc import Callable

import redis

from bridge.connectors.http import Limiter, RateLimiter, WindowLimiter, _who, set_budget, waiting
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


def window_of(limiter: Limiter) -> tuple[int, float]:
    """The sliding window (max calls, seconds) that allows what an in-process limiter allows."""
    if isinstance(limiter, WindowLimiter):
        return limiter.max_calls, limiter.per_seconds
    if isinstance(limiter, RateLimiter):
        return limiter.burst, limiter.burst / limiter.rate
    raise TypeError(f"no shared form for {type(limiter).__name__}")


def account_key(key: tuple[str, ...]) -> str:
    """The Redis key of one account's window (hashed: base URLs and tenant ids are not key material)."""
    return PREFIX + hashlib.sha256("\x1f".join(key).encode()).hexdigest()[:32]


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
    in-process limiters). Called once at start-up by `bridge worker` and by `bridge serve --broker`."""
    if not url:
        set_budget(None)
        return
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)

    def shared(key: tuple[str, ...], local: Limiter) -> Limiter:
        max_calls, per_seconds = window_of(local)
        return RedisLimiter(client, account_key(key), max_calls, per_seconds)

    set_budget(shared)
