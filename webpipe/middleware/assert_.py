"""`assert`: check the whole state against a shape contract (middleware.md §11, testing.md §10).

The contract is parsed once at load time by a small recursive-descent parser (`SchemaParser`)
into frozen schema nodes; a contract that does not parse raises `ConfigError` with the
reference's text (`assert schema parse error: ...`). The executor records it on the step's plan,
so `check` reports it and every run of the step still fails with a branchable `assertError`
envelope carrying the same message, as in the reference. At run time the state is walked
against the schema; the first violation becomes an `assertionError` envelope (merged into the
state by the executor); on success the state is returned unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from webpipe.errors import ConfigError
from webpipe.middleware.base import JSON, BaseMiddleware, Behavior, StepCall, StepResult
from webpipe.middleware.validate import is_email, is_number
from webpipe.source import Span
from webpipe.wire import json_type

# --- schema nodes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unknown:
    """`unknown` / `any`; also the item type of `[]`."""


@dataclass(frozen=True, slots=True)
class Null:
    pass


@dataclass(frozen=True, slots=True)
class Bool:
    pass


@dataclass(frozen=True, slots=True)
class Number:
    pass


@dataclass(frozen=True, slots=True)
class String:
    min: int | None = None
    max: int | None = None


@dataclass(frozen=True, slots=True)
class Email:
    pass


@dataclass(frozen=True, slots=True)
class Literal:
    """A string, number or `true`/`false` literal."""

    value: str | int | float | bool


@dataclass(frozen=True, slots=True)
class Array:
    item: Schema


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    optional: bool
    schema: Schema


@dataclass(frozen=True, slots=True)
class Object:
    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class Union:
    options: tuple[Schema, ...]


Schema = Unknown | Null | Bool | Number | String | Email | Literal | Array | Object | Union


@dataclass(frozen=True, slots=True)
class Contract:
    """What `prepare()` returns: the parsed contract."""

    schema: Schema


class AssertMiddleware(BaseMiddleware):
    behavior: ClassVar[Behavior] = Behavior.MERGE

    def prepare(self, config: str, span: Span | None) -> Contract:
        try:
            return Contract(SchemaParser(config).parse())
        except SchemaError as exc:
            raise ConfigError(f"assert schema parse error: {exc}", span=span) from None

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert isinstance(prepared, Contract)
        issue = check(state, prepared.schema, "$")
        if issue is None:
            return StepResult(state)
        return StepResult(assertion_error(*issue))


# --- checking --------------------------------------------------------------------------------

Issue = tuple[str, str]  # (path, message)


def check(value: JSON, schema: Schema, path: str) -> Issue | None:
    """The first violation of `schema` by `value` at `path`, or None."""
    match schema:
        case Unknown():
            return None
        case Null():
            return None if value is None else _type_issue(path, "null", value)
        case Bool():
            return None if isinstance(value, bool) else _type_issue(path, "boolean", value)
        case Number():
            return None if is_number(value) else _type_issue(path, "number", value)
        case String():
            return _check_string(value, schema, path)
        case Email():
            if not isinstance(value, str):
                return _type_issue(path, "email string", value)
            return None if is_email(value) else (path, f"Expected valid email at {path}")
        case Literal(expected):
            if literal_equals(expected, value):
                return None
            return path, f"Expected literal {_display(expected)} at {path}, got {json_type(value)}"
        case Array():
            return _check_array(value, schema, path)
        case Object():
            return _check_object(value, schema, path)
        case Union():
            return _check_union(value, schema, path)
    raise AssertionError(schema)


def _check_string(value: JSON, schema: String, path: str) -> Issue | None:
    if not isinstance(value, str):
        return _type_issue(path, "string", value)
    length = len(value)
    if schema.min is not None and length < schema.min:
        return path, f"Expected string at {path} to be at least {schema.min} characters"
    if schema.max is not None and length > schema.max:
        return path, f"Expected string at {path} to be at most {schema.max} characters"
    return None


def _check_array(value: JSON, schema: Array, path: str) -> Issue | None:
    if not isinstance(value, list):
        return _type_issue(path, "array", value)
    for index, item in enumerate(value):
        issue = check(item, schema.item, f"{path}[{index}]")
        if issue is not None:
            return issue
    return None


def _check_object(value: JSON, schema: Object, path: str) -> Issue | None:
    if not isinstance(value, dict):
        return _type_issue(path, "object", value)
    for field in schema.fields:
        child_path = f"{path}.{field.name}"
        if field.name in value:
            issue = check(value[field.name], field.schema, child_path)
            if issue is not None:
                return issue
        elif not field.optional:
            return child_path, f"Missing required field {child_path}"
    return None


def _check_union(value: JSON, schema: Union, path: str) -> Issue | None:
    messages: list[str] = []
    for option in schema.options:
        issue = check(value, option, path)
        if issue is None:
            return None
        messages.append(issue[1])
    return path, f"Value at {path} did not match any union member: {'; '.join(messages)}"


def literal_equals(expected: str | int | float | bool, value: JSON) -> bool:
    """Literal equality; numbers compare numerically (spec [Improve]), booleans are not numbers."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return type(expected) is type(value) and expected == value
    if isinstance(expected, str):
        return isinstance(value, str) and value == expected
    return is_number(value) and value == expected


def _type_issue(path: str, expected: str, value: JSON) -> Issue:
    return path, f"Expected {expected} at {path}, got {json_type(value)}"


def _display(value: str | int | float | bool) -> str:
    return json.dumps(value, ensure_ascii=False)


def assertion_error(path: str, message: str) -> dict[str, JSON]:
    field = path.removeprefix("$.")
    error = {"type": "assertionError", "field": field, "context": field, "rule": "assert",
             "code": "assert_failed", "message": message}
    return {"errors": [error]}


# --- parsing (load time) ---------------------------------------------------------------------


class SchemaError(Exception):
    """A contract that does not parse; the text follows the reference's messages."""


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "r": "\r", "t": "\t"}
_NAMED: dict[str, Schema] = {
    "unknown": Unknown(), "any": Unknown(), "null": Null(), "bool": Bool(), "boolean": Bool(),
    "number": Number(), "email": Email(), "true": Literal(True), "false": Literal(False),
}
_END = "end of schema"


class SchemaParser:
    """Recursive descent over the grammar of middleware.md §11, one method per rule."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Schema:
        try:
            schema = self.union()
        except RecursionError:
            raise SchemaError("schema is nested too deeply") from None
        self.skip_ws()
        if self.pos < len(self.text):
            raise SchemaError(f"unexpected token '{self.peek()}'")
        return schema

    def union(self) -> Schema:
        options = [self.primary()]
        while True:
            self.skip_ws()
            if not self.eat("|"):
                break
            options.append(self.primary())
        return options[0] if len(options) == 1 else Union(tuple(options))

    def primary(self) -> Schema:
        self.skip_ws()
        ch = self.peek()
        if ch is None:
            raise SchemaError("unexpected end of schema")
        if ch == "{":
            return self.object()
        if ch == "[":
            return self.array()
        if ch == '"':
            return Literal(self.string())
        if ch == "-" or _is_digit(ch):
            return self.number()
        if _is_ident_start(ch):
            return self.named()
        raise SchemaError(f"unexpected token '{ch}'")

    def object(self) -> Object:
        self.expect("{")
        fields: list[Field] = []
        while True:
            self.skip_ws_and_commas()
            if self.eat("}"):
                break
            if self.text.startswith("...", self.pos):  # open objects: `...` is ignored
                self.pos += 3
                self.skip_ws_and_commas()
                if self.eat("}"):
                    break
                continue
            fields.append(self.field())
            self.skip_ws_and_commas()
            if self.eat("}"):
                break
        return Object(tuple(fields))

    def field(self) -> Field:
        name = self.key()
        self.skip_ws()
        optional = self.eat("?")
        self.skip_ws()
        self.expect(":")
        return Field(name, optional, self.union())

    def array(self) -> Array:
        self.expect("[")
        self.skip_ws()
        if self.eat("]"):
            return Array(Unknown())
        item = self.union()
        self.skip_ws_and_commas()
        self.expect("]")
        return Array(item)

    def key(self) -> str:
        self.skip_ws()
        ch = self.peek()
        if ch == '"':
            return self.string()
        if ch is not None and _is_ident_start(ch):
            return self.identifier()
        got = _END if ch is None else f"'{ch}'"
        raise SchemaError(f"expected object field name, got {got}")

    def named(self) -> Schema:
        ident = self.identifier()
        if ident == "string":
            return String(*self.string_range())
        schema = _NAMED.get(ident)
        if schema is None:
            raise SchemaError(f"unknown assert type '{ident}'")
        return schema

    def number(self) -> Literal:
        start = self.pos
        self.eat("-")
        self.skip_digits()
        if self.eat("."):
            self.skip_digits()
        raw = self.text[start : self.pos]
        try:
            as_float = float(raw)
        except ValueError:
            as_float = float("inf")
        if as_float in (float("inf"), float("-inf")):
            raise SchemaError(f"invalid number literal '{raw}'")
        # spec [Improve]: keep integers exact so `200` equals an integer 200 in the state
        return Literal(as_float if "." in raw else int(raw))

    def string_range(self) -> tuple[int | None, int | None]:
        self.skip_ws()
        if not self.eat("("):
            return None, None
        self.skip_ws()
        end = self.text.find(")", self.pos)
        end = len(self.text) if end < 0 else end
        raw = self.text[self.pos : end].strip()
        self.pos = end
        self.expect(")")
        parts = [part.strip() for part in raw.split("..")]
        if len(parts) == 1 and parts[0]:
            exact = _usize(parts[0], raw)
            return exact, exact
        if len(parts) == 2:
            low = _usize(parts[0], raw) if parts[0] else None
            high = _usize(parts[1], raw) if parts[1] else None
            return low, high
        raise SchemaError(f"invalid string range '{raw}'")

    def identifier(self) -> str:
        start = self.pos
        self.pos += 1
        while (ch := self.peek()) is not None and (_is_ident_start(ch) or _is_digit(ch)
                                                   or ch == "-"):
            self.pos += 1
        return self.text[start : self.pos]

    def string(self) -> str:
        self.expect('"')
        out: list[str] = []
        while (ch := self.peek()) is not None:
            self.pos += 1
            if ch == '"':
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                continue
            escaped = self.peek()
            if escaped is None:
                raise SchemaError("unterminated string escape")
            self.pos += 1
            if escaped not in _ESCAPES:
                raise SchemaError(f"unsupported string escape '\\{escaped}'")
            out.append(_ESCAPES[escaped])
        raise SchemaError("unterminated string literal")

    # -- characters --

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def eat(self, expected: str) -> bool:
        if self.peek() == expected:
            self.pos += 1
            return True
        return False

    def expect(self, expected: str) -> None:
        self.skip_ws()
        if not self.eat(expected):
            ch = self.peek()
            raise SchemaError(f"expected '{expected}', got '{_END if ch is None else ch}'")

    def skip_ws(self) -> None:
        while (ch := self.peek()) is not None and _is_ws(ch):
            self.pos += 1

    def skip_ws_and_commas(self) -> None:
        self.skip_ws()
        while self.eat(","):
            self.skip_ws()

    def skip_digits(self) -> None:
        while (ch := self.peek()) is not None and _is_digit(ch):
            self.pos += 1


def _usize(text: str, raw: str) -> int:
    # Rust's `usize::from_str`: optional `+`, ASCII digits only
    digits = text.removeprefix("+")
    if not digits or len(digits) > 18 or not all(_is_digit(ch) for ch in digits):
        raise SchemaError(f"invalid string range '{raw}'")
    return int(digits)


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _is_ident_start(ch: str) -> bool:
    return ch.isascii() and (ch.isalpha() or ch == "_")


def _is_ws(ch: str) -> bool:
    # Rust's char::is_whitespace (Python's isspace also counts U+001C..U+001F)
    return ch.isspace() and ch not in "\x1c\x1d\x1e\x1f"
