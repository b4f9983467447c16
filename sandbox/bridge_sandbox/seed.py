"""Seed files: the providers' own JSON, keyed by provider (docs/interfaces.md).

    {"quickbooks": {"realm_id": "…", "CompanyInfo": {…}, "Customer": […], "Item": […],
                    "Invoice": […], "Payment": […], "Deleted": [{"type": "Invoice", "Id": "…",
                    "MetaData": {"LastUpdatedTime": "…"}}]},
     "xero": {…}, "freshbooks": {…}}

Additions to the documented shape, all optional:
- `quickbooks.CompanyInfo`: the CompanyInfo object (its CompanyName signs e-mails);
- `quickbooks.Deleted`: tombstones of deleted transactions (`type`, `Id`, `MetaData`, optionally
  `DocNumber`): absent from reads and queries, reported by `/cdc` with `status: "Deleted"`;
- `quickbooks` may be a list of such objects, one per company (realm).

A voided QuickBooks invoice needs no marker: as the service shows it, zero amounts and
`PrivateNote: "Voided"`. Money is read as `Decimal` and written back with the same digits.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from bridge_sandbox.core import SandboxError, dumps, loads, paused_gc

DEFAULT_SEED_RESOURCE = "seeds/default.json"


def default_seed() -> dict[str, Any]:
    """The small realistic book shipped with the package (a fresh copy each call)."""
    text = resources.files("bridge_sandbox").joinpath(DEFAULT_SEED_RESOURCE).read_text(encoding="utf-8")
    return parse_seed(text, DEFAULT_SEED_RESOURCE)


def parse_seed(text: str, source: str = "seed") -> dict[str, Any]:
    """Parse seed JSON text; `SandboxError` naming `source` when it is not a JSON object."""
    try:
        with paused_gc():
            value = loads(text)
    except ValueError as exc:
        raise SandboxError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SandboxError(f"{source}: a seed file is a JSON object keyed by provider (quickbooks, xero, freshbooks)")
    return value


def read_seed(path: str | Path) -> dict[str, Any]:
    """Read a seed file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SandboxError(f"{file}: cannot read the seed file: {exc.strerror or exc}") from exc
    return parse_seed(text, str(file))


def write_seed(seed: dict[str, Any], path: str | Path) -> None:
    """Write a seed (or a `GET /_sandbox/state`) to a file, money digits intact."""
    Path(path).write_text(dumps(seed, indent=1) + "\n", encoding="utf-8")
