"""QuickBooks OAuth 2.0 through intuit-oauth: consent URL, code exchange, and linking against the sandbox."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import requests

from bridge import clock
from bridge.auth.vault import TokenSet

SCOPE = "com.intuit.quickbooks.accounting"
# Asks the token endpoint for `x_refresh_token_hard_expires_in`: since 2025 a refresh token ends for good after
# at most five years, whatever the rolling 100 days say; the server warns well before (docs/server.md).
HARD_EXPIRY_HEADER = "x-include-refresh-token-hard-expires-in"


def _hard_expiry_in(response: Any) -> int | None:
    try:
        value = response.json().get("x_refresh_token_hard_expires_in")
    except (ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def auth_client(
    base_url: str | None,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    timeout: float = 30.0,
    bound: str | None = None,
) -> Any:
    """An intuit-oauth AuthClient whose every call (discovery, code exchange, refresh, revoke) ends within
    `timeout` seconds (`bound` says what that limit is, in errors); an emulator is reached through its
    discovery document.

    intuit-oauth passes no timeout to requests, so a token endpoint that never answers would hang the caller
    (and whatever lock it holds). The AuthClient is itself the `requests.Session` all its calls go through
    (`send_request(..., session=self)`, `get_discovery_doc(..., session=self)`): its `request` is ours.
    """
    from intuitlib.client import AuthClient  # type: ignore[import-untyped]

    from bridge.connectors.http import Wire

    class TimedAuthClient(AuthClient):  # type: ignore[misc]
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if args:  # requests.Session.request's positional order: params, data, headers, ...
                raise TypeError("TimedAuthClient.request takes keyword arguments only")
            kwargs.pop("timeout", None)
            token_call = method.upper() == "POST" and url == getattr(self, "token_endpoint", None)
            if token_call:  # ask for the refresh token's hard expiry too (intuit-oauth does not)
                kwargs["headers"] = {**(kwargs.get("headers") or {}), HARD_EXPIRY_HEADER: "true"}
            wire = Wire("QuickBooks' token service", timeout, session=_Plain(self), bound=bound)
            response = wire.request(method, url, **kwargs)
            if token_call:
                self.x_refresh_token_hard_expires_in = _hard_expiry_in(response)
            return response

    if base_url and base_url.startswith("http://"):
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    environment = f"{base_url.rstrip('/')}/.well-known/openid_configuration" if base_url else "production"
    return TimedAuthClient(client_id, client_secret, redirect_uri, environment)


class _Plain:
    """A session's own `requests.Session.request` (not the override that routes through the `Wire`)."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        return requests.Session.request(self._session, method, url, **kwargs)

    def mount(self, prefix: str, adapter: Any) -> None:
        self._session.mount(prefix, adapter)


def tokens_from(client: Any) -> TokenSet:
    """The TokenSet an AuthClient holds after an exchange or a refresh."""
    now = clock.now_utc()
    refresh_life = getattr(client, "x_refresh_token_expires_in", None)
    hard_life = getattr(client, "x_refresh_token_hard_expires_in", None)
    extra: dict[str, str] = {"realm_id": client.realm_id} if getattr(client, "realm_id", None) else {}
    if hard_life:
        extra["refresh_hard_expires_at"] = (now + timedelta(seconds=int(hard_life))).isoformat()
    return TokenSet(
        access_token=client.access_token,
        refresh_token=client.refresh_token,
        access_expires_at=now + timedelta(seconds=int(client.expires_in or 3600)),
        refresh_expires_at=now + timedelta(seconds=int(refresh_life)) if refresh_life else None,
        extra=extra,
    )
