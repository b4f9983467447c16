"""TOML configuration → typed, frozen settings (docs/interfaces.md).

`load_settings` reads the whole file; `load_terms` reads only `contracts`, `hold`
and `exclude` (for `bridge evaluate --contracts`); `resolve_config_path` picks
the file from `--config`, `$BRIDGE_CONFIG` or `./config/bridge.toml`.

Every problem is a `ConfigError` that names the file, the dotted key path and
what is wrong, and all problems of a file are reported at once, in file order:
fixing a config one error per run is how people give up on validation.

How pydantic's errors become those problems (TOML types checked strictly,
secrets refused, each problem located by the key as written) is
`bridge.config_errors`; this module holds the settings models and the loading.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bridge.config_errors import (
    SECRET_ADVICE,
    describe_syntax_error,
    did_you_mean,
    strip_prefix,
    toml_text,
    validate,
)
from bridge.errors import ConfigError
from bridge.policies.terms import Contract, Exclude, Hold, Terms, known_zone

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "ConnectionSettings",
    "SecretsSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "load_settings",
    "load_terms",
    "resolve_config_path",
]

CONFIG_ENV = "BRIDGE_CONFIG"
DEFAULT_CONFIG_PATH = Path("config/bridge.toml")

FeeMode = Literal["line", "invoice"]
Review = Literal["auto", "required"]

# Colons separate the parts of an action key (`late_fee:{connection}:...`), so a
# connection name must never contain one.
CONNECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_TERMS_KEYS = ("contracts", "hold", "exclude")


def http_address(value: str) -> SplitResult:
    """`value` split, when it is an http(s) URL without credentials; a ValueError saying what is wrong otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL (got {toml_text(value)})")
    if parts.username or parts.password:
        raise ValueError(f"must not hold credentials; {SECRET_ADVICE}")
    return parts


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StoreSettings(_Settings):
    """`[store]`: where the cache, cursors, ledger and token vault live."""

    url: str = "sqlite:///bridge.db"

    @field_validator("url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme, sep, _ = value.partition("://")
        dialect = scheme.split("+", 1)[0]
        if not sep or dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"must be sqlite:///PATH or postgresql://HOST/DATABASE (got {toml_text(value)})")
        if urlsplit(value).password:
            raise ValueError(
                "the URL holds a password; secrets never go in the config file: "
                "leave it out and set PGPASSWORD or use ~/.pgpass"
            )
        return value


class SecretsSettings(_Settings):
    """`[secrets]`: the name of the environment variable holding the token-encryption key."""

    key_env: str = "BRIDGE_SECRET_KEY"

    @field_validator("key_env")
    @classmethod
    def _variable_name(cls, value: str) -> str:
        if _ENV_NAME.match(value):
            return value
        if len(value) >= 32:
            # A Fernet key is 44 characters of base64: the user pasted the key itself.
            raise ValueError(
                "this looks like the key itself; secrets never go in the config file: "
                "put the key in an environment variable and name the variable here "
                "(e.g. BRIDGE_SECRET_KEY)"
            )
        raise ValueError(
            f"must be the name of an environment variable, e.g. BRIDGE_SECRET_KEY (got {toml_text(value)})"
        )


class ConnectionSettings(_Settings):
    """`[[connections]]`: one linked company at one accounting provider."""

    name: str
    provider: str  # an installed provider plugin (bridge.providers), checked below
    tenant_id: str | None = Field(None, min_length=1)
    base_url: str | None = None
    fee_mode: FeeMode | None = None
    history_notes: bool = True  # Xero: leave a note in the invoice's history for every action
    # The client-side pace; None = the provider's published limit. Only an emulator allows more.
    calls_per_minute: int | None = Field(None, gt=0, le=100_000)
    # How long one HTTP call may take before it counts as timed out (and is retried where that is safe).
    timeout_seconds: int = Field(30, ge=1, le=600)
    # How long this connection's sync may take: its pull (every call, retry and wait) and then its actions.
    # Past it the pull stops, or no further action starts (the rest waits for the next run); that connection
    # is listed in the plan's errors and the others go on.
    sync_deadline_seconds: int = Field(900, ge=1, le=86_400)
    # Server mode (`bridge serve`): when this connection syncs (cron in `timezone`), whether a plan waits for
    # approval, and the environment variable holding the provider's webhook key / verifier token.
    schedule: str = "0 7 * * *"
    timezone: str = "UTC"
    review: Review = "auto"
    webhook_secret_env: str | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value) or len(value.split()) != 5:
            raise ValueError(f'must be a cron expression of five fields, e.g. "0 7 * * 1-5" (got {toml_text(value)})')
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("webhook_secret_env")
    @classmethod
    def _secret_variable(cls, value: str | None) -> str | None:
        if value is None or _ENV_NAME.match(value):
            return value
        raise ValueError(
            "must be the name of an environment variable holding the webhook key, e.g. "
            f"BRIDGE_ACME_QBO_WEBHOOK_KEY; {SECRET_ADVICE} (got a value that is not a variable name)"
        )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not CONNECTION_NAME.match(value):
            raise ValueError(
                "must start with a letter or digit and use only letters, digits, '_', '.' "
                f"and '-' (colons separate the parts of action keys) (got {toml_text(value)})"
            )
        return value

    @field_validator("provider")
    @classmethod
    def _installed_provider(cls, value: str) -> str:
        from bridge.providers import load_providers, unknown

        found, broken = load_providers()
        if value in found or value in broken:  # a broken plugin fails its connections at run time, reported
            return value
        raise ValueError(unknown(value, found, broken))

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            http_address(value)
        return value

    @property
    def is_emulator(self) -> bool:
        """True when `base_url` is a loopback address: an emulator, whose books are nobody's money."""
        if self.base_url is None:
            return False
        host = urlsplit(self.base_url).hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


class ServerSettings(_Settings):
    """`[server]`: where `bridge serve` listens, the address people reach it at, the broker, the worker threads."""

    host: str = "127.0.0.1"
    port: int = Field(8720, ge=0, le=65_535)
    public_url: str | None = None
    broker: str = ""  # "" = embedded worker threads; "redis://HOST:PORT/DB" = Celery workers (`bridge worker`)
    workers: int = Field(2, ge=1, le=256)

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if http_address(value).query:
            raise ValueError(f"must be a plain base address, without a query (got {toml_text(value)})")
        return value.rstrip("/")

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        if value == "":
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(f'must be "" (embedded) or a redis://HOST:PORT/DB URL (got {toml_text(value)})')
        if parts.password:
            raise ValueError(f"the URL holds a password; {SECRET_ADVICE}")
        return value


class Settings(_Settings):
    """The whole configuration file, validated. `source` is the absolute path it came from."""

    source: Path
    store: StoreSettings = StoreSettings()
    secrets: SecretsSettings = SecretsSettings()
    server: ServerSettings = ServerSettings()
    connections: tuple[ConnectionSettings, ...] = ()
    terms: Terms = Terms()

    @model_validator(mode="after")
    def _unique_connection_names(self) -> Settings:
        names = [c.name for c in self.connections]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate connection names: {dupes}")
        return self

    def connection(self, name: str) -> ConnectionSettings:
        """The connection called `name`; a `ConfigError` naming the configured ones otherwise."""
        for conn in self.connections:
            if conn.name == name:
                return conn
        known = [c.name for c in self.connections]
        hint = did_you_mean(name, known)
        listed = ", ".join(known) if known else "none"
        raise ConfigError([f"no connection named {name!r}{hint} (configured: {listed})"], source=str(self.source))


class _ConfigFile(_Settings):
    """The file as written: what `load_settings` validates before assembling `Settings`."""

    store: StoreSettings = StoreSettings()
    secrets: SecretsSettings = SecretsSettings()
    server: ServerSettings = ServerSettings()
    connections: tuple[ConnectionSettings, ...] = ()
    contracts: tuple[Contract, ...] = ()
    hold: Hold = Hold()
    exclude: Exclude = Exclude()


class _TermsFile(_Settings):
    """The part of the file `load_terms` reads."""

    contracts: tuple[Contract, ...] = ()
    hold: Hold = Hold()
    exclude: Exclude = Exclude()


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def resolve_config_path(cli_value: str | None, env: Mapping[str, str]) -> Path:
    """The config file to use: `--config`, else `$BRIDGE_CONFIG`, else `./config/bridge.toml`.

    Raises `ConfigError` listing every place that was considered when the chosen
    file does not exist, so the user sees the precedence and what to fix.
    """
    env_value = env.get(CONFIG_ENV) or None
    places: list[tuple[str, str]] = []
    chosen: Path | None = None
    for label, value in (("--config", cli_value), (f"${CONFIG_ENV}", env_value)):
        if chosen is not None:
            places.append((label, "not consulted: an earlier source was given"))
        elif value:
            chosen = Path(value).expanduser()
            places.append((label, f"{value} ({_missing_reason(chosen)})"))
        else:
            places.append((label, "not given" if label == "--config" else "not set"))
    if chosen is None:
        chosen = DEFAULT_CONFIG_PATH
        places.append(("default", f"./{DEFAULT_CONFIG_PATH} ({_missing_reason(chosen)} in {Path.cwd()})"))
    else:
        places.append(("default", f"./{DEFAULT_CONFIG_PATH} (not consulted)"))
    if chosen.is_file():
        return chosen
    width = max(len(label) for label, _ in places)
    lines = [f"config file not found ({chosen}). Looked in order at:"]
    lines += [f"  {label.ljust(width)}  {status}" for label, status in places]
    lines.append(
        f"Copy config/bridge.example.toml to {DEFAULT_CONFIG_PATH}, or pass --config PATH or set ${CONFIG_ENV}."
    )
    raise ConfigError(["\n".join(lines)])


def load_settings(path: Path) -> Settings:
    """Read and validate the whole configuration file at `path`.

    Contracts keep their file order (the first matching contract wins), a
    relative SQLite path in `store.url` is resolved against the file's folder,
    and each connection's `fee_mode` lands in `terms.fee_modes`. Every problem
    of the file is reported in one `ConfigError`.
    """
    raw = _read_toml(path)
    config = validate(_ConfigFile, raw, raw, path)
    source = Path(os.path.abspath(path))
    store = config.store.model_copy(update={"url": _resolve_sqlite(config.store.url, source.parent)})
    fee_modes = {c.name: c.fee_mode for c in config.connections if c.fee_mode is not None}
    try:
        return Settings(
            source=source,
            store=store,
            secrets=config.secrets,
            server=config.server,
            connections=config.connections,
            terms=Terms(
                contracts=config.contracts,
                hold=config.hold,
                exclude=config.exclude,
                fee_modes=fee_modes,
            ),
        )
    except ValidationError as exc:  # the checks above make this unreachable; stay readable anyway
        raise ConfigError([strip_prefix(e["msg"]) for e in exc.errors()], str(path)) from None


def load_terms(path: Path) -> Terms:
    """Read only `contracts`, `hold` and `exclude` from the TOML file at `path`.

    Other top-level tables (`store`, `connections`, ...) are ignored, so a full
    config works as well as a file holding just contracts; unknown keys inside
    the three tables read are still errors.
    """
    raw = _read_toml(path)
    data = {key: raw[key] for key in _TERMS_KEYS if key in raw}
    terms_file = validate(_TermsFile, data, raw, path)
    return Terms(contracts=terms_file.contracts, hold=terms_file.hold, exclude=terms_file.exclude)


# ---------------------------------------------------------------------------------------------
# Reading and validating
# ---------------------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror or exc}"], str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"not UTF-8 text (bad byte at offset {exc.start}); TOML files are UTF-8"], str(path)
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([describe_syntax_error(str(exc), text)], str(path)) from None


def _missing_reason(path: Path) -> str:
    if path.is_dir():
        return "a directory, not a file"
    return "found" if path.exists() else "no such file"


def _resolve_sqlite(url: str, folder: Path) -> str:
    """Make a relative SQLite path absolute against the config file's folder.

    The same config must open the same database whatever the working directory
    (a cron job, a service unit, `make demo`).
    """
    scheme, _, rest = url.partition("://")
    if scheme.split("+", 1)[0] != "sqlite" or not rest.startswith("/"):
        return url
    database, question, query = rest[1:].partition("?")
    if database in ("", ":memory:") or database.startswith("file:"):
        return url
    return f"{scheme}:///{folder / Path(database).expanduser()}{question}{query}"
