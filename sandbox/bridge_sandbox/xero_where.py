"""The Xero `where` filter and `order` clause, as the Accounting API accepts them on GET lists.

    Status=="AUTHORISED" AND Type=="ACCREC"
    Contact.ContactID==Guid("7b6b6d52-...") OR InvoiceNumber=="INV-0001"
    DueDate<DateTime(2026,10,01) AND AmountDue>0

Supported: `==`, `!=`, `>`, `>=`, `<`, `<=` on dotted field paths, string, number, `true`/`false`,
`Guid("…")` and `DateTime(y,m,d[,h,m,s])` values, `AND`/`OR`/`&&`/`||` (AND binds tighter), parentheses.
Dates compare as instants; the stored `/Date(ms+0000)/` strings are decoded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

_MS_DATE = re.compile(r"/Date\((-?\d+)(?:([+-])(\d{2})(\d{2}))?\)/")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<func>(?:Guid|DateTime)\s*\([^)]*\))
      | (?P<op>==|!=|>=|<=|>|<|&&|\|\|)
      | (?P<paren>[()])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<num>-?\d+(?:\.\d+)?)
    )""",
    re.VERBOSE,
)


class WhereError(ValueError):
    """A `where` or `order` clause the emulator cannot parse."""


def ms_date(moment: datetime) -> str:
    """`/Date(1539993600000+0000)/` for an instant."""
    return f"/Date({round(moment.timestamp() * 1000)}+0000)/"


def parse_ms_date(text: str) -> datetime | None:
    """The instant a `/Date(ms±hhmm)/` string (or an ISO date/time) names; None when it is neither."""
    found = _MS_DATE.fullmatch(text.strip())
    if found:
        return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _lookup(obj: Obj, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        # Field names are case-insensitive in Xero filters.
        key = next((k for k in value if k.lower() == part.lower()), None)
        value = value.get(key) if key is not None else None
    return value


def _literal(kind: str, text: str) -> Any:
    if kind == "str":
        return text[1:-1].replace('\\"', '"')
    if kind == "num":
        return Decimal(text)
    if kind == "func":
        name, _, inner = text.partition("(")
        inner = inner.rstrip(")").strip()
        if name.strip() == "Guid":
            return inner.strip('"').lower()
        try:
            parts = [int(p) for p in inner.split(",")] + [0, 0, 0]
            return datetime(parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], tzinfo=UTC)
        except (IndexError, ValueError) as exc:
            raise WhereError(f"bad DateTime({inner})") from exc
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    raise WhereError(f"unexpected {text!r}")


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(right, datetime):
        left = parse_ms_date(left) if isinstance(left, str) else None
        if left is None:
            return op == "!="
    elif isinstance(right, Decimal):
        try:
            left = Decimal(str(left)) if left is not None and not isinstance(left, bool) else None
        except InvalidOperation:
            left = None
        if left is None:
            return op == "!="
    elif isinstance(right, str) and isinstance(left, str):
        left, right = left.lower(), right.lower()  # Xero string equality ignores case
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        if op == ">":
            return bool(left > right)
        if op == ">=":
            return bool(left >= right)
        if op == "<":
            return bool(left < right)
        return bool(left <= right)
    except TypeError:
        return False


def parse_where(text: str) -> Predicate:
    """A predicate over stored objects for a `where` clause; `WhereError` when it cannot be parsed."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if not found or found.end() == pos:
            raise WhereError(f"cannot parse the where clause near {text[pos : pos + 20]!r}")
        kind = found.lastgroup or ""
        value = found.group(kind)
        if kind == "word" and value.upper() in ("AND", "OR"):
            kind, value = "op", "&&" if value.upper() == "AND" else "||"
        tokens.append((kind, value))
        pos = found.end()
    parser = _Parser(tokens)
    predicate = parser.parse_or()
    if parser.pos != len(tokens):
        raise WhereError(f"unexpected {tokens[parser.pos][1]!r} in the where clause")
    return predicate


class _Parser:
    def __init__(self, tokens: Sequence[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise WhereError("the where clause ends too early")
        self.pos += 1
        return token

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self._peek() == ("op", "||"):
            self.pos += 1
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda obj: any(p(obj) for p in parts))

    def parse_and(self) -> Predicate:
        parts = [self.parse_atom()]
        while self._peek() == ("op", "&&"):
            self.pos += 1
            parts.append(self.parse_atom())
        return parts[0] if len(parts) == 1 else (lambda obj: all(p(obj) for p in parts))

    def parse_atom(self) -> Predicate:
        kind, value = self._next()
        if (kind, value) == ("paren", "("):
            inner = self.parse_or()
            if self._next() != ("paren", ")"):
                raise WhereError("missing ) in the where clause")
            return inner
        if kind != "word":
            raise WhereError(f"expected a field name, got {value!r}")
        field = value
        nxt = self._peek()
        if nxt is None or nxt[0] != "op" or nxt[1] in ("&&", "||"):
            # A bare boolean field: `HasAttachments`.
            return lambda obj: _lookup(obj, field) is True
        op = self._next()[1]
        lit_kind, lit_text = self._next()
        if lit_kind not in ("str", "num", "func", "word"):
            raise WhereError(f"expected a value after {field}{op}")
        right = _literal(lit_kind, lit_text)
        if lit_kind == "func" and lit_text.startswith("Guid"):
            return lambda obj: _compare(str(_lookup(obj, field) or "").lower(), op, right)
        return lambda obj: _compare(_lookup(obj, field), op, right)


def order_key(clause: str) -> list[tuple[str, bool]]:
    """`"UpdatedDateUTC ASC, Date DESC"` → [(field, descending)]."""
    out: list[tuple[str, bool]] = []
    for part in clause.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise WhereError(f"cannot parse the order clause {clause!r}")
        out.append((words[0], len(words) == 2 and words[1].upper() == "DESC"))
    return out


def sort_objects(objs: list[Obj], clause: str) -> list[Obj]:
    """Sort by an `order` clause (stable; dates as instants, numbers as Decimals, missing values first)."""
    for field, descending in reversed(order_key(clause)):

        def key(obj: Obj, field: str = field) -> tuple[int, Any]:
            value = _lookup(obj, field)
            if isinstance(value, str):
                moment = parse_ms_date(value) if value.startswith("/Date(") else None
                if moment is not None:
                    return (1, moment.timestamp())
                return (2, value.lower())
            if isinstance(value, int | Decimal | float) and not isinstance(value, bool):
                return (1, Decimal(str(value)))
            return (0, 0)

        objs = sorted(objs, key=key, reverse=descending)
    return objs
