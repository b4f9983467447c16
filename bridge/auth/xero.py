"""Xero OAuth 2.0: token sets from xero-python's token dicts, and linking against the sandbox.

Xero's refresh tokens are single use; the previous one is accepted again for a
grace period (30 minutes), which is what lets a refresh whose answer was lost be
recovered. Apps created since March 2026 must ask for the granular scopes.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from bridge import clock
from bridge.auth.vault import TokenSet, TokenVault
from bridge.errors import AuthError
from bridge.store import Store

SCOPES = ("offline_access", "accounting.invoices", "accounting.payments", "accounting.contacts")
PRODUCTION_IDENTITY = "https://identity.xero.com"
PRODUCTION_API = "https://api.xero.com"
PRODUCTION_AUTHORIZE = "https://login.xero.com/identity/connect/authorize"
SANDBOX_REDIRECT = "http://127.0.0.1:8719/callback"


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


def link_sandbox(
    store: Store,
    vault: TokenVault,
    base_url: str,
    name: str,
    *,
    client_id: str = "sandbox-client",
    client_secret: str = "sandbox-secret",
    tenant: str | None = None,
) -> str:
    """Link a connection against the sandbox's consenting authorize endpoint; returns the tenant id.

    The steps a browser would take: consent URL with a random `state` (checked on return),
    the code exchange, then `/connections` to choose the organisation.
    """
    base = base_url.rstrip("/")
    if base.startswith("http://"):
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    state = secrets.token_urlsafe(24)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": SANDBOX_REDIRECT,
        "scope": " ".join(SCOPES),
        "state": state,
    }
    response = requests.get(f"{base}/identity/connect/authorize?{urlencode(query)}", allow_redirects=False, timeout=30)
    back = {k: v[0] for k, v in parse_qs(urlsplit(response.headers.get("Location", "")).query).items()}
    if response.status_code not in (301, 302, 303, 307) or back.get("state") != state or "code" not in back:
        raise AuthError("the sandbox did not redirect back with the right state; is it a Xero emulator?")
    answer = requests.post(
        token_url(base),
        data={"grant_type": "authorization_code", "code": back["code"], "redirect_uri": SANDBOX_REDIRECT},
        auth=(client_id, client_secret),
        timeout=30,
    )
    if answer.status_code != 200:
        raise AuthError(f"Xero refused the authorization code (HTTP {answer.status_code})")
    tokens = tokens_from(answer.json())
    listed = requests.get(
        f"{base}/connections", headers={"Authorization": f"Bearer {tokens.access_token}"}, timeout=30
    ).json()
    tenants = [str(c.get("tenantId")) for c in listed if isinstance(c, Mapping)]
    if tenant is None:
        if len(tenants) != 1:
            raise AuthError(f"the sandbox has {len(tenants)} Xero organisations: choose one ({', '.join(tenants)})")
        tenant = tenants[0]
    elif tenant not in tenants:
        raise AuthError(f"Xero organisation {tenant} is not among the connected ones ({', '.join(tenants)})")
    store.upsert_connection(name, "xero", tenant, base_url)
    vault.save(name, tokens)
    return tenant
