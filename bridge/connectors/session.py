"""One connection's way to its provider: what the three connectors used to wire up each on its own.

A `ProviderSession` owns, for one linked connection:
- the rate limiter, shared by every session on the same provider account in this process, and its window by
  every process on this machine (in Redis across machines with a broker; `bridge.connectors.budget`): a
  provider counts calls per company / organisation / business, not per client object or process;
- the held tokens (refreshed ahead of expiry, and once on a 401, under the vault's lock);
- the one retry policy, with its sleeps bounded by the pull's deadline;
- the call statistics;
- the `Wire` every call goes through (each call bounded in time and size; `requests` errors become bridge
  errors there).

`request` makes one call (paced, authorized, one refresh and one more try on a 401, 429/5xx turned into the
errors the retry policy knows); `call` runs anything under the retry policy with an explicit `safe_to_repeat`;
`send` is the two together. A call that is not safe to repeat (an e-mail without an idempotency key) is
retried only when the provider said it did not process it (429, 401).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import requests

from bridge.auth.vault import HeldTokens, TokenSet, TokenVault
from bridge.connectors.http import CallStats, Limiter, RetryPolicy, Wire, raise_for_retriable, shared_limiter
from bridge.errors import AuthError, TransportError, Unauthorized

T = TypeVar("T")


class ProviderSession:
    """The limiter, tokens, retry policy, statistics and wire of one connection to one provider account."""

    def __init__(
        self,
        provider: str,
        label: str,
        connection: str,
        vault: TokenVault,
        *,
        account: tuple[str, ...],
        refresh: Callable[[TokenSet], TokenSet],
        make_limiter: Callable[[], Limiter],
        credentials: bool,
        limiter: Limiter | None = None,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
        sync_deadline: float | None = None,
        http: Any = None,
    ) -> None:
        """`provider` names the wire and keys the shared limiter with `account` (what the provider counts per:
        base URL and tenant); `label` names the provider in messages; `refresh` turns held tokens into new ones
        (it runs only with the app's `credentials`)."""
        self.provider = provider
        self.label = label
        self.connection = connection
        self.timeout = timeout
        self.sync_deadline = sync_deadline
        self.wire = Wire(provider, timeout, session=http)
        policy = policy or RetryPolicy()
        self.policy = dataclasses.replace(policy, sleep=self.wire.bounded_sleep(policy.sleep))
        self.limiter = limiter or shared_limiter((provider, *account), make_limiter)
        self.stats = CallStats()
        self.tokens = HeldTokens(vault, connection)
        self._refresh = refresh
        self._credentials = credentials

    # -- tokens ------------------------------------------------------------------------------

    def refresh(self, current: TokenSet) -> TokenSet:
        """The provider's refresh, which needs the app's credentials (the vault calls it under its lock)."""
        if not self._credentials:
            env = f"BRIDGE_{self.provider.upper()}"
            raise AuthError(
                f"refreshing {self.label} tokens needs the app's credentials: set {env}_CLIENT_ID and "
                f"{env}_CLIENT_SECRET"
            )
        try:
            return self._refresh(current)
        except TransportError as exc:
            raise self.wire.note(exc) from None  # the deadline's error then says what hung

    def access_token(self) -> str:
        """The current access token, refreshed first when it is (nearly) expired."""
        return self.tokens.fresh(self.refresh).access_token

    def refresh_timeout(self) -> tuple[float, str]:
        """How long a token refresh may take, and what that bound is (in errors): a refresh is a call of the
        pull like any other, so within what is left of its deadline."""
        left = self.wire.remaining()
        if left is not None and left < self.timeout:
            return left, "what was left of sync_deadline_seconds"
        return self.timeout, self.wire.bound

    # -- calls -------------------------------------------------------------------------------

    @contextmanager
    def pulling(self) -> Iterator[None]:
        """Every call in the block within the connection's pull deadline (`sync_deadline_seconds`)."""
        bound = f"the pull of {self.connection!r} ran past sync_deadline_seconds = {self.sync_deadline or 0:g}"
        with self.wire.deadline(self.sync_deadline, bound):
            yield

    def request(
        self,
        method: str,
        url: str,
        *,
        authorize: bool = True,
        screen: Callable[[requests.Response], None] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One call, not retried here. With `authorize`, it carries the access token, and a 401 refreshes the
        tokens once (the vault skips it when another process already did) and makes the call again; a second
        401 is `Unauthorized`. Then `screen` may turn a provider's own answer into an error, and a 429 or 5xx
        becomes `Throttled` or `ServerError`."""
        response = self._once(method, url, authorize, kwargs)
        if authorize and response.status_code == 401:
            # A 401: the expiry time held cannot be trusted.
            self.stats.note_retry("expired token")
            self.tokens.refresh(self.refresh)
            response = self._once(method, url, authorize, kwargs)
            if response.status_code == 401:
                raise Unauthorized(
                    f"{self.label} refused the credentials of {self.connection!r} after a refresh: re-link it"
                )
        if screen is not None:
            screen(response)
        raise_for_retriable(response, self.label)
        return response

    def _once(self, method: str, url: str, authorize: bool, kwargs: dict[str, Any]) -> requests.Response:
        self.stats.waited += self.limiter.acquire()
        headers = dict(kwargs.get("headers") or {})
        if authorize:
            headers["Authorization"] = f"Bearer {self.access_token()}"
        self.stats.calls += 1
        response = self.wire.request(method, url, **{**kwargs, "headers": headers})
        self.stats.statuses[response.status_code] += 1
        return response

    def call(self, fn: Callable[[], T], *, safe_to_repeat: bool) -> T:
        """`fn` under the one retry policy. Not `safe_to_repeat`: tried again only when the provider said it
        did not process the call (429, 401)."""
        return self.policy.call(fn, self.stats, safe_to_repeat=safe_to_repeat)

    def send(
        self,
        method: str,
        url: str,
        *,
        safe_to_repeat: bool,
        authorize: bool = True,
        screen: Callable[[requests.Response], None] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """`request` under the retry policy."""
        return self.call(
            lambda: self.request(method, url, authorize=authorize, screen=screen, **kwargs),
            safe_to_repeat=safe_to_repeat,
        )
