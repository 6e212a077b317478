"""`validate`: check fields of `.body` against a schema of `FIELD: TYPE` rules (spec/validate.md).

The schema is read once at load time, strictly: fields separated by commas and/or newlines,
optionally inside one pair of outer braces; names are identifiers or double-quoted strings;
types `string[(RANGE)]`, `email`, `bool[ean]` and `number`. Text the reader does not fully
accept is a `ConfigError` pointing into the schema, so `webpipe check` shows it with a caret
(the reference scans one rule per line and skips the rest, passing what it never checked).
At run time `.body` must be a JSON object, then every rule is checked in order; the first
failure returns a `validationError` envelope, which the executor merges into the state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

import orjson

from webpipe.errors import ConfigError
from webpipe.middleware.base import JSON, BaseMiddleware, Behavior, StepCall, StepResult
from webpipe.source import Span
from webpipe.wire import json_type

RuleKind = Literal["string", "email", "boolean", "number"]
TYPES: dict[str, RuleKind] = {"string": "string", "email": "email", "bool": "boolean",
                              "boolean": "boolean", "number": "number"}
EXPECTED = "expected string, string(MIN..MAX), email, boolean or number"

# One field: a name, `:`, a type word and an optional parenthesised range.
_NAME = re.compile(r'[A-Za-z_$][A-Za-z0-9_$-]*|"(?:[^"\\\n]|\\.)*"')
_COLON = re.compile(r"[ \t]*:[ \t]*")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RANGE = re.compile(r"[ \t]*\([ \t]*([0-9]{0,18})[ \t]*(\.\.)?[ \t]*([0-9]{0,18})[ \t]*\)")
_SEPARATOR = re.compile(r"[ \t]*(?:(?:,|\r?\n)[ \t]*)+|[ \t]*\Z")
_OPEN = re.compile(r"[ \t]*\(")
RANGES = "`(N)`, `(MIN..MAX)`, `(MIN..)` or `(..MAX)`"


@dataclass(frozen=True, slots=True)
class Rule:
    """One field of the schema: the body key it reads and its check."""

    field: str
    kind: RuleKind
    min: int | None = None
    max: int | None = None


class ValidateMiddleware(BaseMiddleware):
    behavior: ClassVar[Behavior] = Behavior.MERGE

    def prepare(self, config: str, span: Span | None) -> tuple[Rule, ...]:
        try:
            return parse_rules(config)
        except SchemaError as exc:
            raise ConfigError(f"cannot read the schema: {exc.message}",
                              span=_span_in_config(span, config, exc.offset)) from None

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert isinstance(prepared, tuple)
        body = state.get("body") if isinstance(state, dict) else None
        if not isinstance(body, dict):
            return StepResult(validation_error(
                "body", "object", f"Request body must be a JSON object, got {json_type(body)}"))
        for rule in prepared:
            failure = check_rule(rule, body.get(rule.field))
            if failure is not None:
                return StepResult(validation_error(rule.field, *failure))
        return StepResult(state)


# --- load time -------------------------------------------------------------------------------


class SchemaError(ValueError):
    """A schema the reader cannot fully read: what is wrong and where (offset in the text)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def parse_rules(config: str) -> tuple[Rule, ...]:
    """Every rule of the schema, in order; raises `SchemaError` for anything else."""
    start, end = len(config) - len(config.lstrip()), len(config.rstrip())
    if start >= end:
        raise SchemaError("the schema is empty; write fields such as `{ name: string }`", 0)
    if config[start] == "{":
        if config[end - 1] != "}":
            raise SchemaError("`{` is never closed", start)
        start, end = start + 1, end - 1
    rules: list[Rule] = []
    pos = _skip_separators(config, start, end)
    while pos < end:
        rule, after = _field(config, pos, end)
        if any(r.field == rule.field for r in rules):
            raise SchemaError(f"field {rule.field!r} appears twice", pos)
        pos = after
        rules.append(rule)
        sep = _SEPARATOR.match(config, pos, end)
        if sep is None:  # point at what follows the field, past the blanks
            at = len(config) - len(config[pos:].lstrip(" \t"))
            raise SchemaError("expected `,` or a new line before the next field", at)
        pos = _skip_separators(config, sep.end(), end)
    return tuple(rules)


def _skip_separators(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos] in " \t\r\n,":
        pos += 1
    return pos


def _field(text: str, pos: int, end: int) -> tuple[Rule, int]:
    """The rule at `pos` and the offset after it."""
    name = _NAME.match(text, pos, end)
    if name is None:
        raise SchemaError("expected a field name (a word or a \"quoted\" name)", pos)
    colon = _COLON.match(text, name.end(), end)
    if colon is None:
        raise SchemaError(f"expected `:` after the field name {name.group()}", name.end())
    kind = _WORD.match(text, colon.end(), end)
    if kind is None:
        raise SchemaError(f"expected a type after `{name.group()}:`; {EXPECTED}", colon.end())
    word = kind.group()
    if word not in TYPES:
        raise SchemaError(f"unknown type {word!r}; {EXPECTED}", kind.start())
    field = _name(name)
    bounds = _RANGE.match(text, kind.end(), end)
    if bounds is None:
        if _OPEN.match(text, kind.end(), end):
            raise SchemaError(f"a range is {RANGES} with whole numbers", kind.end())
        return Rule(field, TYPES[word]), kind.end()
    if TYPES[word] != "string":
        raise SchemaError(f"only string takes a length range, not {word}", bounds.start())
    return _ranged(field, bounds), bounds.end()


def _name(match: re.Match[str]) -> str:
    """A word as written; a quoted name is a JSON string (the reference kept the quotes,
    so such a field could never match a key)."""
    text = match.group()
    if not text.startswith('"'):
        return text
    try:
        name = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise SchemaError(f"bad escape in the field name {text}", match.start()) from None
    assert isinstance(name, str)
    return name


def _ranged(field: str, bounds: re.Match[str]) -> Rule:
    low, dots, high = bounds.groups()
    if not low and not high:
        raise SchemaError(f"a range needs a number: {RANGES}", bounds.start())
    lower = int(low) if low else None
    upper = int(high) if high else None if dots else lower
    if lower is not None and upper is not None and lower > upper:
        raise SchemaError(f"the range {lower}..{upper} is empty", bounds.start())
    return Rule(field, "string", lower, upper)


def _span_in_config(span: Span | None, config: str, offset: int) -> Span | None:
    """The position of `offset` of the schema in the source, when the step's own text holds
    the schema (a schema from a variable is reported at the step)."""
    if span is None:
        return None
    at = span.source.text.find(config, span.start, span.end)
    if at < 0 or not config:
        return span
    return span.source.span(at + offset, at + offset + 1)


# --- run time --------------------------------------------------------------------------------


def check_rule(rule: Rule, value: JSON) -> tuple[str, str] | None:
    """The first failing check of one rule as `(rule, message)`, or None when it passes."""
    name = rule.field
    match rule.kind:
        case "string":
            return _check_string(rule, value)
        case "email":
            if not isinstance(value, str) or not value:
                return "required", f"Field '{name}' is required and must be a valid email"
            if not is_email(value):
                return "email", f"Field '{name}' must be a valid email address"
        case "boolean":
            if not isinstance(value, bool):
                return "required", f"Field '{name}' is required and must be a boolean"
        case "number":
            if not is_number(value):
                return "required", f"Field '{name}' is required and must be a number"
    return None


def _check_string(rule: Rule, value: JSON) -> tuple[str, str] | None:
    name = rule.field
    if not isinstance(value, str) or not value:
        return "required", f"Field '{name}' is required and must be a non-empty string"
    length = len(value)  # code points, like Rust's chars().count()
    if rule.min is not None and length < rule.min:
        return "minLength", f"Field '{name}' must be at least {rule.min} characters"
    if rule.max is not None and length > rule.max:
        return "maxLength", f"Field '{name}' must be at most {rule.max} characters"
    return None


def is_email(text: str) -> bool:
    """The reference's email test, shared with `assert`: has `@` and `.`, no `@` at either end."""
    return "@" in text and "." in text and not text.startswith("@") and not text.endswith("@")


def is_number(value: JSON) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)



def validation_error(field: str, rule: str, message: str) -> dict[str, JSON]:
    error = {"type": "validationError", "field": field, "context": field, "rule": rule,
             "message": message}
    return {"errors": [error]}
