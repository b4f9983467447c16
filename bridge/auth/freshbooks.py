"""FreshBooks OAuth 2.0 through freshbooks-sdk: token sets from the SDK's answers, and linking against the sandbox.

FreshBooks' refresh tokens are single use, with no grace period: the vault's lock and its
save-before-use rule are what keep a connection alive. The token JSON carries `created_at` and
`expires_in`, from which the SDK computes `access_token_expires_at` (12 hours).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import freshbooks.client
import requests
from freshbooks.client import Client

from bridge.auth.vault import TokenSet
from bridge.errors import AuthError

PRODUCTION_API = "https://api.freshbooks.com"
PRODUCTION_AUTH = "https://auth.freshbooks.com"
SANDBOX_REDIRECT = "https://127.0.0.1:8719/callback"  # FreshBooks wants https redirect URIs without a query
SCOPES = ("user:profile:read", "user:clients:read", "user:invoices:read", "user:invoices:write", "user:payments:read")


class _TokenRequests:
    """What freshbooks-sdk's `Client` sees as `requests`: its token calls (code exchange, refresh) are
    `requests.post(url, data, timeout=...)`, where the timeout is per socket read (a token endpoint that
    drips its answer would hold the caller, and the connection's token lock, for ever). Here `post` goes
    through the `Wire`, which bounds the whole call by that same timeout; everything else is requests'."""

    def post(self, url: str, data: Any = None, **kwargs: Any) -> requests.Response:
        from bridge.connectors.http import Wire

        timeout = kwargs.pop("timeout", None) or 30
        return Wire("FreshBooks' token service", timeout).request("POST", url, data=data, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(requests, name)


freshbooks.client.requests = _TokenRequests()  # type: ignore[attr-defined,assignment]


def sdk_client(
    base_url: str | None,
    client_id: str,
    client_secret: str | None,
    *,
    redirect_uri: str = SANDBOX_REDIRECT,
    timeout: int = 30,
) -> Client:
    """A freshbooks-sdk Client pointed at the emulator when `base_url` is set, with its own retries off.

    `auto_retry=True` (the SDK's default) re-sends PUTs on 400/429/5xx: an `action_email` PUT could e-mail a
    client five times. The bridge's single retry policy decides instead.
    """
    client = Client(client_id, client_secret, redirect_uri=redirect_uri, timeout=timeout, auto_retry=False)
    api = (base_url or PRODUCTION_API).rstrip("/")
    client.base_url = api
    client.token_url = f"{api}/auth/oauth/token"
    client.authorization_url = f"{(base_url or PRODUCTION_AUTH).rstrip('/')}/oauth/authorize"
    return client


def tokens_from(answer: Any, previous: TokenSet | None = None) -> TokenSet:
    """A TokenSet from what the SDK returns after a code exchange or a refresh (access, refresh, expiry)."""
    access = getattr(answer, "access_token", None)
    refresh = getattr(answer, "refresh_token", None)
    expires = getattr(answer, "access_token_expires_at", None)
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh or expires is None:
        raise AuthError("FreshBooks answered the token request without an access token, refresh token or expiry")
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        access_expires_at=expires,
        refresh_expires_at=None,  # FreshBooks refresh tokens do not expire on a clock; they are single use
        extra=dict(previous.extra) if previous else {},
    )


def account_ids(identity: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(account_id, business name) of every business the identity belongs to."""
    out: list[tuple[str, str]] = []
    for membership in identity.get("business_memberships") or []:
        business = membership.get("business") if isinstance(membership, Mapping) else None
        if isinstance(business, Mapping) and business.get("account_id"):
            out.append((str(business["account_id"]), str(business.get("name") or "")))
    return out
