"""Provider webhooks: verify the signature, find the tenants they name, and nothing more.

A webhook is a hint, never the data: a verified one only brings its connection's next sync forward.

- QuickBooks: `intuit-signature` = base64(HMAC-SHA256(verifier token, raw body)). The body is a JSON array of
  CloudEvents (`intuitaccountid` is the realm id) or, in the legacy form, `{"eventNotifications": [{"realmId",
  ...}]}`.
- Xero: `x-xero-signature` = base64(HMAC-SHA256(webhook key, raw body)); the body is `{"events": [{"tenantId",
  ...}], ...}`. The "intent to receive" check sends signed and badly signed empty batches: 200 and 401.
- FreshBooks: `X-FreshBooks-Hmac-SHA256` = base64(HMAC-SHA256(verifier, json.dumps(form fields))), the form
  fields in the order sent, one value each, Python's default separators (the recipe FreshBooks' Python SDK
  documents). The body is form-encoded: `name, object_id, account_id, business_id, identity_id, user_id`; the
  registration message carries `verifier` instead of an event.

Each connection names the environment variable holding its provider's key (`webhook_secret_env`); without
one, a FreshBooks connection uses the verifier FreshBooks handed over at registration (kept encrypted). A
body is checked against every key of that provider's connections; the key that matches says which
connections the sender may speak for. Tenants named in a verified body that match no such connection are
"unknown" (counted).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from bridge.config import ConnectionSettings

SIGNATURE_HEADERS = {
    "quickbooks": "intuit-signature",
    "xero": "x-xero-signature",
    "freshbooks": "x-freshbooks-hmac-sha256",
}


@dataclass(frozen=True)
class Verdict:
    """What a webhook delivery amounts to."""

    verified: bool
    connections: tuple[str, ...] = ()  # to bring forward
    unknown_tenants: tuple[str, ...] = ()
    problem: str = ""


def registration(body: bytes) -> tuple[str, str, str | None] | None:
    """FreshBooks' registration message: (callback id, verifier, account id or None); None for any other."""
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None
    if not fields.get("verifier") or not fields.get("object_id"):
        return None
    return fields["object_id"], fields["verifier"], fields.get("account_id") or None


def sign(key: str, message: bytes) -> str:
    """base64(HMAC-SHA256(key, message)): the signature all three providers use."""
    return base64.b64encode(hmac.new(key.encode("utf-8"), message, hashlib.sha256).digest()).decode("ascii")


def freshbooks_message(fields: Sequence[tuple[str, str]]) -> bytes:
    """What FreshBooks signs: the form fields as `json.dumps` writes a dict of them (order kept)."""
    return json.dumps(dict(fields)).encode("utf-8")


def tenants_in(provider: str, body: bytes) -> list[str]:
    """The tenant ids a body names; ValueError for a body that is not the provider's format."""
    if provider == "freshbooks":
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        return [fields["account_id"]] if fields.get("account_id") else []
    data: Any = json.loads(body.decode("utf-8") or "null")
    if provider == "quickbooks":
        if isinstance(data, list):  # CloudEvents
            return [str(e["intuitaccountid"]) for e in data if isinstance(e, dict) and e.get("intuitaccountid")]
        if isinstance(data, dict) and isinstance(data.get("eventNotifications"), list):
            return [str(n["realmId"]) for n in data["eventNotifications"] if isinstance(n, dict) and n.get("realmId")]
        raise ValueError("neither CloudEvents nor the legacy eventNotifications form")
    if provider == "xero":
        if isinstance(data, dict) and isinstance(data.get("events"), list):
            return [str(e["tenantId"]) for e in data["events"] if isinstance(e, dict) and e.get("tenantId")]
        raise ValueError("not a Xero webhook batch (no events list)")
    raise ValueError(f"no webhooks for provider {provider!r}")


KeyOf = Callable[[ConnectionSettings], "str | None"]
"""A connection's webhook key (None: it has none)."""


def verify(
    provider: str,
    body: bytes,
    signature: str | None,
    connections: Sequence[ConnectionSettings],
    key_of: KeyOf,
) -> Verdict:
    """Check a delivery against every key configured for `provider`; which connections it brings forward."""
    if not signature:
        return Verdict(False, problem="no signature header")
    keyed = [(c, key_of(c)) for c in connections if c.provider == provider]
    keys = {key for _, key in keyed if key}
    if not keys:
        return Verdict(False, problem=f"no webhook key configured for {provider} (webhook_secret_env)")
    message = body
    if provider == "freshbooks":
        message = freshbooks_message(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    matched = next((k for k in sorted(keys) if hmac.compare_digest(sign(k, message), signature.strip())), None)
    if matched is None:
        return Verdict(False, problem="bad signature")
    try:
        tenants = tenants_in(provider, body)
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        return Verdict(True, problem=f"signed, but not understood: {exc}")
    speaking = [c for c, key in keyed if key == matched]
    found = tuple(sorted({c.name for c in speaking if c.tenant_id in tenants}))
    known = {c.tenant_id for c in speaking}
    unknown = tuple(sorted({t for t in tenants if t not in known}))
    return Verdict(True, found, unknown)
