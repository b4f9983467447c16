"""The one retry policy and the client-side rate limiter (no network: fake clocks and calls)."""

from __future__ import annotations

import pytest

from bridge.connectors.http import CallStats, RateLimiter, RetryPolicy, WindowLimiter, retry_after_seconds
from bridge.errors import (
    AuthError,
    CallTooSlow,
    ConnectionDropped,
    ProviderError,
    ServerError,
    Throttled,
    TransportError,
    Unauthorized,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_limiter_allows_a_burst_then_keeps_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(rate=8.0, burst=10, clock=clock)
    for _ in range(10):
        assert limiter.acquire() == 0
    for _ in range(80):
        limiter.acquire()
    assert clock.now == pytest.approx(10.0)  # 80 more calls at 8 per second


def test_the_window_limiter_never_lets_more_than_the_limit_into_any_window():
    clock = FakeClock()
    limiter = WindowLimiter(60, 60.0, clock=clock)
    stamps = []
    for _ in range(200):
        limiter.acquire()
        stamps.append(clock.now)
        clock.now += 0.01  # each call takes a moment
    assert stamps[59] < 1.0  # a short run uses the whole minute's allowance at once
    for i, start in enumerate(stamps):
        assert sum(1 for t in stamps[i:] if t < start + 60.0) <= 60
    assert stamps[-1] == pytest.approx(180.0, abs=2.0)  # then 60 a minute


def flaky(errors):
    calls = []

    def fn():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"

    return fn, calls


def test_429_is_retried_honouring_retry_after_even_when_not_safe_to_repeat():
    clock = FakeClock()
    fn, calls = flaky([Throttled("slow down", retry_after=7)])
    stats = CallStats()
    assert RetryPolicy(sleep=clock.sleep).call(fn, stats, safe_to_repeat=False) == "ok"
    assert clock.slept == [7] and stats.retries == 1 and len(calls) == 2


def test_5xx_and_timeouts_are_retried_with_backoff_only_when_safe():
    clock = FakeClock()
    fn, calls = flaky([ServerError("boom", 503), CallTooSlow("t"), ConnectionDropped("c")])
    assert RetryPolicy(sleep=clock.sleep).call(fn, CallStats()) == "ok"
    assert len(calls) == 4 and all(0 <= s <= 4 for s in clock.slept)
    fn, calls = flaky([ServerError("boom", 500)])
    with pytest.raises(ServerError):
        RetryPolicy(sleep=clock.sleep).call(fn, CallStats(), safe_to_repeat=False)
    assert len(calls) == 1


def test_retries_are_bounded_and_the_last_error_is_raised():
    clock = FakeClock()
    fn, calls = flaky([ServerError("boom", 500) for _ in range(20)])
    with pytest.raises(ServerError):
        RetryPolicy(attempts=4, sleep=clock.sleep).call(fn, CallStats())
    assert len(calls) == 4


def test_permanent_errors_are_not_retried():
    fn, calls = flaky([ProviderError("bad request")])
    with pytest.raises(ProviderError):
        RetryPolicy(sleep=FakeClock().sleep).call(fn, CallStats())
    assert len(calls) == 1


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("30") == 30.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_a_long_retry_after_is_honoured_beyond_the_backoff_ceiling_up_to_its_own_bound():
    clock = FakeClock()
    fn, _ = flaky([Throttled("QuickBooks: wait a minute", retry_after=60), Throttled("again", retry_after=600)])
    RetryPolicy(sleep=clock.sleep, max_wait=30, max_retry_after=90).call(fn, CallStats())
    assert clock.slept == [60, 90]


def test_a_token_refused_after_a_refresh_is_retried_even_when_not_safe_to_repeat_then_says_re_link():
    clock = FakeClock()
    fn, calls = flaky([Unauthorized("refused after a refresh: re-link it")])
    assert RetryPolicy(sleep=clock.sleep).call(fn, CallStats(), safe_to_repeat=False) == "ok"
    assert len(calls) == 2  # a 401 was not processed: safe to send again
    fn, calls = flaky([Unauthorized("refused after a refresh: re-link it") for _ in range(20)])
    with pytest.raises(AuthError, match="re-link"):
        RetryPolicy(attempts=3, sleep=clock.sleep).call(fn, CallStats())
    assert len(calls) == 3


def test_the_stats_say_what_was_retried_and_why():
    clock = FakeClock()
    errors = [
        Throttled("slow down", retry_after=1),
        Throttled("slow down"),
        ServerError("boom", 503),
        CallTooSlow("t"),
        ConnectionDropped("c"),
        Unauthorized("u"),
    ]
    stats = CallStats()
    fn, _ = flaky(errors)
    RetryPolicy(sleep=clock.sleep).call(fn, stats)
    stats.note_retry("expired token")
    assert stats.retries == 7
    assert dict(stats.retried) == {
        "429": 2,
        "503": 1,
        "timeout": 1,
        "dropped connection": 1,
        "token refused": 1,
        "expired token": 1,
    }
    assert stats.describe_retries().startswith("7 retries: 429 ×2, 503 ×1, dropped connection ×1, expired token ×1")
    assert CallStats().describe_retries() == "no retries"


def test_a_transport_error_whose_call_never_left_is_not_retried():
    fn, calls = flaky([TransportError("bad URL", outcome_unknown=False)])
    with pytest.raises(TransportError):
        RetryPolicy(sleep=FakeClock().sleep).call(fn, CallStats())
    assert len(calls) == 1
