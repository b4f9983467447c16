"""The token vault: OAuth tokens encrypted at rest (Fernet), refreshed one at a time per connection.

A refresh runs under the store's per-connection lock; the rotated refresh token
is committed before the new access token is used, so a crash never loses the
only valid refresh token. Tokens never appear in reprs, logs or errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from bridge import clock
from bridge.errors import AuthError, ConfigError
from bridge.store import Store

# Refresh a little before expiry so a call never starts with a token about to die.
EARLY = timedelta(seconds=60)
MAKE_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


@dataclass(frozen=True)
class TokenSet:
    """An access token, its refresh token and their expiry. The repr never shows the secrets."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def fresh(self, now: datetime) -> bool:
        """True while the access token is good for at least another minute."""
        return now + EARLY < self.access_expires_at

    def to_json(self) -> bytes:
        """Serialized form (encrypted before it is stored)."""
        return json.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "access_expires_at": self.access_expires_at.isoformat(),
                "refresh_expires_at": self.refresh_expires_at.isoformat() if self.refresh_expires_at else None,
                "extra": dict(self.extra),
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TokenSet:
        """Inverse of `to_json`."""
        obj = json.loads(data)
        return cls(
            access_token=obj["access_token"],
            refresh_token=obj["refresh_token"],
            access_expires_at=datetime.fromisoformat(obj["access_expires_at"]),
            refresh_expires_at=datetime.fromisoformat(obj["refresh_expires_at"]) if obj["refresh_expires_at"] else None,
            extra=obj.get("extra") or {},
        )


def fernet_from_env(env: Mapping[str, str], key_env: str) -> Fernet:
    """The Fernet key named by `[secrets] key_env`; a clear error (never a plaintext fallback) when missing."""
    value = env.get(key_env)
    if not value:
        raise ConfigError(
            f"${key_env} is not set: it holds the key that encrypts stored tokens. Make one with: {MAKE_KEY}"
        )
    try:
        return Fernet(value.encode())
    except ValueError:
        raise ConfigError(
            f"${key_env} is not a Fernet key (32 url-safe base64 bytes). Make one with: {MAKE_KEY}"
        ) from None


class TokenVault:
    """Encrypted tokens per connection in the store."""

    def __init__(self, store: Store, fernet: Fernet) -> None:
        self._store = store
        self._fernet = fernet

    def save(self, connection: str, tokens: TokenSet) -> None:
        """Encrypt and store (commits)."""
        self._store.save_token(
            connection, self._fernet.encrypt(tokens.to_json()), tokens.access_expires_at, tokens.refresh_expires_at
        )

    def load(self, connection: str) -> tuple[TokenSet, int]:
        """The stored tokens and their version; AuthError when the connection was never linked."""
        row = self._store.load_token(connection)
        if row is None:
            raise AuthError(f"connection {connection!r} has no tokens: link it first (bridge link)")
        try:
            return TokenSet.from_json(self._fernet.decrypt(row.ciphertext)), row.version
        except InvalidToken:
            raise AuthError(
                f"the stored tokens of {connection!r} cannot be decrypted with this key: "
                "check the secret key, or re-link the connection"
            ) from None

    def refresh(self, connection: str, seen_version: int, do_refresh: Callable[[TokenSet], TokenSet]) -> TokenSet:
        """Refresh once, under the connection's lock, unless another process already did since `seen_version`.

        The new tokens are committed before they are returned, i.e. before the new access
        token is ever used.
        """
        with self._store.token_lock(connection):
            current, version = self.load(connection)
            if version != seen_version and current.fresh(clock.now_utc()):
                return current
            new = do_refresh(current)
            self.save(connection, new)
            return new


class HeldTokens:
    """One connection's tokens as a connector holds them: read from the vault once, refreshed through its lock."""

    def __init__(self, vault: TokenVault, connection: str) -> None:
        self._vault = vault
        self._connection = connection
        self._tokens: TokenSet | None = None
        self._version = -1

    def current(self) -> TokenSet:
        """The tokens held (loaded from the vault on first use)."""
        if self._tokens is None:
            self._tokens, self._version = self._vault.load(self._connection)
        return self._tokens

    def fresh(self, do_refresh: Callable[[TokenSet], TokenSet]) -> TokenSet:
        """The tokens, refreshed first when the access token is about to expire."""
        if not self.current().fresh(clock.now_utc()):
            return self.refresh(do_refresh)
        return self.current()

    def refresh(self, do_refresh: Callable[[TokenSet], TokenSet]) -> TokenSet:
        """Refresh through the vault, which skips the call when another process already did since the version
        held; then hold what the vault has (tokens and version)."""
        self.current()
        self._vault.refresh(self._connection, self._version, do_refresh)
        self._tokens, self._version = self._vault.load(self._connection)
        return self._tokens
