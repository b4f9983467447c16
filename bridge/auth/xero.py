"""Xero OAuth 2.0: token sets from xero-python's token dicts, and linking against the sandbox.

Xero's refresh tokens are single use; the previous one is accepted again for a
grace period (30 minutes), which is what lets a refresh whose answer was lost be
recovered. Apps created since March 2026 must ask for the granular scopes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from bridge import clock
from bridge.auth.vault import TokenSet
from bridge.errors import AuthError

SCOPES = ("offline_access", "accounting.invoices", "accounting.payments", "accounting.contacts")
PRODUCTION_IDENTITY = "https://identity.xero.com"
PRODUCTION_API = "https://api.xero.com"
PRODUCTION_AUTHORIZE = "https://login.xero.com/identity/connect/authorize"


def token_url(base_url: str | None) -> str:
    """Where tokens are exchanged and refreshed (the emulator's when `base_url` is set)."""
    return f"{base_url.rstrip('/')}/connect/token" if base_url else f"{PRODUCTION_IDENTITY}/connect/token"


def tokens_from(token: Mapping[str, Any], previous: TokenSet | None = None) -> TokenSet:
    """A TokenSet from a token response as xero-python hands it to `oauth2_token_saver`."""
    access, refresh = token.get("access_token"), token.get("refresh_token")
    if not isinstance(access, str) or not access:
        raise AuthError("Xero answered the token request without an access token")
    if not isinstance(refresh, str) or not refresh:
        if previous is None:
            raise AuthError("Xero answered without a refresh token: was the offline_access scope granted?")
        refresh = previous.refresh_token
    scope = token.get("scope") or (previous.extra.get("scope") if previous else None) or list(SCOPES)
    extra = {
        **(dict(previous.extra) if previous else {}),
        "scope": scope if isinstance(scope, list) else str(scope).split(),
    }
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        access_expires_at=clock.now_utc() + timedelta(seconds=int(token.get("expires_in") or 1800)),
        # An unused Xero refresh token lives 60 days.
        refresh_expires_at=clock.now_utc() + timedelta(days=60),
        extra=extra,
    )


def sdk_token(tokens: TokenSet) -> dict[str, Any]:
    """The token dict xero-python's `oauth2_token_getter` returns.

    No `expires_at`: the SDK then never refreshes on its own (outside the vault's lock);
    the connector refreshes ahead of expiry, and on a 401, through the SDK's own refresh call.
    """
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "token_type": "Bearer",
        "expires_in": max(0, int((tokens.access_expires_at - clock.now_utc()).total_seconds())),
        "scope": list(tokens.extra.get("scope") or SCOPES),
    }
