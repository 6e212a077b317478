"""Assertions of `it` blocks (spec/testing.md §6-§7, messages §9).

`check()` returns None when an assertion passes and a `Failure` otherwise (the reference's
message, the assertion's span, and for `output` and `call` assertions the expected and actual
values, which the reports show without `--verbose`); it raises `TestValueError` when the test
must *error* (an invalid regex in `output matches`).
Comparison: deep equality with numbers compared by value (but booleans never equal
numbers), containment as §7.2, regex search over the output's text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from webpipe.jqlib import JqError, compile_jq
from webpipe.source import Span
from webpipe.syntax import nodes as n
from webpipe.testing.values import TestValueError, eval_jq, expected_value, raw_text


@dataclass
class TestOutcome:
    status: int
    content_type: str
    output: Any
    calls: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """One failed assertion. `values` is (expected, actual) when the message lacks them."""

    message: str
    span: Span | None = None
    values: tuple[Any, Any] | None = None


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, dict) and isinstance(expected, dict):
        return all(k in actual and contains(actual[k], v) for k, v in expected.items())
    if isinstance(actual, list) and isinstance(expected, list):
        return all(any(contains(a, e) for a in actual) for e in expected)
    if isinstance(actual, str) and isinstance(expected, str):
        return expected in actual
    return equal(actual, expected)


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def search(pattern: Any, subject: str) -> bool:
    try:
        return re.search(as_text(pattern), subject) is not None
    except re.error as exc:
        raise TestValueError(f"invalid regex {as_text(pattern)!r}: {exc}") from None


def check(a: n.Assertion, out: TestOutcome, variables: dict[str, Any],
          verbose: bool) -> Failure | None:
    found = _judge(a, out, variables, verbose)
    if isinstance(found, str):
        return Failure(found, a.span)
    return found


def _judge(a: n.Assertion, out: TestOutcome, variables: dict[str, Any],
           verbose: bool) -> Failure | str | None:
    match a:
        case n.FieldAssertion(subject="status"):
            return _status(a, out, variables)
        case n.FieldAssertion(subject="contentType"):
            want = as_text(expected_value(a.value, variables))
            if a.op in ("is", "equals"):
                return None if out.content_type == want else \
                    f"expected contentType {want} got {out.content_type}"
        case n.FieldAssertion(subject="output"):
            return _output(a, out, variables, verbose)
        case n.FieldAssertion(subject="header"):
            return _header(a, out, variables)
        case n.SelectorAssertion():
            from webpipe.testing.selectors import check_selector

            return check_selector(a, out.output, variables)
        case n.CallAssertion():
            return _call(a, out, variables)
    return _unsupported(a, variables)


def _unsupported(a: n.Assertion, variables: dict[str, Any]) -> str:
    if isinstance(a, n.FieldAssertion):
        value = raw_text(a.value, variables)
        return f"unsupported condition: {a.subject} {a.op} {value}".rstrip()
    return "unsupported condition"


def _status(a: n.FieldAssertion, out: TestOutcome, variables: dict[str, Any]) -> str | None:
    text = raw_text(a.value, variables).strip()
    if a.op == "in":
        m = re.fullmatch(r"(\d+)\s*\.\.\s*(\d+)", text)
        if not m:
            return f"invalid status range: {text}"
        low, high = int(m.group(1)), int(m.group(2))
        return None if low <= out.status <= high else \
            f"expected status in {low}..{high} got {out.status}"
    if a.op not in ("is", "equals"):
        return _unsupported(a, variables)
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > 65535:
        return f"invalid expected status: {text}"
    return None if out.status == int(text) else f"expected status {text} got {out.status}"


def _output(a: n.FieldAssertion, out: TestOutcome, variables: dict[str, Any],
            verbose: bool) -> Failure | str | None:
    actual = out.output
    want = expected_value(a.value, variables)
    if a.path is not None:
        try:
            actual = compile_jq(a.path.text, allow_context=False).first_tooling(actual)
        except JqError as exc:
            detail = f"\nActual output: {pretty(out.output)}" if verbose else ""
            return f"output assertion `{a.path.text}` {a.op} {as_text(want)}: {exc}{detail}"
    details = f"\nExpected: {pretty(want)}\nActual: {pretty(actual)}" if verbose else ""
    match a.op:
        case "equals" | "is":
            ok, failure = equal(actual, want), "output mismatch"
        case "contains":
            ok, failure = contains(actual, want), "output missing expected fragment"
        case "matches":
            ok, failure = search(want, as_text(actual)), "output does not match regex"
        case _:
            return _unsupported(a, variables)
    return None if ok else Failure(failure + details, a.span, None if verbose else (want, actual))


def header_value(output: Any, name: str) -> str | None:
    if not isinstance(output, dict):
        return None
    if name.lower() == "set-cookie":
        cookies = output.get("setCookies")
        if isinstance(cookies, list):
            return "; ".join(c for c in cookies if isinstance(c, str))
        return None
    headers = output.get("setHeaders")
    if isinstance(headers, dict) and isinstance(headers.get(name), str):
        return str(headers[name])
    value = output.get(name)
    return value if isinstance(value, str) else None


def _header(a: n.FieldAssertion, out: TestOutcome, variables: dict[str, Any]) -> str | None:
    name = a.path.text if a.path else ""
    actual = header_value(out.output, name)
    if actual is None:
        return f"header '{name}' not found"
    want = as_text(expected_value(a.value, variables))
    match a.op:
        case "equals" | "is":
            ok = actual == want
        case "contains":
            ok = want in actual
        case "matches":
            ok = search(want, actual)
        case _:
            return _unsupported(a, variables)
    return None if ok else f"header '{name}' {a.op} {want!r} failed: got {actual!r}"


def _call(a: n.CallAssertion, out: TestOutcome, variables: dict[str, Any]) -> Failure | None:
    want = eval_jq(a.value.text, variables, f"call assertion `{a.kind} {a.name}`")
    keys = [f"{a.kind}.{a.name}", f"{a.kind[:1].upper()}{a.kind[1:]}.{a.name}"]
    calls = next((out.calls[k] for k in keys if out.calls.get(k)), None)
    target = f"{a.kind} {a.name}"
    if not calls:
        return Failure(f"{target} was never called", a.span)
    if any(contains(call, want) for call in calls):
        return None
    return Failure(f"Expected {target} to be called with {as_text(want)}, "
                   "but no matching call found", a.span, (want, calls))
