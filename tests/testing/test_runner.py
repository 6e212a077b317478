"""The runner itself: failing assertions fail with the reference's messages, errors error,
and the report has the reference's shape. (The .wp corpus in tests/wp relies on this.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from webpipe.program import program_from_text
from webpipe.testing.report import text_report
from webpipe.testing.runner import CaseResult, run_tests

APP = '''
GET /a
  |> jq: `{ name: "x", n: 1, tags: ["t"] }`

pipeline p =
  |> jq: `{ got: .in }`
'''


def run(tests: str, verbose: bool = False) -> list[CaseResult]:
    env = program_from_text(APP + tests)
    return asyncio.run(run_tests(env, verbose=verbose))


def message(tests: str) -> str | None:
    [result] = run(tests)
    assert not result.passed
    return result.message


def case(body: str) -> str:
    return f'describe "d"\n  it "t"\n{body}'


def test_status_mismatch() -> None:
    assert message(case("    when calling GET /a\n    then status is 201\n")) == \
        "expected status 201 got 200"


def test_status_range_mismatch() -> None:
    assert message(case("    when calling GET /a\n    then status in 400..499\n")) == \
        "expected status in 400..499 got 200"


def test_output_mismatch_and_fragment_and_regex() -> None:
    text = case("    when calling GET /a\n    then output `.name` equals \"y\"\n"
                "    and output contains `{ \"tags\": [\"zz\"] }`\n"
                "    and output `.name` matches `^q`\n")
    assert message(text) == ("output mismatch; output missing expected fragment; "
                             "output does not match regex")


def test_verbose_equals_shows_expected_and_actual() -> None:
    [result] = run(case("    when calling GET /a\n    then output `.n` equals 2\n"), True)
    assert result.message == "output mismatch\nExpected: 2\nActual: 1"


def test_booleans_never_equal_numbers() -> None:
    assert message(case("    when calling GET /a\n    then output `.n` equals true\n")) == \
        "output mismatch"


def test_route_not_found() -> None:
    assert message(case("    when calling GET /nope\n")) == "Route not found: GET /nope"


def test_content_type_mismatch() -> None:
    assert message(case("    when calling GET /a\n    then contentType is \"text/html\"\n")) \
        == "expected contentType text/html got application/json"


def test_unsupported_condition() -> None:
    assert message(case("    when calling GET /a\n    then body equals 1\n")) == \
        "unsupported condition: body equals 1"


def test_missing_pipeline_errors() -> None:
    [result] = run(case("    when executing pipeline nope\n"))
    assert result.errored and result.message is not None
    assert result.message.startswith("test errored at app.wp:")
    assert result.message.endswith("Pipeline not found: nope")


def test_bad_jq_input_errors() -> None:
    [result] = run(case("    when executing pipeline p\n    with input `{ in: .. | }`\n"))
    assert result.errored
    assert "JQ error in test input" in (result.message or "")


def test_call_assertions() -> None:
    tests = '''
GET /c
  |> jq: `{ in: 5 }`
  |> p

describe "spy"
  it "records pipeline calls"
    when calling GET /c
    then call pipeline p with `{ in: 5 }`
  it "reports a missing call"
    when calling GET /a
    then call pipeline p with `{}`
  it "reports a non-matching call"
    when calling GET /c
    then call pipeline p with `{ in: 6 }`
'''
    ok, never, wrong = run(tests)
    assert ok.passed
    assert never.message == "pipeline p was never called"
    assert wrong.message == ("Expected pipeline p to be called with {\"in\":6}, "
                             "but no matching call found")


def test_report_format() -> None:
    results = [CaseResult("d", "a", True), CaseResult("d", "b", False, "boom")]
    assert text_report(results) == ("Test Results: 1/2 passed (1 failed)\n"
                                    "[PASS] d :: a\n[FAIL] d :: b -> boom\n")


def test_cli_exit_status(tmp_path: Path) -> None:
    good = tmp_path / "good.wp"
    good.write_text(APP + case("    when calling GET /a\n    then status is 200\n"))
    bad = tmp_path / "bad.wp"
    bad.write_text(APP + case("    when calling GET /a\n    then status is 500\n"))
    for file, code in ((good, 0), (bad, 1)):
        done = subprocess.run([sys.executable, "-m", "webpipe", "test", str(file)],
                              capture_output=True, text=True, check=False)
        assert done.returncode == code, done.stderr
        assert done.stdout.startswith("Test Results: ")
    legacy = subprocess.run([sys.executable, "-m", "webpipe", str(bad), "--test"],
                            capture_output=True, text=True, check=False)
    assert legacy.returncode == 1
    assert "[FAIL] d :: t -> expected status 500 got 200" in legacy.stdout


def test_jq_in_tests_is_bounded() -> None:
    """A test's own jq (an input clause, an assertion path) stops at the jq budget instead
    of hanging the test run: the test errors or fails with the budget's message."""
    [result] = run(case("    when executing pipeline p\n    with input `def f: f; f`\n"))
    assert result.errored
    assert "exceeded its 1000 ms time budget" in (result.message or "")
    [result] = run(case("    when calling GET /a\n    then output `until(false; .)` equals 1\n"))
    assert not result.passed
    assert "jq program exceeded its 1000 ms time budget" in (result.message or "")
    [result] = run(case("    when calling GET /a\n    then output `[range(1e10)] | length` "
                        "equals 1\n"))
    assert not result.passed
    assert "exceeded its 1000 ms time budget" in (result.message or "")


def test_a_failure_keeps_its_assertion_span_and_values() -> None:
    [result] = run(case("    when calling GET /a\n    then status is 200\n"
                        "    and output `.n` equals 2\n"))
    [failure] = result.failures
    assert (failure.message, failure.values) == ("output mismatch", (2, 1))
    assert failure.span is not None and failure.span.line == APP.count("\n") + 5


def test_a_failed_call_assertion_shows_the_calls_made() -> None:
    env = program_from_text('pipeline p =\n  |> jq: `{ got: .in }`\n\nGET /b\n'
                            '  |> jq: `{ in: 1 }`\n  |> pipeline: p\n\n'
                            + case("    when calling GET /b\n"
                                   "    then call pipeline p with `{ in: 2 }`\n"))
    [result] = asyncio.run(run_tests(env))
    [failure] = result.failures
    assert failure.values is not None
    expected, [call] = failure.values
    assert (expected, call["in"], call["path"]) == ({"in": 2}, 1, "/b")
    lines = text_report([result]).splitlines()
    assert lines[2:5] == ["  app.wp:11: then call pipeline p with `{ in: 2 }`",
                          '    expected: {"in": 2}', "    actual:   ["]


def test_route_not_found_points_at_the_when_line() -> None:
    [result] = run(case("    when calling GET /nope\n    then status is 404\n"))
    assert result.message == "Route not found: GET /nope"
    assert result.failures[0].span is not None
    assert result.failures[0].span.source.line_text(result.failures[0].span.line).strip() == \
        "when calling GET /nope"
