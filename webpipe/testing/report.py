"""Test reports: the reference's text format (summary line first), JSON, and colour.

Text (spec/testing.md §1.1): `Test Results: P/T passed (F failed)` then one
`[PASS] describe :: it` or `[FAIL] describe :: it -> message` line per test. Those lines are
the reference's, byte for byte; what this port adds goes on indented lines under a `[FAIL]`
line, so a script that reads the reference's lines reads ours: for each failed assertion its
`file:line` and source text, then the expected and actual values when the message does not
already carry them. Colour is used only when writing to a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from webpipe.testing.assertions import Failure
from webpipe.testing.runner import CaseResult

GREEN, RED, RESET = "\x1b[32m", "\x1b[31m", "\x1b[0m"
VALUE_LINES = 30  # a pretty-printed value longer than this is cut


def text_report(results: Sequence[CaseResult], colour: bool = False) -> str:
    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    lines = [f"Test Results: {passed}/{len(results)} passed ({failed} failed)"]
    for r in results:
        if r.passed:
            tag = f"{GREEN}[PASS]{RESET}" if colour else "[PASS]"
            lines.append(f"{tag} {r.title}")
        else:
            tag = f"{RED}[FAIL]{RESET}" if colour else "[FAIL]"
            lines.append(f"{tag} {r.title} -> {r.message}")
            for failure in r.failures:
                lines += ["  " + line for line in where(failure)]
                lines += ["    " + line for line in values(failure, VALUE_LINES)]
    return "\n".join(lines) + "\n"


def location(failure: Failure) -> str | None:
    """`file:line` of the assertion (or the step) that failed."""
    span = failure.span
    return f"{span.source.name}:{span.line}" if span is not None else None


def written(failure: Failure) -> str | None:
    """The assertion's line as written in the `.wp` file."""
    span = failure.span
    return span.source.line_text(span.line).strip() if span is not None else None


def where(failure: Failure) -> list[str]:
    """`app.wp:8: and output `.a` equals 1`: the place and the line as written."""
    place, text = location(failure), written(failure)
    return [f"{place}: {text}"] if place is not None else []


def values(failure: Failure, limit: int | None) -> list[str]:
    """`expected: …` and `actual: …` lines (JSON; a long value pretty-printed and cut)."""
    if failure.values is None:
        return []
    expected, actual = failure.values
    return [*_value("expected: ", expected, limit), *_value("actual:   ", actual, limit)]


def _value(label: str, value: Any, limit: int | None) -> list[str]:
    compact = json.dumps(value, ensure_ascii=False)
    if len(compact) <= 80:
        return [label + compact]
    lines = json.dumps(value, indent=2, ensure_ascii=False).splitlines()
    if limit is not None and len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more lines)"]
    return [label + lines[0], *(" " * len(label) + line for line in lines[1:])]


def json_report(results: Sequence[CaseResult]) -> str:
    rows = [{"describe": r.describe, "it": r.name,
             "outcome": "pass" if r.passed else "error" if r.errored else "fail",
             "message": r.message,
             "file": r.span.source.name if r.span else None,
             "line": r.span.line if r.span else None,
             "failures": [_failure_row(f) for f in r.failures]} for r in results]
    passed = sum(r.passed for r in results)
    return json.dumps({"passed": passed, "failed": len(results) - passed, "tests": rows},
                      indent=2) + "\n"


def _failure_row(failure: Failure) -> dict[str, Any]:
    row: dict[str, Any] = {"message": failure.message,
                           "file": failure.span.source.name if failure.span else None,
                           "line": failure.span.line if failure.span else None}
    if failure.values is not None:
        row["expected"], row["actual"] = failure.values
    return row
