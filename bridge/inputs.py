"""Reading the JSON files `bridge evaluate` takes (docs/interfaces.md): invoices, history, renegotiations.

A file that is not JSON, or not the expected shape, is a usage error (exit 2). A
single malformed invoice is quarantined as a plan error; the others are evaluated.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import msgspec
from pydantic import Field, TypeAdapter, ValidationError

from bridge.errors import ConfigError
from bridge.model import INVOICE_JSON, HistoryEntry, Invoice, RenegotiationRequest
from bridge.plan import RecordError

# JSON at C speed, every number with a fraction or an exponent a Decimal (as `json.loads(parse_float=Decimal)`).
_DECODE = msgspec.json.Decoder(float_hook=Decimal).decode


def read_json(path: Path, what: str) -> Any:
    """A JSON file parsed with Decimal for every non-integer number; unreadable or invalid JSON is a usage error.

    msgspec reads it (C speed, a float never touches an amount); what it refuses, the standard parser reads with
    `parse_float=Decimal`: it takes what msgspec does not (NaN, a lone surrogate escape) or says where and why.
    """
    return _parse(_read(path, what), path)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file: {exc.strerror or exc}", str(path)) from None


def _parse(data: bytes, path: Path) -> Any:
    try:
        return _DECODE(data)
    except msgspec.DecodeError:
        pass
    try:
        return json.loads(data.decode("utf-8"), parse_float=Decimal)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason} at byte {exc.start}", str(path)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}", str(path)) from None


def _problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)


def _as_list(data: Any, path: Path, what: str, envelope: str | None = None) -> list[Any]:
    if envelope and isinstance(data, dict) and envelope in data:
        data = data[envelope]
    if not isinstance(data, list):
        shape = f"a JSON list (or an object with {envelope!r})" if envelope else "a JSON list"
        raise ConfigError(f"the {what} file must hold {shape}, not {type(data).__name__}", str(path))
    return data


# A list of invoices read from JSON text straight into the models, at C speed, stopping at the first fault.
_INVOICES_JSON: TypeAdapter[list[Invoice]] = TypeAdapter(Annotated[list[Invoice], Field(fail_fast=True)])


def load_invoices(path: Path) -> tuple[list[Invoice], list[RecordError]]:
    """Normalized invoices from a JSON list; malformed entries come back as record errors.

    A file whose every entry is valid is read in one pass from its text (the store reads invoices the same way:
    `INVOICE_JSON.validate_json`). Anything that pass refuses (not JSON, not a list, an amount written as a JSON
    number with a fraction, a malformed entry) is read again entry by entry, each number with a fraction a
    Decimal, so each fault is said as before and only the malformed entries are left out.
    """
    data = _read(path, "invoices")
    try:
        return _INVOICES_JSON.validate_json(data), []
    except ValidationError:
        pass
    items = _as_list(_parse(data, path), path, "invoices")
    invoices: list[Invoice] = []
    errors: list[RecordError] = []
    validate = INVOICE_JSON.validate_python
    for index, item in enumerate(items):
        try:
            invoices.append(validate(item))
        except ValidationError as exc:
            ident = item.get("number") or item.get("id") if isinstance(item, dict) else None
            connection = str(item.get("connection", "")) if isinstance(item, dict) else ""
            errors.append(RecordError(connection, str(ident or f"{path.name}[{index}]"), _problem(exc)))
    return invoices, errors


def _load_strict(path: Path, what: str, model: type[Any], envelope: str | None) -> list[Any]:
    items = _as_list(read_json(path, what), path, what, envelope)
    validate = TypeAdapter(model).validate_python  # a model or a pydantic dataclass
    out = []
    for index, item in enumerate(items):
        try:
            out.append(validate(item))
        except ValidationError as exc:
            raise ConfigError(f"entry [{index}]: {_problem(exc)}", str(path)) from None
    return out


def load_history(path: Path) -> list[HistoryEntry]:
    """History entries: a list, or a plan JSON's `applied` list."""
    return _load_strict(path, "history", HistoryEntry, "applied")


def load_renegotiations(path: Path) -> list[RenegotiationRequest]:
    """Renegotiation requests (decided or not): a JSON list."""
    return _load_strict(path, "renegotiations", RenegotiationRequest, "renegotiations")
