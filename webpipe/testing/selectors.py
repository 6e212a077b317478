"""DOM selector assertions on HTML output (spec/testing.md §6.3), with BeautifulSoup and
soupsieve. Only the first match counts for `text` and `attribute`."""

from __future__ import annotations

import re
from typing import Any

from webpipe.syntax import nodes as n
from webpipe.testing.values import raw_text

_NEGATIVE = {"does not equal": "equals", "does not contain": "contains",
             "does not match": "matches"}


def _compare(op: str, actual: str, want: str) -> bool | None:
    match op:
        case "equals" | "is":
            return actual == want
        case "contains":
            return want in actual
        case "matches":
            try:
                return re.search(want, actual) is not None
            except re.error:
                return False
        case negative if negative in _NEGATIVE:
            result = _compare(_NEGATIVE[negative], actual, want)
            return None if result is None else not result
    return None


def _count_ok(op: str, actual: int, want: int) -> bool | None:
    match op:
        case "equals" | "is":
            return actual == want
        case "is greater than" | "greater than":
            return actual > want
        case "is less than" | "less than":
            return actual < want
    return None


def check_selector(a: n.SelectorAssertion, output: Any, variables: dict[str, Any],
                   ) -> str | None:
    if not isinstance(output, str):
        import json

        return f"Selector assertion requires HTML string output, got: {json.dumps(output)}"
    from bs4 import BeautifulSoup
    from soupsieve import SelectorSyntaxError

    css = raw_text(a.selector, variables)
    soup = BeautifulSoup(output, "html.parser")
    try:
        found = soup.select(css)
    except SelectorSyntaxError as exc:
        return f"Invalid CSS selector `{css}`: {str(exc).splitlines()[0]}"
    if a.check == "exists":
        return None if found else f"selector `{css}` matched nothing"
    if a.check == "not_exists":
        return None if not found else f"selector `{css}` matched {len(found)} element(s)"
    if a.check == "count":
        digits = re.match(r"\d+", raw_text(a.value, variables).strip())
        want = int(digits.group(0)) if digits else 0
        ok = _count_ok(a.op, len(found), want)
        if ok is None:
            return f"unsupported condition: selector count {a.op}"
        return None if ok else f"selector `{css}` count {a.op} {want}: got {len(found)}"
    if not found:
        return f"selector `{css}` matched nothing"
    return _first_match(a, css, found[0], variables)


def _first_match(a: n.SelectorAssertion, css: str, node: Any,
                 variables: dict[str, Any]) -> str | None:
    want = raw_text(a.value, variables)
    if a.check == "text":
        actual = "".join(node.strings).strip()
        what = "text"
    else:
        attr = raw_text(a.attribute, variables)
        value = node.get(attr)
        if value is None:
            return f"selector `{css}` has no attribute '{attr}'"
        actual = " ".join(value) if isinstance(value, list) else str(value)
        what = f"attribute '{attr}'"
    ok = _compare(a.op, actual, want)
    if ok is None:
        return f"unsupported condition: selector {a.check} {a.op}"
    return None if ok else f"selector `{css}` {what} {a.op} {want!r} failed: got {actual!r}"
