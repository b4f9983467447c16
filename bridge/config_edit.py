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
from tomlkit.container import Container
from tomlkit.items import AoT, Comment, Table, Whitespace

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
    """Drop the connection with this name from the file; the comments around it stay.

    tomlkit files the comments and blank lines that follow a table's last key under that table, though they
    belong to what comes next (a comment between two blocks, one above the next section): those move to the
    end of whatever precedes the removed block. Comments between the block's own keys go with it.
    """
    doc = _document(path)
    aot = _connections(doc)
    index = next((i for i, t in enumerate(aot) if t.get("name") == name), None)
    if index is None:
        raise ConfigError(f"{path}: no connection named {name!r}")
    trailing = _trailing_trivia(aot[index])
    kept = [t for i, t in enumerate(aot) if i != index]
    while len(aot):
        aot.body.pop()
    for table in kept:
        aot.append(table if isinstance(table, Table) else tomlkit.item(table))
    if index > 0:
        before: Container | None = kept[index - 1].value
    else:
        before = _before(doc, "connections")
    if not kept:
        del doc["connections"]
    for item in trailing:
        if before is not None:
            before.append(None, item)
        else:
            doc.append(None, item)
    return _write(path, doc)


def _trailing_trivia(table: Table) -> list[Any]:
    """The comments and blank lines after a table's last key (in file order)."""
    body = table.value.body
    end = len(body)
    while end and body[end - 1][0] is None and isinstance(body[end - 1][1], Comment | Whitespace):
        end -= 1
    return [item for _, item in body[end:]]


def _before(doc: tomlkit.TOMLDocument, key: str) -> Container | None:
    """The table that ends right above `key`'s first block, when it is one."""
    previous: Any = None
    for k, item in doc.body:
        if k is not None and k.key == key:
            break
        previous = item
    return previous.value if isinstance(previous, Table) else None
