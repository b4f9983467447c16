"""The token vault: OAuth tokens encrypted at rest (Fernet), refreshed one at a time per connection.

A refresh runs under the store's per-connection lock; the rotated refresh token
is committed before the new access token is used, so a crash never loses the
only valid refresh token. Tokens never appear in reprs, logs or errors.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bridge import clock
from bridge.errors import AuthError, ConfigError
from bridge.store import Store

# Refresh a little before expiry so a call never starts with a token about to die.
EARLY = timedelta(seconds=60)
# Keys that decrypt but no longer encrypt (comma-separated): the previous keys while tokens are rotated.
OLD_KEYS_ENV = "BRIDGE_SECRET_KEY_OLD"
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


def fernet_from_env(env: Mapping[str, str], key_env: str) -> MultiFernet:
    """The keys: the current one named by `[secrets] key_env` (it encrypts), then the old ones of
    `$BRIDGE_SECRET_KEY_OLD` (comma-separated; they only decrypt, so a sync works while `bridge secrets rotate`
    moves the tokens to the current key). A clear error (never a plaintext fallback) when one is missing or bad."""
    value = env.get(key_env)
    if not value:
        raise ConfigError(
            f"${key_env} is not set: it holds the key that encrypts stored tokens. Make one with: {MAKE_KEY}"
        )
    keys = [_fernet(value, f"${key_env}")]
    old = [part.strip() for part in env.get(OLD_KEYS_ENV, "").split(",")]
    keys += [_fernet(part, f"${OLD_KEYS_ENV} (key {i})") for i, part in enumerate(old, start=1) if part]
    return MultiFernet(keys)


def _fernet(value: str, where: str) -> Fernet:
    try:
        return Fernet(value.encode())
    except ValueError:
        raise ConfigError(
            f"{where} is not a Fernet key (32 url-safe base64 bytes). Make one with: {MAKE_KEY}"
        ) from None


@dataclass(frozen=True)
class Rotation:
    """What `TokenVault.rotate` did: the connections whose tokens were re-encrypted, and those it could not read."""

    rotated: tuple[str, ...]
    unreadable: tuple[str, ...]


class TokenVault:
    """Encrypted tokens per connection in the store."""

    def __init__(self, store: Store, fernet: Fernet | MultiFernet) -> None:
        self._store = store
        self._fernet = fernet if isinstance(fernet, MultiFernet) else MultiFernet([fernet])

    def rotate(self) -> Rotation:
        """Re-encrypt every stored token under the current (first) key, each under its connection's token lock
        so a refresh running meanwhile is never overwritten. Tokens no key can read are left as they are."""
        rotated: list[str] = []
        unreadable: list[str] = []
        for connection in self._store.connections():
            with self._store.token_lock(connection.name):
                row = self._store.load_token(connection.name)
                if row is None:
                    continue
                try:
                    ciphertext = self._fernet.rotate(row.ciphertext)
                except InvalidToken:
                    unreadable.append(connection.name)
                    continue
                self._store.save_token(connection.name, ciphertext, row.access_expires_at, row.refresh_expires_at)
                rotated.append(connection.name)
                kept = self._store.webhook_key(connection.name)
                if kept is not None:
                    with contextlib.suppress(InvalidToken):  # unreadable: the provider sends a new one on request
                        self._store.save_webhook_key(connection.name, self._fernet.rotate(kept))
        return Rotation(tuple(rotated), tuple(unreadable))

    def save(self, connection: str, tokens: TokenSet) -> None:
        """Encrypt and store (commits)."""
        self._store.save_token(
            connection, self._fernet.encrypt(tokens.to_json()), tokens.access_expires_at, tokens.refresh_expires_at
        )

    def save_webhook_key(self, connection: str, key: str) -> None:
        """Keep, encrypted, a webhook key the provider handed over (FreshBooks' verifier)."""
        self._store.save_webhook_key(connection, self._fernet.encrypt(key.encode("utf-8")))

    def webhook_key(self, connection: str) -> str | None:
        """The webhook key kept for a connection; None when there is none (or this key cannot read it)."""
        ciphertext = self._store.webhook_key(connection)
        if ciphertext is None:
            return None
        try:
            return self._fernet.decrypt(ciphertext).decode("utf-8")
        except InvalidToken:
            return None

    def load(self, connection: str) -> tuple[TokenSet, int]:
        """The stored tokens and their version; AuthError when the connection was never linked."""
        row = self._store.load_token(connection)
        if row is None:
            raise AuthError(f"connection {connection!r} has no tokens: link it first (bridge link)")
        try:
            return TokenSet.from_json(self._fernet.decrypt(row.ciphertext)), row.version
        except InvalidToken:
            raise AuthError(
                f"the stored tokens of {connection!r} cannot be decrypted with this key: check the secret key "
                f"(a previous key goes in ${OLD_KEYS_ENV} until `bridge secrets rotate` has run), or re-link it"
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
