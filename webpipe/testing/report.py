"""Test reports: the reference's text format (summary line first), JSON, and colour.

Text (spec/testing.md §1.1): `Test Results: P/T passed (F failed)` then one
`[PASS] describe :: it` or `[FAIL] describe :: it -> message` line per test. Colour is used
only when writing to a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from webpipe.testing.runner import CaseResult

GREEN, RED, RESET = "\x1b[32m", "\x1b[31m", "\x1b[0m"


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
    return "\n".join(lines) + "\n"


def json_report(results: Sequence[CaseResult]) -> str:
    rows = [{"describe": r.describe, "it": r.name,
             "outcome": "pass" if r.passed else "error" if r.errored else "fail",
             "message": r.message,
             "file": r.span.source.name if r.span else None,
             "line": r.span.line if r.span else None} for r in results]
    passed = sum(r.passed for r in results)
    return json.dumps({"passed": passed, "failed": len(results) - passed, "tests": rows},
                      indent=2) + "\n"
