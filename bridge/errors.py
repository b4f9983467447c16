"""The exception tree of bridge: every exception the bridge raises on purpose, in one module.

Every error the bridge raises on purpose is a `BridgeError`; its message says
what happened and what to do next. Two class (or instance) attributes are all a
caller needs to look at: `retriable` (the retry policy: worth another try) and
`outcome_unknown` (the ledger: the call may have reached the provider, so a write
is reconciled, never repeated blind). The transport (`bridge.connectors.http`)
turns `requests` exceptions into `TransportError`s at the boundary, so nothing
above the connectors sees a `requests` exception.

    BridgeError
    ├── ConfigError              bad config file or bad command-line input (exit 2)
    ├── DataError                a provider or input record that cannot be mapped (quarantined)
    ├── AuthError                missing, expired or revoked credentials
    │   └── Unauthorized         401 even after a refresh (retriable: a new token may be refused a moment)
    ├── ProviderError            a provider call failed (the provider answered)
    │   ├── RetriableProviderError   worth another try
    │   │   ├── Throttled        429: not processed
    │   │   ├── ServerError      5xx: processed or not (outcome unknown)
    │   │   └── NumberCollision  FreshBooks 409 on a create no existing invoice explains
    │   ├── QuotaExhausted       the provider's daily limit is (nearly) used up: left for the next run
    │   ├── BodyTooLarge         an answer larger than the bridge reads
    │   ├── DeadlineExceeded     a connection's sync ran past `sync_deadline_seconds`
    │   ├── StalledPull          a paged read that stopped moving or grew past its bound
    │   ├── XeroHTTPError        a 4xx from Xero, with its validation messages
    │   └── FreshBooksHTTPError  a 4xx from FreshBooks, with its errno and messages
    ├── TransportError           the call did not complete on the wire (`outcome_unknown` says if it may have)
    │   ├── CallTooSlow          no full answer within the call's wall-clock bound (outcome unknown)
    │   └── ConnectionDropped    the connection failed or dropped mid-call (outcome unknown)
    │       └── Unreachable      connection refused: never sent (outcome known), tried a few times quickly
    ├── MailError                an SMTP hand-over failed (the mail server answered, or the line broke)
    │   ├── MailDeferred         4xx, or the line broke before the message was handed over: retriable
    │   ├── MailRejected         5xx: the server refused it for good (its words kept); nothing was sent
    │   └── MailLost             the line broke after the whole message was sent: outcome unknown
    ├── ConflictError            a planned action's premise changed (paid, voided, edited)
    └── StoreBusyError           another process held a store lock too long (retriable)
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every deliberate bridge error."""

    retriable: bool = False
    # The call may have reached the provider (a write may have been done): the ledger reconciles, never repeats.
    outcome_unknown: bool = False
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


class Unauthorized(AuthError):
    """HTTP 401 even with an access token refreshed for it: the call was not processed.

    Tried again (each try refreshes once more) within the retry budget: a token just issued can be
    refused for a moment. When the budget runs out the message says what to do: re-link.
    """

    retriable = True


class ProviderError(BridgeError):
    """A provider call failed for good."""


class RetriableProviderError(ProviderError):
    """A provider call failed in a way that may succeed if tried again (429, 5xx)."""

    retriable = True


class Throttled(RetriableProviderError):
    """HTTP 429: the provider did not process the call; wait `retry_after` seconds if it said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(RetriableProviderError):
    """HTTP 5xx: the provider failed; the call may or may not have been processed."""

    outcome_unknown = True

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class NumberCollision(RetriableProviderError):
    """409 on a FreshBooks invoice create that no existing invoice explains: a concurrent create took the number."""


class QuotaExhausted(ProviderError):
    """The provider's daily call limit is (nearly) used up: the call was not made, or not processed.

    Not retried: what is left waits for the next run (the sync defers it; nothing fails or is dropped).
    """


class BodyTooLarge(ProviderError):
    """An answer larger than the bridge reads (`MAX_BODY_BYTES`): refused, never retried."""


class DeadlineExceeded(ProviderError):
    """A connection's sync ran past its deadline (`sync_deadline_seconds`): no further call is made."""


class StalledPull(ProviderError):
    """A paged read that stopped moving (the same page again, a lying page count) or grew past its bound."""


class XeroHTTPError(ProviderError):
    """A 4xx answer from Xero, with its validation messages."""

    def __init__(self, message: str, status: int, messages: list[str]) -> None:
        super().__init__(message)
        self.status = status
        self.messages = messages


class FreshBooksHTTPError(ProviderError):
    """A 4xx answer from FreshBooks, with its `errno` and messages."""

    def __init__(self, message: str, status: int, errno: int | None, messages: list[str]) -> None:
        super().__init__(message)
        self.status = status
        self.errno = errno
        self.messages = messages


class TransportError(BridgeError):
    """A call that did not complete on the wire. `outcome_unknown`: it may have reached the provider
    (a timeout, a dropped connection), so it is retried only where repeating is safe, and a write is
    reconciled, never repeated blind; otherwise (a malformed request, say) it was never sent."""

    def __init__(self, message: str, *, outcome_unknown: bool = True) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown
        self.retriable = outcome_unknown


class CallTooSlow(TransportError):
    """A call that did not finish (connect, answer and the whole body) within its wall-clock bound."""


class ConnectionDropped(TransportError):
    """The connection could not be made, or dropped before the whole answer arrived."""


class Unreachable(ConnectionDropped):
    """Nothing listens at the provider's address (connection refused): the call was never sent, so its
    outcome is known; it is tried a few times quickly (something may be starting), then the sync says so."""

    def __init__(self, message: str) -> None:
        super().__init__(message, outcome_unknown=False)
        self.retriable = True


class MailError(BridgeError):
    """An e-mail could not be handed over to the firm's mail server."""


class MailDeferred(MailError):
    """A 4xx answer, or a connection that failed before the message was handed over: nothing was accepted,
    so trying again within the retry budget is safe."""

    retriable = True


class MailRejected(MailError):
    """A 5xx answer: the server refused the message (or the login) for good; nothing was sent."""


class MailLost(MailError):
    """The whole message was sent but the server's answer never came: it may have been accepted.
    Never sent again (the reminder is `in_doubt`)."""

    outcome_unknown = True


class ConflictError(BridgeError):
    """A planned action's premise no longer holds; the action is dropped, never applied blind."""


class StoreBusyError(BridgeError):
    """Another process held a lock in the store for longer than we were willing to wait; try again."""

    retriable = True
