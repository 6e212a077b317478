"""The pytest plugin as users run it (`pytester`, each run in its own process): `pytest
app.wp` without config, failures that show the assertion's line and both values without
`-v`, and node ids that rerun one test when pasted back."""

from __future__ import annotations

import re

import pytest

pytest_plugins = ["pytester"]

APP = '''GET /hi/:who
  |> jq: `{ hi: .params.who, n: 3 }`

describe "GET /hi/:who (greetings)"
  it "says hi, politely"
    when calling GET /hi/ann
    then status is 200
    and output `.hi` equals "bob"

  it "counts"
    when calling GET /hi/ann
    then output `.n` equals 3

describe "other"
  it "fails too"
    when calling GET /hi/x
    then output `.n` equals 4
'''


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".wp", app=APP)
    return pytester


def test_a_wp_file_named_on_the_command_line_runs_without_config(app: pytest.Pytester) -> None:
    result = app.runpytest_subprocess("app.wp")
    result.assert_outcomes(passed=1, failed=2)


def test_a_folder_walk_still_needs_webpipe_files(app: pytest.Pytester) -> None:
    assert app.runpytest_subprocess().ret == pytest.ExitCode.NO_TESTS_COLLECTED
    app.makeini("[pytest]\nwebpipe_files = *.wp\n")
    app.runpytest_subprocess().assert_outcomes(passed=1, failed=2)


def test_a_failure_shows_the_assertion_line_and_both_values(app: pytest.Pytester) -> None:
    result = app.runpytest_subprocess("app.wp")  # no -v
    result.stdout.fnmatch_lines([
        "app.wp:8: output mismatch",
        '    and output `.hi` equals "bob"',
        '    expected: "bob"',
        '    actual:   "ann"',
    ])
    result.stdout.fnmatch_lines(["app.wp:17: output mismatch", "    expected: 4",
                                 "    actual:   3"])
    result.stdout.fnmatch_lines(["FAILED app.wp::*says_hi* - app.wp:8: output*"])


def test_a_printed_node_id_pasted_back_reruns_that_test(app: pytest.Pytester) -> None:
    first = app.runpytest_subprocess("app.wp")
    failed = re.findall(r"^FAILED (\S+) - ", first.stdout.str(), re.MULTILINE)
    assert failed == ["app.wp::GET_hi_who_greetings::says_hi_politely",
                      "app.wp::other::fails_too"]
    again = app.runpytest_subprocess(failed[0], "-v")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines([f"{failed[0]} FAILED*"])
    # the describe's id reruns its tests only
    app.runpytest_subprocess("app.wp::GET_hi_who_greetings").assert_outcomes(passed=1, failed=1)


def test_tests_with_one_name_get_two_node_ids(pytester: pytest.Pytester) -> None:
    pytester.makefile(".wp", app='GET /a\n  |> jq: `{}`\n\ndescribe "d"\n'
                      '  it "t"\n    when calling GET /a\n    then status is 200\n'
                      '  it "t"\n    when calling GET /a\n    then status is 201\n')
    result = pytester.runpytest_subprocess("app.wp::d::t_2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["app.wp:10: expected status 201 got 200"])
