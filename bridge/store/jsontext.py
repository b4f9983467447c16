"""JSON text that keeps money exact: `Decimal` is written as a JSON number with its own digits, and read back as one.

The standard encoder refuses `Decimal`, and turning it into a float would lose cents, so this small
encoder walks the value itself. Provider payloads are JSON from the wire (parsed with
`parse_float=Decimal`), so only JSON types and `Decimal` are expected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def dumps(value: Any) -> str:
    """JSON text for a JSON value in which numbers may be `Decimal`."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def loads(text: str) -> Any:
    """Parse JSON text; numbers with a fraction or exponent become `Decimal`, never float."""
    return json.loads(text, parse_float=Decimal)


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be written as JSON")
        # str(Decimal) is always a valid JSON number (e.g. "22.50", "1E+2", "-0.001").
        out.append(str(value))
    elif value is None or isinstance(value, str | bool | int | float):
        out.append(json.dumps(value, allow_nan=False, ensure_ascii=False))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")
