"""QuickBooks OAuth 2.0 through intuit-oauth: consent URL, code exchange, and linking against the sandbox."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import requests

from bridge import clock
from bridge.auth.vault import TokenSet

SCOPE = "com.intuit.quickbooks.accounting"


def auth_client(
    base_url: str | None,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    timeout: float = 30.0,
    bound: str | None = None,
    *,
    environment: str = "production",
) -> Any:
    """An intuit-oauth AuthClient whose every call (discovery, code exchange, refresh, revoke) ends within
    `timeout` seconds (`bound` says what that limit is, in errors); an emulator is reached through its
    discovery document, Intuit through the discovery document of `environment` ("production", or "sandbox"
    for its development companies: intuit-oauth's own switch).

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
            wire = Wire("QuickBooks' token service", timeout, session=_Plain(self), bound=bound)
            return wire.request(method, url, **kwargs)

    if base_url and base_url.startswith("http://"):
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    discovery = f"{base_url.rstrip('/')}/.well-known/openid_configuration" if base_url else environment
    return TimedAuthClient(client_id, client_secret, redirect_uri, discovery)


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
    return TokenSet(
        access_token=client.access_token,
        refresh_token=client.refresh_token,
        access_expires_at=now + timedelta(seconds=int(client.expires_in or 3600)),
        refresh_expires_at=now + timedelta(seconds=int(refresh_life)) if refresh_life else None,
        extra={"realm_id": client.realm_id} if getattr(client, "realm_id", None) else {},
    )
