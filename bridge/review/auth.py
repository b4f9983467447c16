"""Who may look and act: users with argon2 hashes, signed session cookies, CSRF tokens, one-time links.

- A session is a cookie signed with a key derived from the bridge's secret key (itsdangerous), holding the user
  (or, for a one-time link, the one plan it opens), a CSRF token and when it was made; HttpOnly, SameSite=Lax,
  Secure when the page is served over HTTPS. Every form carries the session's CSRF token; a post without it is
  refused.
- A one-time link is signed too, names one plan and a random id, expires (15 minutes by default) and works once:
  its id is recorded in the store the first time (`used_links`), and a second use is refused.
- Failed sign-ins are counted per name in the store: after `MAX_FAILURES` within `FAILURE_WINDOW`, that name
  cannot sign in (not even with the right password) until the window has passed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bridge import clock
from bridge.store.review import Reviews, User

SESSION_COOKIE = "bridge_review"
SESSION_AGE = 8 * 3600  # seconds a session lasts
LINK_AGE = 15 * 60  # seconds a one-time link works
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _HASHER.hash(password)


def check_password(user: User | None, password: str) -> bool:
    """True when `password` is the user's; hashes anyway for an unknown user (no timing hint of who exists)."""
    if user is None:
        _HASHER.hash(password)
        return False
    try:
        return _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose from the bridge's secret key (sessions and links never share a key with tokens)."""
    return hmac.new(secret.encode("utf-8"), f"bridge.review.{purpose}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    """A signed-in browser: a user (or a one-time link's plan) and its CSRF token."""

    user: str | None  # None: not signed in (a visitor holding only a CSRF token for the sign-in form)
    csrf: str
    plan: str | None = None  # a one-time link's session sees only this plan
    via: str | None = None  # the channel whose link opened it

    @property
    def signed_in(self) -> bool:
        """True for a user or a one-time link."""
        return self.user is not None

    @property
    def by_link(self) -> bool:
        """True when a one-time link opened this session (the reviewer then types their name on each form)."""
        return self.plan is not None


class Keys:
    """Signing and reading sessions and links, with keys derived from the bridge's secret key."""

    def __init__(self, secret: str, *, link_age: int = LINK_AGE, session_age: int = SESSION_AGE) -> None:
        key = derive_key(secret, "pages")
        self._sessions = URLSafeTimedSerializer(key, salt="session")
        self._links = URLSafeTimedSerializer(key, salt="one-time-link")
        self.link_age = link_age
        self.session_age = session_age

    def new_session(self, user: str | None, *, plan: str | None = None, via: str | None = None) -> Session:
        """A fresh session with a new CSRF token."""
        return Session(user, secrets.token_urlsafe(24), plan, via)

    def dump_session(self, session: Session) -> str:
        """The cookie value."""
        return self._sessions.dumps({"u": session.user, "c": session.csrf, "p": session.plan, "v": session.via})

    def load_session(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, or None (absent, forged, or older than `session_age`)."""
        if not cookie:
            return None
        try:
            data: Any = self._sessions.loads(cookie, max_age=self.session_age)
        except (BadSignature, SignatureExpired):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        return Session(data.get("u"), data["c"], data.get("p"), data.get("v"))

    def make_link_token(self, plan_id: str, channel: str) -> str:
        """A one-time link token for a plan, as posted to `channel`."""
        return self._links.dumps({"p": plan_id, "j": secrets.token_urlsafe(16), "v": channel})

    def read_link_token(self, token: str) -> tuple[str, str, str]:
        """(plan id, token id, channel); ValueError saying why when forged or expired."""
        try:
            data: Any = self._links.loads(token, max_age=self.link_age)
        except SignatureExpired:
            raise ValueError("this link has expired; sign in to open the plan") from None
        except BadSignature:
            raise ValueError("this link is not valid") from None
        return str(data["p"]), str(data["j"]), str(data.get("v", ""))


def csrf_ok(session: Session | None, sent: object) -> bool:
    """True when the form's CSRF token is the session's."""
    return session is not None and isinstance(sent, str) and hmac.compare_digest(session.csrf, sent)


def throttled(reviews: Reviews, name: str) -> bool:
    """True when `name` has failed to sign in too often lately."""
    return reviews.failures_since(name, clock.now_utc() - FAILURE_WINDOW) >= MAX_FAILURES
