"""QuickBooks OAuth 2.0 through intuit-oauth: consent URL, code exchange, and linking against the sandbox."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from bridge import clock
from bridge.auth.vault import TokenSet

SCOPE = "com.intuit.quickbooks.accounting"


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
