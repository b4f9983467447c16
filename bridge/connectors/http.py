"""One retry policy and one client-side rate limiter in front of every provider call.

The SDKs' own retries are off; this is the only place that decides whether a
call is tried again. It asks the exception only: `BridgeError.retriable`. The
`Wire` is the boundary where `requests` exceptions become bridge errors
(`TransportError`: a timeout or a dropped connection, whose outcome is unknown),
so nothing above the connectors sees a `requests` exception. A call that is not safe to repeat
(an e-mail send, which has no idempotency key) is retried only when the provider
said it did not process it (429).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar

import requests
import requests.adapters
import urllib3
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay
from tenacity.stop import stop_base

from bridge import clock
from bridge.errors import (
    BodyTooLarge,
    BridgeError,
    CallTooSlow,
    ConnectionDropped,
    DeadlineExceeded,
    ServerError,
    Throttled,
    TransportError,
    Unauthorized,
    Unreachable,
)

T = TypeVar("T")
RETRIABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# The largest body one call may bring (decoded): a provider sending more is cut off, so memory stays bounded.
MAX_BODY_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024


# What the wire says while it waits (rate limits, retries): logger "bridge.wire", under the "bridge" logger whose
# one handler the CLI installs (a live status on a terminal, timestamped lines on stderr otherwise). Silent by default.
log = logging.getLogger("bridge.wire")
# The connection the calls of this thread are made for (named in those lines); set by the sync, else the provider.
_SPEAKING_FOR: ContextVar[str | None] = ContextVar("bridge_connection", default=None)
LOGGED_WAIT = 1.0  # seconds: a shorter wait is not worth a line
WAIT_SLICE = 4.0  # seconds: a longer wait says how much is left this often, so a log never goes quiet for long


@contextmanager
def speaking_for(connection: str) -> Iterator[None]:
    """Name `connection` in what the wire logs for the calls made inside the block (on this thread)."""
    token = _SPEAKING_FOR.set(connection)
    try:
        yield
    finally:
        _SPEAKING_FOR.reset(token)


def set_speaking_for(connection: str | None) -> None:
    """`speaking_for` without a block: from now on, on this thread (None: the provider's name again)."""
    _SPEAKING_FOR.set(connection)


def _who(fallback: str) -> str:
    return _SPEAKING_FOR.get() or fallback


def waiting(sleep: Callable[[float], None], seconds: float, why: str, who: str) -> None:
    """`sleep(seconds)`, logging a wait long enough to be noticed: "acme-xero: waiting 43.0 s for the rate limit",
    then every `WAIT_SLICE` seconds how much is left (only while logging is on: the sleep is the same)."""
    if seconds < LOGGED_WAIT or not log.isEnabledFor(logging.INFO):
        sleep(seconds)
        return
    log.info("%s: waiting %.1f s %s", who, seconds, why)
    left = seconds
    while left > WAIT_SLICE + 0.5:
        sleep(WAIT_SLICE)
        left -= WAIT_SLICE
        log.info("%s: still waiting %.1f s %s", who, left, why)
    sleep(left)


def refused(exc: BaseException | None) -> bool:
    """Whether a failed call's cause is a refused connection (looked for through causes and wrapped reasons)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ConnectionRefusedError | Unreachable):
            return True
        if isinstance(item, BaseException):
            todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return False


def _origin(url: str) -> str:
    """scheme://host:port of a URL."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0]}" if rest else url


def unreachable(url: str) -> Unreachable:
    """The one clear line for a refused connection."""
    return Unreachable(f"cannot reach {_origin(url)} (connection refused); is the provider or emulator running?")


_CALL = threading.local()  # the connections checked out for the call this thread is making (see `_Tracking`)


class _Tracking:
    """A connection pool that tells the call in progress on this thread which connection it took, so the
    call's watchdog can shut that socket down while the call still waits for the status line or headers."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        taken: list[Any] | None = getattr(_CALL, "taken", None)
        if taken is not None:
            taken.append(conn)
        return conn


class _TrackingHTTPPool(_Tracking, urllib3.HTTPConnectionPool):
    pass


class _TrackingHTTPSPool(_Tracking, urllib3.HTTPSConnectionPool):
    pass


class _TrackingAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackingHTTPPool, "https": _TrackingHTTPSPool}


def _shut(conn: Any) -> None:
    """Shut a connection's socket down from another thread: a read blocked on it returns at once."""
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class Wire:
    """The one HTTP transport under every connector: each call is bounded by a wall-clock time that covers
    connecting, the answer and the whole body (`timeout` seconds; requests' own timeout is per socket read,
    so a server dripping a byte at a time would never trip it), and by a body size; inside `deadline` no call
    starts after the deadline and one running into it is cut there.

    A watchdog timer shuts the call's socket down when the time is up, whether the call still waits for the
    status line and headers or reads the body (a read blocked on a silent or dripping server returns at once);
    the body is read in chunks, its size counted. Thread-safe for concurrent calls.
    """

    def __init__(
        self,
        provider: str,
        timeout: float,
        *,
        session: Any = None,
        max_bytes: int = MAX_BODY_BYTES,
        bound: str | None = None,
    ) -> None:
        self.provider = provider
        self.timeout = float(timeout)
        self.bound = bound or f"timeout_seconds = {self.timeout:g}"  # what the timeout is, in errors
        self.session = session or requests.Session()  # anything with requests.Session's `request` (and `mount`)
        if callable(getattr(self.session, "mount", None)):
            for prefix in ("http://", "https://"):
                self.session.mount(prefix, _TrackingAdapter())
        self.max_bytes = max_bytes
        self._deadline: float | None = None
        self._deadline_what = ""
        self.last_failure: str | None = None  # what the last failed call said (the deadline's error repeats it)

    @contextmanager
    def deadline(self, seconds: float | None, what: str) -> Iterator[None]:
        """Every call in the block must end within `seconds` of its start (`what` names the bound in errors)."""
        previous = self._deadline, self._deadline_what
        self._deadline = clock.monotonic() + seconds if seconds else None
        self._deadline_what = what
        self.last_failure = None
        try:
            yield
        finally:
            self._deadline, self._deadline_what = previous

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None without one); `DeadlineExceeded` once it has passed."""
        if self._deadline is None:
            return None
        left = self._deadline - clock.monotonic()
        if left <= 0:
            last = f" (the last failed call: {self.last_failure})" if self.last_failure else ""
            raise DeadlineExceeded(f"{self._deadline_what}: stopped{last}")
        return left

    def note(self, exc: BaseException) -> BaseException:
        """Remember a failed call (made here, or by a library beside us, such as a token refresh); returns it."""
        self.last_failure = str(exc) or type(exc).__name__
        return exc

    def bounded_sleep(self, sleep: Callable[[float], None]) -> Callable[[float], None]:
        """`sleep`, never past the deadline (a retry's wait must not outlast the pull it belongs to)."""

        def bounded(seconds: float) -> None:
            left = self._deadline - clock.monotonic() if self._deadline is not None else None
            sleep(seconds if left is None else max(0.0, min(seconds, left)))

        return bounded

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """`requests.Session.request`, with the whole call bounded in time and size."""
        start = clock.monotonic()
        limit, bound = self.timeout, self.bound
        left = self.remaining()
        if left is not None and left < limit:
            limit, bound = left, self._deadline_what
        end = start + limit
        too_slow = CallTooSlow(
            f"{self.provider} did not answer {method} {_path(url)} in full within {limit:.3g} s ({bound})"
        )
        kwargs["timeout"] = max(limit, 0.001)
        kwargs["stream"] = True
        expired = threading.Event()
        taken: list[Any] = []
        answered: list[requests.Response] = []

        def cut() -> None:  # the watchdog: the time is up, wherever the call is (headers or body)
            expired.set()
            for conn in taken:
                _shut(conn)
            for response in answered:
                shutdown = getattr(response.raw, "shutdown", None)
                if callable(shutdown):
                    with contextlib.suppress(Exception):
                        shutdown()

        watchdog = threading.Timer(max(0.0, end - clock.monotonic()), cut)
        watchdog.daemon = True
        watchdog.start()
        outer, _CALL.taken = getattr(_CALL, "taken", None), taken
        try:
            response: requests.Response = self.session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            watchdog.cancel()
            if isinstance(exc, requests.Timeout) or expired.is_set() or clock.monotonic() >= end:
                raise self.note(too_slow) from None
            if refused(exc):
                raise self.note(unreachable(url)) from None
            raise self.note(_transport_error(exc)) from exc
        except BaseException:
            watchdog.cancel()
            raise
        finally:
            _CALL.taken = outer
        answered.append(response)
        if expired.is_set():
            cut()
        body = bytearray()
        try:
            for chunk in response.iter_content(_CHUNK):
                body += chunk
                if len(body) > self.max_bytes:
                    response.close()
                    raise BodyTooLarge(
                        f"{self.provider} answered {method} {_path(url)} with more than "
                        f"{self.max_bytes // (1024 * 1024)} MiB: refused"
                    )
                if clock.monotonic() > end:
                    response.close()
                    raise too_slow
        except (requests.RequestException, OSError, ValueError) as exc:
            if expired.is_set() or clock.monotonic() >= end:
                response.close()
                raise self.note(too_slow) from None
            if isinstance(exc, requests.RequestException):
                raise self.note(_transport_error(exc)) from exc
            raise self.note(ConnectionDropped(f"{self.provider} dropped the connection: {exc}")) from None
        except Exception as exc:
            if expired.is_set():
                response.close()
                raise self.note(too_slow) from None
            self.note(exc)
            raise
        finally:
            watchdog.cancel()
        if expired.is_set():
            response.close()
            raise self.note(too_slow)
        response._content = bytes(body)
        response._content_consumed = True
        return response


def _transport_error(exc: requests.RequestException) -> TransportError:
    """A `requests` exception as the bridge error it means: a failed or dropped connection may have reached
    the provider (outcome unknown); anything else (a malformed URL, too many redirects) was not processed."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, requests.Timeout):
        return CallTooSlow(text)
    if isinstance(exc, requests.ConnectionError):
        return ConnectionDropped(text)
    return TransportError(text, outcome_unknown=False)


def _path(url: str) -> str:
    """The path of a URL, without its query (which may be long, and is never needed to say what was called)."""
    rest = url.split("://", 1)[-1]
    path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    return path.split("?", 1)[0][:120]


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - clock.now_utc()).total_seconds())


def raise_for_retriable(response: requests.Response, provider: str) -> None:
    """Turn a 429 or 5xx response into the retriable error the policy understands."""
    status = response.status_code
    if status not in RETRIABLE_STATUS:
        return
    wait = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 429:
        problem = response.headers.get("X-Rate-Limit-Problem")
        raise Throttled(f"{provider} throttled the call (429{', ' + problem if problem else ''})", wait)
    raise ServerError(f"{provider} answered {status}", status, wait)


class Clock(Protocol):
    """What a limiter reads and waits by (a test gives a fake one)."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float, /) -> None: ...


class _SystemClock:
    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


SYSTEM_CLOCK = _SystemClock()


class _Paced:
    """What both limiters share: the clock, a lock, and who waits (in log lines)."""

    def __init__(self, clock: Clock) -> None:
        self.name = "provider"  # who waits, in log lines, when no connection is named (see `speaking_for`)
        self._monotonic, self._sleep = clock.monotonic, clock.sleep
        self._lock = threading.Lock()


class RateLimiter(_Paced):
    """Token bucket: at most `rate` calls per second on average, bursts of up to `burst`. Thread-safe."""

    def __init__(self, rate: float, burst: int, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(clock)
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = self._monotonic()

    def acquire(self) -> float:
        """Take one token, sleeping until one is free; returns the seconds waited."""
        with self._lock:
            now = self._monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            waiting(self._sleep, wait, "for the rate limit", _who(self.name))
        return wait


class Limiter(Protocol):
    """Paces calls to a provider: `acquire` before each call; returns the seconds it waited."""

    def acquire(self) -> float: ...


class WindowLimiter(_Paced):
    """At most `max_calls` in any `per_seconds` window (a sliding log), the way Xero counts its minute limit.

    Unlike a token bucket, a short run can use the whole allowance at once, and a long one then goes at
    the provider's pace; no window ever holds more than `max_calls`. Thread-safe.
    """

    def __init__(self, max_calls: int, per_seconds: float, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(clock)
        self.max_calls = max_calls
        self.per_seconds = per_seconds
        self._calls: list[float] = []

    def acquire(self) -> float:
        """Wait until a call fits in the window, then count it; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._monotonic()
                start, pause = window_pause(self._calls, now, self.max_calls, self.per_seconds)
                del self._calls[:start]
                if not pause:
                    self._calls.append(now)
                    return waited
            why = f"for the rate limit ({self.max_calls} calls per {self.per_seconds:g} s)"
            waiting(self._sleep, pause, why, _who(self.name))
            waited += pause


def window_pause(calls: Sequence[float], now: float, max_calls: int, per_seconds: float) -> tuple[int, float]:
    """One step of a sliding-window log (`calls`: the times of the calls made, oldest first, none after `now`):
    the index of the oldest call still in the window ending `now` (those before it have left), and 0.0 when one
    more call fits, else the seconds until enough calls leave the window (at least a millisecond: a float
    remainder too small to move the clock would spin)."""
    start = bisect.bisect_right(calls, now - per_seconds)
    if len(calls) - start < max_calls:
        return start, 0.0
    return start, max(calls[len(calls) - max_calls] + per_seconds - now, 0.001)


_SHARED: dict[tuple[str, ...], Limiter] = {}
_SHARED_LOCK = threading.Lock()
# How an account's limiter is shared across machines (`bridge.connectors.budget`: in Redis when a broker is set):
# given the account's key and the in-process limiter it would have had, the limiter to use instead.
_BUDGET: list[Callable[[tuple[str, ...], Limiter], Limiter]] = []


def set_budget(share: Callable[[tuple[str, ...], Limiter], Limiter] | None) -> None:
    """Share every account's limiter through `share` from now on (None: on this machine only, the default)."""
    with _SHARED_LOCK:
        _BUDGET[:] = [share] if share else []
        _SHARED.clear()


def shared_limiter(key: tuple[str, ...], make: Callable[[], Limiter]) -> Limiter:
    """One limiter per provider account in this process (a provider counts per account, not per client object),
    itself shared by every process: on every machine when a budget is set (`set_budget`: in Redis), else by
    every process on this one (`bridge.connectors.budget.on_this_machine`: in a file)."""
    # Imported here: `budget` builds on this module's limiters.
    from bridge.connectors.budget import on_this_machine

    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            share = _BUDGET[0] if _BUDGET else on_this_machine
            found = _SHARED[key] = share(key, make())
        return found


@dataclass
class CallStats:
    """What the wire cost: calls made, retries, seconds spent waiting, responses by status."""

    calls: int = 0
    retries: int = 0
    waited: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)

    def note_retry(self, why: str) -> None:
        """Count one call made again, and why ("429", "503", "timeout", "expired token", ...)."""
        self.retries += 1
        self.retried[why] += 1

    def describe_retries(self) -> str:
        """What was retried and why, e.g. "12 retries: 429 ×5, 503 ×4, timeout ×3; waited 6.2 s"."""
        if not self.retries:
            return "no retries"
        reasons = ", ".join(f"{why} ×{n}" for why, n in sorted(self.retried.items(), key=lambda kv: (-kv[1], kv[0])))
        return f"{self.retries} retries: {reasons}; waited {self.waited:.1f} s"

    def merge(self, other: CallStats) -> None:
        """Add another connection's figures."""
        self.calls += other.calls
        self.retries += other.retries
        self.waited += other.waited
        self.statuses.update(other.statuses)
        self.retried.update(other.retried)


def retry_reason(exc: BaseException | None) -> str:
    """A short name for why a call is made again (what `sync` reports)."""
    if isinstance(exc, Throttled):
        return "429"
    if isinstance(exc, ServerError):
        return str(exc.status)
    if isinstance(exc, Unauthorized):
        return "token refused"
    if isinstance(exc, CallTooSlow):
        return "timeout"
    if isinstance(exc, ConnectionDropped):
        return "dropped connection"
    return type(exc).__name__


def _is_retriable(safe_to_repeat: bool) -> Callable[[BaseException], bool]:
    def check(exc: BaseException) -> bool:
        if isinstance(exc, Throttled | Unauthorized):
            return True  # never processed: always safe
        if not safe_to_repeat:
            return False
        return isinstance(exc, BridgeError) and exc.retriable

    return check


class _RefusedSoon(stop_base):
    """Stop once a refused connection has been tried `attempts` times."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return refused(exc) and state.attempt_number >= self.attempts


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter, honouring `Retry-After` (capped)."""

    # Eight tries: at a 30% fault rate one call in about 15,000 still fails (0.3 ** 8), yet a provider
    # that is really down costs at most `max_delay`.
    attempts: int = 8
    max_delay: float = 180.0
    initial: float = 0.5
    max_wait: float = 30.0
    # A provider's own Retry-After is honoured in full up to this (QuickBooks asks for 60 s):
    # retrying earlier only earns another 429.
    max_retry_after: float = 90.0
    # A refused connection (nothing listens) is tried this many times in all, this far apart: fail fast.
    refused_attempts: int = 3
    refused_wait: float = 0.3
    sleep: Callable[[float], None] = time.sleep

    def call(self, fn: Callable[[], T], stats: CallStats, *, safe_to_repeat: bool = True) -> T:
        """Run `fn`, retrying what is worth retrying; the last error is re-raised when the budget runs out."""

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if refused(exc):
                return self.refused_wait  # nothing listens: a moment, in case it is starting, then give up
            hinted = getattr(exc, "retry_after", None)
            if isinstance(hinted, int | float):
                return min(float(hinted), self.max_retry_after)
            ceiling = min(self.max_wait, self.initial * 2 ** (state.attempt_number - 1))
            return random.uniform(0, ceiling)

        why = [""]

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            reason = retry_reason(exc)
            stats.note_retry(reason)
            if state.next_action is not None:
                stats.waited += state.next_action.sleep
            what = "for the rate limit" if isinstance(exc, Throttled) else "before trying again"
            why[0] = f"{what} ({reason}; attempt {state.attempt_number + 1} of {self.attempts})"

        def sleep(seconds: float) -> None:
            waiting(self.sleep, seconds, why[0], _who("provider"))

        retrying = Retrying(
            retry=retry_if_exception(_is_retriable(safe_to_repeat)),
            wait=wait,
            stop=(
                stop_after_attempt(self.attempts)
                | stop_after_delay(self.max_delay)
                | _RefusedSoon(self.refused_attempts)
            ),
            before_sleep=before_sleep,
            sleep=sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except requests.ConnectionError as exc:
            if refused(exc) and not isinstance(exc, Unreachable):
                url = getattr(getattr(exc, "request", None), "url", None)
                if url:
                    raise unreachable(str(url)) from None
            raise
