"""Providers are plugins: one light descriptor per provider, found through entry points.

A package adds a provider by registering a `Provider` under the `bridge.providers`
entry-point group, e.g. in its pyproject.toml:

    [project.entry-points."bridge.providers"]
    fakebooks = "fakebooks_bridge:PROVIDER"

A descriptor is cheap to load: it names its link flow and its connector factory as
`"module:attribute"` strings, imported only when a link or a sync needs them, so
loading every descriptor (for `bridge link`'s choices, or to validate a config)
never imports an accounting SDK. Nothing else in the bridge lists provider names.

A plugin that fails to load is reported (`load_providers()[1]`), never fatal to the others.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from bridge.delivery import Delivery

if TYPE_CHECKING:
    from bridge.auth.link import Flow
    from bridge.auth.vault import TokenVault
    from bridge.config import ConnectionSettings
    from bridge.connectors.base import Connector

GROUP = "bridge.providers"


class ConnectorFactory(Protocol):
    """Builds the connector of one configured connection (the `connector` a descriptor names)."""

    def __call__(self, connection: ConnectionSettings, vault: TokenVault, env: Mapping[str, str]) -> Connector: ...


class FlowFactory(Protocol):
    """Builds the OAuth flow of one link attempt (the `flow` a descriptor names), given the emulator's base URL
    (None: the real service) and, for a provider with more than one, which of the real service's environments."""

    def __call__(self, base_url: str | None, environment: str = "production") -> Flow: ...


@dataclass(frozen=True)
class Provider:
    """What the bridge's core needs to know about one accounting provider, without importing its SDK.

    `flow` and `connector` are `"module:attribute"` references, imported on first use.
    `redirect_uri` is set when the provider accepts only that redirect address (FreshBooks: https).
    `customer_id_fields` are the keys of the id in the provider's raw customer payloads, first found wins.
    `environments` are the real service's environments a connection may name (`environment` in the config), the
    first being the default: QuickBooks has a separate sandbox (Intuit's development companies); the others test
    on ordinary accounts (a Xero demo company, a FreshBooks trial).
    `reminder_email` is what the provider's own reminder e-mail puts in front of the client (does it carry the
    contract's subject and text?); None: its own invoice e-mail, never the contract's text (`bridge.delivery`).
    """

    name: str
    display_name: str
    tenant_label: str
    flow: str
    connector: str
    customer_id_fields: tuple[str, ...] = ("id",)
    redirect_uri: str | None = None
    reminder_email: Delivery | None = None
    environments: tuple[str, ...] = ("production",)

    @property
    def https_redirect_only(self) -> bool:
        """True when the provider redirects to https addresses only (a loopback callback cannot receive it)."""
        return bool(self.redirect_uri and self.redirect_uri.startswith("https://"))

    def link_flow(self, base_url: str | None, environment: str = "production") -> Flow:
        """The OAuth flow for one link attempt (imports the flow's module now)."""
        make: FlowFactory = _resolve(self.flow, f"the {self.name} link flow")
        # A flow of a provider with one environment may take the base URL alone (plugins written before).
        return make(base_url) if environment == self.environments[0] else make(base_url, environment)

    def connector_factory(self) -> ConnectorFactory:
        """The connector factory (imports the connector, and with it the provider's SDK, now)."""
        factory: ConnectorFactory = _resolve(self.connector, f"the {self.name} connector")
        return factory

    def build_connector(self, connection: ConnectionSettings, vault: TokenVault, env: Mapping[str, str]) -> Connector:
        """A connector for `connection`: the factory, imported on this first call."""
        return self.connector_factory()(connection, vault, env)

    def customer_id(self, raw: Mapping[str, Any]) -> str | None:
        """The provider's id of a raw customer payload, or None when it carries none of `customer_id_fields`."""
        return first_id(raw, self.customer_id_fields)


def first_id(raw: Mapping[str, Any], fields: Iterable[str]) -> str | None:
    """The first non-empty value among `fields` of `raw`, as text."""
    for field in fields:
        value = raw.get(field)
        if value is not None and value != "":
            return str(value)
    return None


def _resolve(reference: str, what: str) -> Any:
    """Import `module:attribute`; a ConfigError saying which plugin part failed, and why, otherwise."""
    from bridge.errors import ConfigError

    module, sep, attribute = reference.partition(":")
    if not sep or not module or not attribute:
        raise ConfigError(f"{what}: {reference!r} is not a 'module:attribute' reference")
    try:
        value: Any = importlib.import_module(module)
        for part in attribute.split("."):
            value = getattr(value, part)
    except Exception as exc:  # an SDK missing or broken: this provider fails, the others go on
        raise ConfigError(f"{what} ({reference}) failed to load ({type(exc).__name__}: {exc})") from exc
    return value


def load_providers() -> tuple[dict[str, Provider], dict[str, str]]:
    """The installed providers by name, and the plugins that failed to load (name → why).

    A broken plugin (an import error, an entry point that is not a `Provider`, a name that
    disagrees with its entry point) is reported, not fatal to the others.

    The entry points are read once for as long as the installation stays the same (`_installation`): reading them
    goes through every installed distribution's metadata, and a config names them once per connection.
    """
    global _loaded
    installation = _installation()
    if _loaded is None or _loaded[0] != installation:
        _loaded = (installation, _scan())
    found, broken = _loaded[1]
    return dict(found), dict(broken)


_loaded: tuple[tuple[tuple[str, int | None], ...], tuple[dict[str, Provider], dict[str, str]]] | None = None


def _installation() -> tuple[tuple[str, int | None], ...]:
    """What decides which distributions are installed: the import path, and when each of its folders last had an
    entry added or removed (a distribution installed there, or taken away)."""
    folders: list[tuple[str, int | None]] = []
    for entry in sys.path:
        try:
            folders.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            folders.append((entry, None))
    return tuple(folders)


def _scan() -> tuple[dict[str, Provider], dict[str, str]]:
    found: dict[str, Provider] = {}
    broken: dict[str, str] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in found:
            continue  # the same distribution seen twice on sys.path: the first one wins, as imports do
        try:
            descriptor = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            broken[ep.name] = f"the {ep.name} provider plugin failed to load ({type(exc).__name__}: {exc})"
            continue
        if not isinstance(descriptor, Provider):
            broken[ep.name] = f"the {ep.name} provider plugin ({ep.value}) is not a bridge.providers.Provider"
        elif descriptor.name != ep.name:
            broken[ep.name] = f"the {ep.name} provider plugin ({ep.value}) describes {descriptor.name!r}"
        else:
            found[ep.name] = descriptor
            broken.pop(ep.name, None)
    return found, broken


def installed() -> dict[str, Provider]:
    """The providers that loaded, by name."""
    return load_providers()[0]


def get(name: str) -> Provider:
    """The provider called `name`; a ConfigError naming the installed ones (and why a broken one is) otherwise."""
    from bridge.errors import ConfigError

    found, broken = load_providers()
    if name in found:
        return found[name]
    raise ConfigError(unknown(name, found, broken))


def unknown(name: str, found: Mapping[str, Provider], broken: Mapping[str, str]) -> str:
    """Why `name` is no usable provider, listing the installed ones."""
    if name in broken:
        return broken[name]
    close = difflib.get_close_matches(name, list(found), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(repr(n) for n in sorted(found)) or "none"
    return f"unknown provider {name!r}{hint} (installed: {listed})"


def reminder_channels() -> dict[str, Delivery]:
    """What each installed provider's own reminder e-mail carries, by provider (those that say)."""
    return {name: d.reminder_email for name, d in installed().items() if d.reminder_email is not None}


def customer_id_fields() -> tuple[str, ...]:
    """The customer id keys of every installed provider, in order, without repeats."""
    fields: list[str] = []
    for descriptor in installed().values():
        fields += [f for f in descriptor.customer_id_fields if f not in fields]
    return tuple(fields)
