"""QuickBooks OAuth 2.0 through intuit-oauth: consent URL, code exchange, and linking against the sandbox."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from bridge import clock
from bridge.auth.vault import TokenSet, TokenVault
from bridge.errors import AuthError
from bridge.store import Store

SCOPE = "com.intuit.quickbooks.accounting"
SANDBOX_REDIRECT = "http://127.0.0.1:8719/callback"


def auth_client(base_url: str | None, client_id: str, client_secret: str, redirect_uri: str) -> Any:
    """An intuit-oauth AuthClient; an emulator is reached through its discovery document."""
    from intuitlib.client import AuthClient  # type: ignore[import-untyped]

    if base_url and base_url.startswith("http://"):
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    environment = f"{base_url.rstrip('/')}/.well-known/openid_configuration" if base_url else "production"
    return AuthClient(client_id, client_secret, redirect_uri, environment)


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


def link_sandbox(
    store: Store,
    vault: TokenVault,
    base_url: str,
    name: str,
    *,
    client_id: str = "sandbox-client",
    client_secret: str = "sandbox-secret",
) -> str:
    """Link a connection against the sandbox's consenting authorize endpoint; returns the realm id.

    The same steps a browser would take: consent URL with a random `state`, the
    redirect carrying `code`, `state` and `realmId` (the state is checked), and
    the code exchange through intuit-oauth.
    """
    from intuitlib.enums import Scopes  # type: ignore[import-untyped]

    client = auth_client(base_url, client_id, client_secret, SANDBOX_REDIRECT)
    state = secrets.token_urlsafe(24)
    url = client.get_authorization_url([Scopes.ACCOUNTING], state_token=state)
    response = requests.get(url, allow_redirects=False, timeout=30)
    location = response.headers.get("Location", "")
    query = parse_qs(urlsplit(location).query)
    if response.status_code not in (301, 302, 303, 307) or query.get("state", [""])[0] != state:
        raise AuthError("the sandbox did not redirect back with the right state; is it a QuickBooks emulator?")
    realm_id = query["realmId"][0]
    client.get_bearer_token(query["code"][0], realm_id=realm_id)
    store.upsert_connection(name, "quickbooks", realm_id, base_url)
    vault.save(name, tokens_from(client))
    return realm_id
