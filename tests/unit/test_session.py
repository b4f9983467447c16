"""`ProviderSession`: one limiter per provider account, one refresh-on-401, one explicit "safe to repeat" flag
(no network: a fake HTTP session and a fake vault)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import requests

from bridge.auth.vault import TokenSet, TokenVault
from bridge.connectors.http import RateLimiter, RetryPolicy
from bridge.connectors.quickbooks import QuickBooksConnector
from bridge.connectors.session import ProviderSession
from bridge.errors import AuthError, ServerError, Unauthorized

LATER = datetime(2999, 1, 1, tzinfo=UTC)


class FakeVault:
    def __init__(self) -> None:
        self.tokens = TokenSet("access-0", "refresh-0", LATER)
        self.version = 0

    def load(self, connection: str) -> tuple[TokenSet, int]:
        return self.tokens, self.version

    def refresh(self, connection: str, seen: int, do_refresh: Callable[[TokenSet], TokenSet]) -> TokenSet:
        self.tokens, self.version = do_refresh(self.tokens), self.version + 1
        return self.tokens


class FakeHTTP:
    """Answers with the statuses given, in turn; records the Authorization header of each call."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.sent: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.sent.append(kwargs["headers"].get("Authorization", ""))
        response = requests.Response()
        response.status_code = self.statuses.pop(0)
        response.raw = io.BytesIO(b"{}")
        return response


def session(http: FakeHTTP, *, credentials: bool = True) -> ProviderSession:
    def refresh(current: TokenSet) -> TokenSet:
        number = int(current.access_token.rsplit("-", 1)[1]) + 1
        return TokenSet(f"access-{number}", f"refresh-{number}", LATER)

    return ProviderSession(
        "demo",
        "Demo",
        "acme",
        cast(TokenVault, FakeVault()),
        account=("http://127.0.0.1:1", "tenant"),
        refresh=refresh,
        make_limiter=lambda: RateLimiter(1000, 1000),
        credentials=credentials,
        policy=RetryPolicy(sleep=lambda _: None),
        http=http,
    )


def test_two_quickbooks_connections_to_one_company_share_one_budget() -> None:
    vault = cast(TokenVault, FakeVault())
    one = QuickBooksConnector("a", "123", vault, base_url="http://127.0.0.1:9")
    two = QuickBooksConnector("b", "123", vault, base_url="http://127.0.0.1:9")
    other = QuickBooksConnector("c", "456", vault, base_url="http://127.0.0.1:9")
    assert one.session.limiter is two.session.limiter
    assert other.session.limiter is not one.session.limiter


def test_a_401_refreshes_once_and_tries_again_with_the_new_token() -> None:
    http = FakeHTTP(401, 200)
    s = session(http)
    assert s.send("GET", "http://127.0.0.1:1/x", safe_to_repeat=True).status_code == 200
    assert http.sent == ["Bearer access-0", "Bearer access-1"]
    assert s.stats.calls == 2 and dict(s.stats.retried) == {"expired token": 1}


def test_a_second_401_is_unauthorized_and_says_re_link() -> None:
    s = session(FakeHTTP(401, 401))
    with pytest.raises(Unauthorized, match="Demo refused the credentials of 'acme' after a refresh: re-link it"):
        s.request("GET", "http://127.0.0.1:1/x")


def test_a_call_not_safe_to_repeat_is_not_retried_after_a_5xx_but_is_after_a_429() -> None:
    http = FakeHTTP(503, 200)
    with pytest.raises(ServerError):
        session(http).send("POST", "http://127.0.0.1:1/send", safe_to_repeat=False)
    assert len(http.sent) == 1
    http = FakeHTTP(429, 200)
    assert session(http).send("POST", "http://127.0.0.1:1/send", safe_to_repeat=False).status_code == 200
    assert len(http.sent) == 2


def test_a_refresh_without_the_apps_credentials_names_what_to_set() -> None:
    s = session(FakeHTTP(401), credentials=False)
    with pytest.raises(AuthError, match="BRIDGE_DEMO_CLIENT_ID and BRIDGE_DEMO_CLIENT_SECRET"):
        s.request("GET", "http://127.0.0.1:1/x")
