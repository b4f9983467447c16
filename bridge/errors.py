"""The exception tree of bridge.

Every error the bridge raises on purpose is a `BridgeError`; its message says
what happened and what to do next. `retriable` on the class is the only thing
a retry rule needs to look at.

    BridgeError
    ├── ConfigError          bad config file or bad command-line input (exit 2)
    ├── DataError            a provider or input record that cannot be mapped (quarantined)
    ├── AuthError            missing, expired or revoked credentials
    ├── ProviderError        a provider call failed
    │   └── RetriableProviderError   429, 5xx, timeouts: worth another try
    └── ConflictError        a planned action's premise changed (paid, voided, edited)
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every deliberate bridge error."""

    retriable: bool = False
    exit_code: int = 1


class ConfigError(BridgeError):
    """The configuration or the command line is wrong. Nothing has been touched."""

    exit_code = 2

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + p for p in self.problems))


class DataError(BridgeError):
    """A record (provider payload or input file entry) cannot be turned into the model."""

    exit_code = 3


class AuthError(BridgeError):
    """Credentials are missing, expired or revoked; re-link the connection."""


class ProviderError(BridgeError):
    """A provider call failed for good."""


class RetriableProviderError(ProviderError):
    """A provider call failed in a way that may succeed if tried again (429, 5xx, timeout)."""

    retriable = True


class ConflictError(BridgeError):
    """A planned action's premise no longer holds; the action is dropped, never applied blind."""
