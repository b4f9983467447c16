"""`[notify]`: which channels get notices and of what (docs/review.md). Secrets are named, never written here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NoticeKind = Literal["review", "failed", "in_doubt", "relink"]
NOTICE_KINDS: tuple[NoticeKind, ...] = ("review", "failed", "in_doubt", "relink")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Table(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(
            "must be the name of an environment variable holding the URL or secret (e.g. BRIDGE_FLOCK_WEBHOOK); "
            "secrets never go in the config file"
        )
    return value


class ChatWebhook(_Table):
    """`[notify.flock]`, `[notify.slack]`, `[notify.teams]`: the variable holding the incoming-webhook URL."""

    webhook_url_env: str

    _check = field_validator("webhook_url_env")(_env_name)


class GenericWebhook(_Table):
    """`[notify.webhook]`: a JSON POST signed `X-Bridge-Signature: sha256=<hex HMAC-SHA256 of the body>`."""

    url_env: str
    secret_env: str

    _check = field_validator("url_env", "secret_env")(_env_name)


class EmailDigest(_Table):
    """`[notify.email]`: addresses that get the notices by e-mail, through `[smtp]`."""

    to: tuple[str, ...] = Field(min_length=1)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in value if "@" not in a or any(c.isspace() for c in a.strip())]
        if bad:
            raise ValueError(f"not e-mail addresses: {', '.join(bad)}")
        return value


class NotifySettings(_Table):
    """`[notify]` and its channel tables; no table, no notices."""

    on: tuple[NoticeKind, ...] = NOTICE_KINDS
    flock: ChatWebhook | None = None
    slack: ChatWebhook | None = None
    teams: ChatWebhook | None = None
    webhook: GenericWebhook | None = None
    email: EmailDigest | None = None


def problems(settings: NotifySettings, env: Mapping[str, str]) -> list[str]:
    """What `bridge config check` says of `[notify]`: each named variable set, each URL an http(s) URL."""
    found: list[str] = []
    named: list[tuple[str, str, bool]] = [
        (f"notify.{name}.webhook_url_env", chat.webhook_url_env, True)
        for name, chat in (("flock", settings.flock), ("slack", settings.slack), ("teams", settings.teams))
        if chat is not None
    ]
    if settings.webhook is not None:
        named += [("notify.webhook.url_env", settings.webhook.url_env, True)]
        named += [("notify.webhook.secret_env", settings.webhook.secret_env, False)]
    for key, variable, is_url in named:
        value = env.get(variable, "")
        if not value:
            found.append(f"{key}: the environment variable {variable} is not set")
        elif is_url and not value.startswith(("https://", "http://")):
            found.append(f"{key}: {variable} does not hold an http(s) URL")
    return found
