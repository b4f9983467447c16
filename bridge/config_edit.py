"""Writing connections into the config file, keeping the user's comments and order (tomlkit).

A change is written beside the file and renamed over it only after the new text
loads as a valid config: the file is never left half-written or broken, and it is private (0600,
through bridge.files.write_private).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Table

from bridge.config import Settings, load_settings
from bridge.errors import ConfigError
from bridge.files import write_private

NEW_FILE_HEADER = (
    "# bridge configuration. `bridge link` adds the [[connections]] below; contracts go under [contracts.NAME]\n"
    "# (see config/bridge.example.toml for every key).\n"
)


def _document(path: Path) -> tomlkit.TOMLDocument:
    if not path.exists():
        return tomlkit.parse(NEW_FILE_HEADER)
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix it before linking") from None


def _write(path: Path, doc: tomlkit.TOMLDocument) -> Settings:
    write_private(path, tomlkit.dumps(doc), check=load_settings)  # never replace a good file with a broken one
    return load_settings(path)


def _connections(doc: tomlkit.TOMLDocument) -> AoT:
    found = doc.get("connections")
    if found is None:
        aot = tomlkit.aot()
        doc.append("connections", aot)
        return aot
    if not isinstance(found, AoT):
        raise ConfigError("connections: must be an array of tables ([[connections]])")
    return found


def upsert_connection(path: Path, entry: Mapping[str, Any]) -> Settings:
    """Add the connection, or update the one with its name (its other keys and comments stay)."""
    doc = _document(path)
    aot = _connections(doc)
    for table in aot:
        if table.get("name") == entry["name"]:
            for key, value in entry.items():
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
            return _write(path, doc)
    table = tomlkit.table()
    for key, value in entry.items():
        if value is not None:
            table[key] = value
    table.add(tomlkit.nl())
    aot.append(table)
    return _write(path, doc)


def remove_connection(path: Path, name: str) -> Settings:
    """Drop the connection with this name from the file."""
    doc = _document(path)
    aot = _connections(doc)
    kept = [t for t in aot if t.get("name") != name]
    if len(kept) == len(aot):
        raise ConfigError(f"{path}: no connection named {name!r}")
    while len(aot):
        aot.body.pop()
    for table in kept:
        aot.append(table if isinstance(table, Table) else tomlkit.item(table))
    if not kept:
        del doc["connections"]
    return _write(path, doc)
