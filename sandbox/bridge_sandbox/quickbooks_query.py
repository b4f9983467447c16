"""The subset of QuickBooks Online's query language that the SDK and a connector send.

    SELECT * | COUNT(*) | field, ... FROM Entity
      [WHERE cond AND cond ...]            cond: path op literal | path IN (lit, ...) | path LIKE 'a%'
      [ORDERBY | ORDER BY path [ASC|DESC], ...]
      [STARTPOSITION n] [MAXRESULTS n]     (either order)

Operators: = != <> < > <= >=. Paths are dotted and case-insensitive (`Metadata.LastUpdatedTime`
finds `MetaData.LastUpdatedTime`); a `…Ref` compares on its `value`. Literals: 'text' (with \\'
or '' for a quote), numbers, true/false. Comparison is typed: timestamps as instants (a literal
without an offset is read in the company's time zone), numbers (and digit-only ids) as numbers,
otherwise text, case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

Obj = dict[str, Any]


class QueryError(ValueError):
    """A query the service would refuse. `kind` is "parse" (code 4000) or "validation" (code 4001)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Condition:
    """One comparison of the WHERE clause."""

    path: tuple[str, ...]
    op: str
    values: tuple[Any, ...]


@dataclass
class Query:
    """A parsed query."""

    entity: str
    count: bool = False
    fields: tuple[str, ...] = ()  # empty: every field
    where: list[Condition] = field(default_factory=list)
    order: list[tuple[tuple[str, ...], bool]] = field(default_factory=list)  # (path, descending)
    start_position: int = 1
    max_results: int | None = None


_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.|'')*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|<>|!=|=|<|>)
      | (?P<punct>[(),*])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.:]*)
    )""",
    re.VERBOSE,
)


_ESCAPE_RE = re.compile(r"\\(.)|''", re.DOTALL)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip().rstrip(";")
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = _TOKEN_RE.match(text, pos)
        if not found or found.end() == pos:
            raise QueryError("parse", f'QueryParserError: Encountered "{text[pos : pos + 20]}" at column {pos + 1}.')
        kind = found.lastgroup or ""
        tokens.append((kind, found.group(kind)))
        pos = found.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def next(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("parse", f'QueryParserError: Encountered end of statement in "{self.text}".')
        self.pos += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].upper() in words:
            self.pos += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            token = self.peek()
            seen = token[1] if token else "end of statement"
            raise QueryError("parse", f'QueryParserError: Encountered "{seen}" where {word} was expected.')

    def expect(self, value: str) -> None:
        _kind, text = self.next()
        if text != value:
            raise QueryError("parse", f'QueryParserError: Encountered "{text}" where "{value}" was expected.')

    def literal(self) -> Any:
        kind, text = self.next()
        if kind == "string":
            # One pass, left to right, as the tokenizer read it: \x is x (\' a quote, \\ a backslash), '' a quote.
            return _ESCAPE_RE.sub(lambda m: m.group(1) if m.group(1) is not None else "'", text[1:-1])
        if kind == "number":
            return Decimal(text)
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise QueryError("parse", f'QueryParserError: Encountered "{text}" where a value was expected.')

    def integer(self, what: str) -> int:
        kind, text = self.next()
        if kind != "number" or "." in text:
            raise QueryError("parse", f'QueryParserError: {what} expects an integer, got "{text}".')
        return int(text)

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        count = False
        fields: list[str] = []
        star = False
        if self.keyword("COUNT"):
            self.expect("(")
            self.expect("*")
            self.expect(")")
            count = True
        else:
            while True:
                kind, text = self.next()
                if text == "*":
                    star = True
                elif kind == "word" and text.upper() != "FROM":
                    fields.append(text)
                else:
                    raise QueryError("parse", f'QueryParserError: Encountered "{text}" in the select list.')
                punct = self.peek()
                if punct and punct[1] == ",":
                    self.pos += 1
                    continue
                break
        self.expect_keyword("FROM")
        kind, entity = self.next()
        if kind != "word":
            raise QueryError("parse", f'QueryParserError: Encountered "{entity}" where an entity was expected.')
        query = Query(entity=entity, count=count, fields=() if star or count else tuple(fields))
        if self.keyword("WHERE"):
            query.where.append(self.condition())
            while self.keyword("AND"):
                query.where.append(self.condition())
            if self.keyword("OR"):
                raise QueryError("parse", "QueryParserError: OR is not supported by the QuickBooks query language.")
        while self.peek() is not None:
            if self.keyword("ORDERBY") or (self.keyword("ORDER") and self._by()):
                query.order = self.order_list()
            elif self.keyword("STARTPOSITION"):
                query.start_position = self.integer("STARTPOSITION")
            elif self.keyword("MAXRESULTS"):
                query.max_results = self.integer("MAXRESULTS")
            else:
                raise QueryError("parse", f'QueryParserError: Encountered "{self.next()[1]}" in "{self.text}".')
        return query

    def _by(self) -> bool:
        self.expect_keyword("BY")
        return True

    def order_list(self) -> list[tuple[tuple[str, ...], bool]]:
        out: list[tuple[tuple[str, ...], bool]] = []
        while True:
            kind, text = self.next()
            if kind != "word":
                raise QueryError("parse", f'QueryParserError: Encountered "{text}" where a field was expected.')
            descending = False
            if self.keyword("DESC"):
                descending = True
            else:
                self.keyword("ASC")
            out.append((tuple(text.split(".")), descending))
            punct = self.peek()
            if punct and punct[1] == ",":
                self.pos += 1
                continue
            return out

    def condition(self) -> Condition:
        kind, text = self.next()
        if kind != "word":
            raise QueryError("parse", f'QueryParserError: Encountered "{text}" where a field was expected.')
        path = tuple(text.split("."))
        if self.keyword("IN"):
            self.expect("(")
            values = [self.literal()]
            while (token := self.peek()) and token[1] == ",":
                self.pos += 1
                values.append(self.literal())
            self.expect(")")
            return Condition(path, "IN", tuple(values))
        if self.keyword("LIKE"):
            return Condition(path, "LIKE", (self.literal(),))
        op_kind, op = self.next()
        if op_kind != "op":
            raise QueryError("parse", f'QueryParserError: Encountered "{op}" where an operator was expected.')
        return Condition(path, "!=" if op == "<>" else op, (self.literal(),))


def parse_query(text: str) -> Query:
    """Parse a query; raises `QueryError`."""
    return _Parser(text).parse()


# ---------------------------------------------------------------------------------------------------- evaluation


# The spellings the SDK and the docs use for keys whose case differs on the wire; checked before a full scan.
_KEY_ALIASES = {
    "metadata": "MetaData",
    "id": "Id",
    "docnumber": "DocNumber",
    "active": "Active",
    "lastupdatedtime": "LastUpdatedTime",
    "createtime": "CreateTime",
    "txndate": "TxnDate",
    "duedate": "DueDate",
    "balance": "Balance",
    "totalamt": "TotalAmt",
    "customerref": "CustomerRef",
}


def resolve(obj: Obj, path: Sequence[str]) -> Any:
    """The value at a dotted path, matching keys case-insensitively; a Ref yields its `value`."""
    current: Any = obj
    for part in path:
        if not isinstance(current, dict):
            return None
        if part in current:
            current = current[part]
            continue
        lowered = part.lower()
        alias = _KEY_ALIASES.get(lowered)
        if alias is not None and alias in current:
            current = current[alias]
            continue
        for key, value in current.items():
            if key.lower() == lowered:
                current = value
                break
        else:
            return None
    if isinstance(current, dict) and "value" in current:
        return current["value"]
    return current


_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def as_instant(value: Any, tz: tzinfo) -> float | None:
    """A timestamp as POSIX seconds (None when `value` is not one)."""
    if not isinstance(value, str):
        return None
    return _parse_instant(value, tz)


@lru_cache(maxsize=65536)
def _parse_instant(value: str, tz: tzinfo) -> float | None:
    # Cached, and a float: a 10,000-invoice query compares and sorts on the same timestamps again and
    # again, and comparing aware datetimes asks each time zone for its offset.
    if not _TS_RE.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).timestamp()


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal | int):
        return Decimal(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def sort_key(value: Any, tz: tzinfo) -> tuple[int, Any]:
    """A key that orders mixed values the way QBO does: missing first, then typed."""
    if value is None:
        return (0, 0)
    instant = as_instant(value, tz)
    if instant is not None:
        return (1, instant)
    number = _as_number(value)
    if number is not None:
        return (2, number)
    if isinstance(value, bool):
        return (3, value)
    return (4, str(value).casefold())


def compare(left: Any, right: Any, tz: tzinfo) -> int | None:
    """-1/0/1 comparing a field value with a literal, typed as QBO does; None when not comparable."""
    if left is None:
        return None
    li, ri = as_instant(left, tz), as_instant(right, tz)
    if li is not None and ri is not None:
        return (li > ri) - (li < ri)
    ln, rn = _as_number(left), _as_number(right)
    if ln is not None and rn is not None:
        return (ln > rn) - (ln < rn)
    if isinstance(left, bool) or isinstance(right, bool):
        lb = left if isinstance(left, bool) else str(left).lower() == "true"
        rb = right if isinstance(right, bool) else str(right).lower() == "true"
        return 0 if lb == rb else (1 if lb else -1)
    ls, rs = str(left).casefold(), str(right).casefold()
    return (ls > rs) - (ls < rs)


def _like(value: Any, pattern: Any) -> bool:
    if value is None:
        return False
    regex = ".*".join(re.escape(part) for part in str(pattern).split("%"))
    return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


_OPS: dict[str, Callable[[int], bool]] = {
    "=": lambda c: c == 0,
    "!=": lambda c: c != 0,
    "<": lambda c: c < 0,
    ">": lambda c: c > 0,
    "<=": lambda c: c <= 0,
    ">=": lambda c: c >= 0,
}


def matches(obj: Obj, condition: Condition, tz: tzinfo) -> bool:
    """Whether an object satisfies one condition."""
    return predicate(condition, tz)(obj)


def _comparer(literal: Any, tz: tzinfo) -> Callable[[Any], int | None]:
    # The literal's type is settled once per query, not once per object: a 10,000-object scan stays cheap.
    instant = as_instant(literal, tz)
    number = _as_number(literal) if instant is None else None

    def against(value: Any) -> int | None:
        if value is None:
            return None
        if instant is not None:
            other = as_instant(value, tz)
            if other is not None:
                return (other > instant) - (other < instant)
        elif number is not None:
            amount = _as_number(value)
            if amount is not None:
                return (amount > number) - (amount < number)
        return compare(value, literal, tz)

    return against


def predicate(condition: Condition, tz: tzinfo) -> Callable[[Obj], bool]:
    """A test for one condition, with its literals parsed once."""
    path = condition.path
    if condition.op == "LIKE":
        pattern = condition.values[0]
        return lambda obj: _like(resolve(obj, path), pattern)
    comparers = [_comparer(v, tz) for v in condition.values]
    if condition.op == "IN":
        return lambda obj: any(c(resolve(obj, path)) == 0 for c in comparers)
    comparer, test = comparers[0], _OPS[condition.op]

    def check(obj: Obj) -> bool:
        result = comparer(resolve(obj, path))
        return result is not None and test(result)

    return check


def run_query(query: Query, objects: Sequence[Obj], tz: tzinfo) -> list[Obj]:
    """Filter and order (no paging): every object that matches, in the query's order (default: by Id)."""
    tests = [predicate(c, tz) for c in query.where]
    selected = [o for o in objects if all(t(o) for t in tests)]
    order = query.order or [(("Id",), False)]
    # Stable sorts from the last key to the first give a multi-key order with mixed directions.
    for path, descending in reversed(order):
        selected.sort(key=lambda o, p=path: sort_key(resolve(o, p), tz), reverse=descending)  # type: ignore[misc]
    return selected


def project(obj: Obj, fields: Sequence[str]) -> Obj:
    """Only the selected top-level fields (plus the identity QBO always returns)."""
    if not fields:
        return obj
    wanted = {f.split(".")[0].lower() for f in fields} | {"id", "synctoken", "domain"}
    out = {k: v for k, v in obj.items() if k.lower() in wanted}
    out["sparse"] = True
    return out
