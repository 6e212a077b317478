"""`validate`: check fields of `.body` against a line-oriented rule list (middleware.md §10).

The config is scanned once at load time into a tuple of `Rule`s: one `FIELD: TYPE` per line,
optionally inside one pair of outer braces, types `string[(RANGE)]`, `email`, `bool[ean]` and
`number`; any other line is ignored, as in the reference (the scanner never fails). At run time
the rules are checked in order against `.body`; the first failure returns a `validationError`
envelope, which the executor merges into the state. A missing or non-object `.body` passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from webpipe.middleware.base import JSON, BaseMiddleware, Behavior, StepCall, StepResult
from webpipe.source import Span

RuleKind = Literal["string", "email", "boolean", "number"]

# Rust's `usize::from_str`: an optional `+`, then ASCII digits only.
_USIZE = re.compile(r"\+?[0-9]+")


@dataclass(frozen=True, slots=True)
class Rule:
    """One recognised line: the field name as written (quotes kept) and its check."""

    field: str
    kind: RuleKind
    min: int | None = None
    max: int | None = None


class ValidateMiddleware(BaseMiddleware):
    behavior: ClassVar[Behavior] = Behavior.MERGE

    def prepare(self, config: str, span: Span | None) -> tuple[Rule, ...]:
        return parse_rules(config)

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert isinstance(prepared, tuple)
        body = state.get("body") if isinstance(state, dict) else None
        if not isinstance(body, dict):
            return StepResult(state)
        for rule in prepared:
            failure = check_rule(rule, body.get(rule.field))
            if failure is not None:
                return StepResult(validation_error(rule.field, *failure))
        return StepResult(state)


# --- load time -------------------------------------------------------------------------------


def parse_rules(config: str) -> tuple[Rule, ...]:
    """Scan the config text (§10.1); lines that are not a recognised rule are skipped."""
    text = config.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    rules: list[Rule] = []
    for raw in rust_lines(text):
        line = raw.strip().rstrip(",")
        name, colon, rhs = line.partition(":")
        if not line or not colon:
            continue
        rule = _rule(name.strip(), rhs.strip())
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def _rule(name: str, rhs: str) -> Rule | None:
    if rhs.startswith("string"):
        low, high = _string_bounds(rhs)
        return Rule(name, "string", low, high)
    if rhs.startswith("email"):
        return Rule(name, "email")
    if rhs.startswith("bool"):  # also "boolean"
        return Rule(name, "boolean")
    if rhs.startswith("number"):
        return Rule(name, "number")
    return None


def _string_bounds(rhs: str) -> tuple[int | None, int | None]:
    """`string(A..B)`: the text between the first `(` and the last `)`, split on `..`."""
    open_at, close_at = rhs.find("("), rhs.rfind(")")
    if open_at < 0 or close_at < 0:
        return None, None
    parts = rhs[open_at + 1 : close_at].split("..")
    if len(parts) == 2:
        return _usize(parts[0]), _usize(parts[1])
    if len(parts) == 1:
        exact = _usize(parts[0])
        return exact, exact
    return None, None


def _usize(text: str) -> int | None:
    text = text.strip()
    return int(text) if _USIZE.fullmatch(text) else None


def rust_lines(text: str) -> list[str]:
    """Rust's `str::lines()`: split on `\\n`, drop one `\\r` before it, no empty last line."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
        return [line.removesuffix("\r") for line in lines]
    return [line.removesuffix("\r") for line in lines[:-1]] + lines[-1:]


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
