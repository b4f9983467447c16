"""JSON text that keeps money exact: `Decimal` is written as a JSON number with its own digits, and read back as one.

The standard encoder refuses `Decimal`, and turning it into a float would lose cents; simplejson
writes `Decimal` natively (`use_decimal`), in C. Provider payloads are JSON from the wire (parsed
with `parse_float=Decimal`), so only JSON types and `Decimal` are expected.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import simplejson


def dumps(value: Any) -> str:
    """JSON text for a JSON value in which numbers may be `Decimal` (NaN and infinities are refused)."""
    text: str = simplejson.dumps(value, use_decimal=True, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text


def loads(text: str) -> Any:
    """Parse JSON text; numbers with a fraction or exponent become `Decimal`, never float."""
    return json.loads(text, parse_float=Decimal)
