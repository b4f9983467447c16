"""Pydantic's validation errors → problems named by their TOML key, in file order (for `bridge.config`).

TOML values are typed, so a value of the wrong TOML type is an error even where
pydantic's lax mode would coerce it: `business_days = "no"` must not silently
mean true, and `grace_days = "5"` is a typo worth pointing out. Secrets anywhere
in the file, malformed contract tables and duplicate connection names are found
before pydantic runs; pydantic's own errors are then put in the user's words,
located by the path as written (contracts by their table name), and all of them
are raised at once in one `ConfigError`.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from bridge.errors import ConfigError
from bridge.policies.terms import Contract

_Model = TypeVar("_Model", bound=BaseModel)

# Contract names appear inside dotted clause paths (`contracts.NAME.late_fee`),
# so unlike connection names they may not contain dots either.
CONTRACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

# Keys that hold credentials. They are unknown keys anyway; naming them as
# secrets tells the user where the value belongs instead of suggesting a typo.
_SECRET_KEYS = frozenset(
    {
        "access_token",
        "api_key",
        "client_secret",
        "id_token",
        "password",
        "private_key",
        "refresh_token",
        "secret",
        "secret_key",
        "token",
    }
)
SECRET_ADVICE = (
    "secrets never go in the config file: `bridge link` keeps tokens encrypted in the "
    "token store, and client credentials come from the environment "
    "(BRIDGE_<PROVIDER>_CLIENT_ID / BRIDGE_<PROVIDER>_CLIENT_SECRET)"
)
_Path = tuple[str | int, ...]


@dataclass(frozen=True)
class _Problem:
    """One problem, located by its path in the TOML data as written (contracts by name)."""

    path: _Path
    message: str


def describe_syntax_error(message: str, text: str) -> str:
    """tomllib puts the position at the end of its message; lead with it instead."""
    match = re.match(r"^(.*) \(at line (\d+), column (\d+)\)$", message)
    if match:
        return f"line {match[2]}, column {match[3]}: invalid TOML: {match[1]}"
    match = re.match(r"^(.*) \(at end of document\)$", message)
    if match:
        return f"line {text.count(chr(10)) + 1} (end of file): invalid TOML: {match[1]}"
    return f"invalid TOML: {message}"


def validate(model: type[_Model], data: dict[str, Any], raw: dict[str, Any], path: Path) -> _Model:
    """Validate `data` (the file's tables) as `model`, or raise every problem found.

    `raw` is the whole file as parsed, used only to report problems in file order.
    """
    problems, prepared, contract_names = _prepare(data)
    claimed = {p.path for p in problems}

    def add(problem: _Problem) -> None:
        if problem.path not in claimed:
            claimed.add(problem.path)
            problems.append(problem)

    root = [model]
    for loc, message in _type_problems(root, prepared, ()):
        add(_Problem(_to_path(root, loc, contract_names)[0], message))
    result: _Model | None = None
    try:
        result = model.model_validate(prepared)
    except ValidationError as exc:
        # Pydantic problems at a path already explained (by the type or secret checks)
        # would only repeat it in worse words.
        pydantic_problems = [_from_pydantic(root, err, contract_names) for err in exc.errors()]
        pydantic_problems = [p for p in pydantic_problems if p.path not in claimed]
        problems.extend(pydantic_problems)
    if problems or result is None:
        problems.sort(key=lambda p: _position(raw, p.path))
        raise ConfigError([f"{_render(p.path)}: {p.message}" for p in problems], str(path))
    return result


def _prepare(data: dict[str, Any]) -> tuple[list[_Problem], dict[str, Any], list[str]]:
    """Turn `[contracts.NAME]` tables into a list of contracts named by their table key.

    Returns the problems found on the way (malformed contract tables, secrets
    anywhere), the data ready for pydantic, and the contract names by list index.
    """
    problems = [_Problem(p, f"looks like a secret; {SECRET_ADVICE}") for p in _secret_paths(data, ())]
    problems += _duplicate_connections(data.get("connections"))
    prepared = dict(data)
    names: list[str] = []
    if "contracts" not in data:
        return problems, prepared, names
    contracts = data["contracts"]
    if not isinstance(contracts, dict):
        problems.append(
            _Problem(
                ("contracts",),
                f"must be a table of named contracts, [contracts.NAME] (got {_describe(contracts)})",
            )
        )
        del prepared["contracts"]
        return problems, prepared, names
    bodies: list[dict[str, Any]] = []
    for name, body in contracts.items():
        if not isinstance(body, dict):
            hint = (
                f"; {name!r} is a contract setting, it goes inside a named contract such as [contracts.standard]"
                if name in Contract.model_fields
                else ""
            )
            problems.append(
                _Problem(
                    ("contracts", name),
                    f"must be a table [contracts.{name}] (got {_describe(body)}){hint}",
                )
            )
            continue
        if not CONTRACT_NAME.match(name):
            problems.append(
                _Problem(
                    ("contracts", name),
                    "contract names must start with a letter or digit and use only letters, "
                    "digits, '_' and '-' (they appear in dotted clause paths)",
                )
            )
        body = dict(body)
        if "name" in body:
            problems.append(
                _Problem(
                    ("contracts", name, "name"),
                    f"unknown key; a contract's name is its table name, [contracts.{name}]",
                )
            )
            del body["name"]
        names.append(name)
        bodies.append({"name": name, **body})
    prepared["contracts"] = bodies
    return problems, prepared, names


def _duplicate_connections(connections: Any) -> list[_Problem]:
    """Connection names key the cursors, tokens and action keys: two alike would share them."""
    if not isinstance(connections, list):
        return []
    first: dict[str, int] = {}
    problems = []
    for index, conn in enumerate(connections):
        name = conn.get("name") if isinstance(conn, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(
                _Problem(
                    ("connections", index, "name"),
                    f"duplicate connection name {name!r} (also connections[{first[name]}])",
                )
            )
        else:
            first[name] = index
    return problems


def _secret_paths(node: Any, path: _Path) -> Iterator[_Path]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key.lower() in _SECRET_KEYS:
                yield (*path, key)
            else:
                yield from _secret_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _secret_paths(value, (*path, index))


# ---------------------------------------------------------------------------------------------
# Walking the models alongside the data
# ---------------------------------------------------------------------------------------------


def _members(annotation: Any) -> list[Any]:
    """The concrete types a value may take: Annotated unwrapped, unions flattened, None dropped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) if arg is not type(None) for m in _members(arg)]
    return [annotation]


def _models(members: list[Any]) -> list[type[BaseModel]]:
    return [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]


def _field(members: list[Any], key: str) -> list[Any] | None:
    """The member types of field `key` in the first model among `members` that has it."""
    for model in _models(members):
        for name, field in model.model_fields.items():
            if key == (field.alias or name):  # `from` is the field `from_`
                return _members(field.annotation)
    return None


def _elements(members: list[Any]) -> list[Any] | None:
    """The member types of the elements of the first tuple type among `members`."""
    for member in members:
        if get_origin(member) is tuple:
            return _members(get_args(member)[0])
    return None


def _type_problems(members: list[Any], value: Any, loc: _Path) -> Iterator[tuple[_Path, str]]:
    """Values whose TOML type is wrong, even where pydantic's lax mode would coerce them."""
    if isinstance(value, dict) and _models(members):
        for key, item in value.items():
            field = _field(members, key)
            if field is not None:
                yield from _type_problems(field, item, (*loc, key))
        return
    if isinstance(value, list) and (elements := _elements(members)) is not None:
        for index, item in enumerate(value):
            yield from _type_problems(elements, item, (*loc, index))
        return
    message = _scalar_type_problem(members, value, str(loc[-1]) if loc else "")
    if message:
        yield loc, message


def _scalar_type_problem(members: list[Any], value: Any, key: str) -> str | None:
    got = _describe(value)
    if bool in members:
        return None if isinstance(value, bool) else f"must be true or false (got {got})"
    if int in members:
        if isinstance(value, int) and not isinstance(value, bool):
            return None
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return f"must be a whole number (got {got}; write {value.strip()} without quotes)"
        return f"must be a whole number (got {got})"
    if str in members:
        if isinstance(value, str):
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f'must be a quoted string (got {got}; write "{value}")'
        return f"must be a quoted string (got {got})"
    if Decimal in members:
        example = "1.5" if "percent" in key else "25.00"
        if isinstance(value, float):
            return _float_amount(value, "percent" in key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return None  # a string that is not a number is pydantic's decimal_parsing error
        return f'must be a number in a quoted string, like "{example}" (got {got})'
    return None


def _float_amount(value: float, percent: bool) -> str:
    """TOML floats are binary: 0.1 is not one tenth. Show the exact string to write instead."""
    what = "percentages" if percent else "money"
    exact = Decimal(repr(value))
    if not exact.is_finite():  # inf or nan: there is no exact string to suggest
        example = '"1.5"' if percent else '"25.00"'
    else:
        exponent = exact.as_tuple().exponent
        if not percent and isinstance(exponent, int) and exponent > -2:
            exact = exact.quantize(Decimal("0.01"))
        example = f'"{exact:f}"'
    return (
        f"{what} must be a quoted string like {example}, not a float "
        f"(got {value!r}; TOML floats are binary and lose cents)"
    )


def _to_path(root: list[Any], loc: _Path, contract_names: list[str]) -> tuple[_Path, list[Any], list[Any]]:
    """Map a pydantic loc onto the path as written, with the member types of its parent and its own.

    Contract indices become contract names; parts that are neither a field nor an
    index (pydantic's `function-after[...]`, union member tags) are dropped; an
    unknown last key is kept as written.
    """
    path: list[str | int] = []
    members = root
    parent = root
    for position, part in enumerate(loc):
        parent = members
        if isinstance(part, int):
            elements = _elements(members)
            if path == ["contracts"] and part < len(contract_names):
                path.append(contract_names[part])
            else:
                path.append(part)
            members = elements if elements is not None else []
            continue
        field = _field(members, part)
        if field is not None:
            path.append(part)
            members = field
        elif position == len(loc) - 1:
            path.append(part)
            members = []
        # else: an internal part of pydantic's, not in the file: skip it and stay put
    return tuple(path), parent, members


def _from_pydantic(root: list[Any], error: ErrorDetails, contract_names: list[str]) -> _Problem:
    path, parent, members = _to_path(root, tuple(error["loc"]), contract_names)
    kind = error["type"]
    value = error.get("input")
    ctx: dict[str, Any] = error.get("ctx") or {}
    key = str(path[-1]) if path else ""
    got = _describe(value)
    message: str
    if kind == "extra_forbidden":
        allowed = [
            name
            for model in _models(parent)
            for name in model.model_fields
            if not (model is Contract and name == "name")  # the name is the table's key
        ]
        hint = did_you_mean(key, allowed)
        message = f"unknown key{hint}" if hint else f"unknown key (allowed here: {', '.join(allowed)})"
    elif kind == "missing":
        message = "required key is missing"
        choices = [repr(a) for m in members if get_origin(m) is Literal for a in get_args(m)]
        if choices:
            message += f" (one of {', '.join(choices)})"
        elif key == "provider" and path[:1] == ("connections",):
            from bridge.providers import installed

            message += f" (installed: {', '.join(repr(n) for n in sorted(installed())) or 'none'})"
        if key == "applies_to":
            message += ': list the customers this contract covers, e.g. applies_to = ["*"]'
    elif kind == "too_short" and key == "applies_to":
        message = 'must not be empty: list customer ids, names or e-mails, or "*" for everyone'
    elif kind in ("too_short", "string_too_short"):
        message = "must not be empty"
    elif kind == "greater_than_equal":
        bound = ctx.get("ge")
        message = (
            f"must not be negative (got {_plain(value)})"
            if bound == 0
            else f"must be at least {bound} (got {_plain(value)})"
        )
    elif kind == "less_than_equal":
        message = f"must be at most {ctx.get('le')} (got {_plain(value)})"
    elif kind in ("decimal_parsing", "decimal_type"):
        example = "1.5" if "percent" in key else "25.00"
        message = f'must be a number in a quoted string, like "{example}" (got {got})'
    elif kind == "finite_number":
        message = f"must be a finite number (got {got})"
    elif kind in ("literal_error", "enum"):
        message = f"must be {ctx.get('expected')} (got {got})"
    elif kind == "model_type":
        message = f"must be a table (got {got})"
    elif kind in ("tuple_type", "list_type") and path == ("connections",):
        message = f"must be an array of tables: write [[connections]], not [connections] (got {got})"
    elif kind in ("tuple_type", "list_type"):
        # Suggest wrapping a lone value only when that makes a valid element.
        elements = _elements(members) or []
        fits = (str in elements and isinstance(value, str)) or (
            int in elements and isinstance(value, int) and not isinstance(value, bool)
        )
        suggestion = f"; write [{toml_text(value)}]" if fits else ""
        message = f"must be an array (got {got}{suggestion})"
    elif kind == "value_error":
        message = strip_prefix(str(error["msg"]))
    else:
        message = f"{strip_prefix(str(error['msg']))} (got {got})"
    return _Problem(path, message)


# ---------------------------------------------------------------------------------------------
# Words
# ---------------------------------------------------------------------------------------------


def strip_prefix(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message.replace("Input should be", "must be")


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def toml_text(value: Any) -> str:
    """`value` as it would be written in TOML, for quoting it back to the user."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, date | time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{...}"
    return repr(value)


def _describe(value: Any) -> str:
    """`value` with its TOML type, e.g. 'the string "5"', so type mistakes are plain to see."""
    if isinstance(value, bool):
        return toml_text(value)
    if isinstance(value, str):
        return f"the string {toml_text(value)}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the float {value!r}"
    if isinstance(value, datetime):
        return f"the date-time {value.isoformat()}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    if isinstance(value, time):
        return f"the time {value.isoformat()}"
    if isinstance(value, list):
        return f"the array {toml_text(value)}"
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def _plain(value: Any) -> str:
    """A number without quotes, even when it was written as a string (money, percents)."""
    return str(value) if isinstance(value, str | int | Decimal) else toml_text(value)


def _render(path: _Path) -> str:
    """`contracts.standard.late_fee.percent`, `connections[1].name`; odd keys quoted as in TOML."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)
            out += f".{key}" if out else key
    return out


def _position(raw: Any, path: _Path) -> tuple[int, ...]:
    """Where `path` sits in the file, for sorting; a missing key sorts after its siblings."""
    order: list[int] = []
    node = raw
    for part in path:
        if isinstance(node, dict):
            keys = list(node)
            order.append(keys.index(part) if part in node else len(keys))
            node = node.get(part) if isinstance(part, str) else None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            order.append(part)
            node = node[part]
        else:
            order.append(0)
            node = None
    return tuple(order)
