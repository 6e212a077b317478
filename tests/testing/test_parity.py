"""Rules the reference's own suites rely on (issue 18): a test call's path is the rest of
its line, and a mocked step never evaluates its inline arguments."""

from __future__ import annotations

import asyncio

from webpipe.program import program_from_text
from webpipe.testing.runner import CaseResult, run_tests

APP = '''
GET /hello/:name
  |> jq: `{ name: .params.name, q: .query.q }`

pipeline load =
  |> pg([(.params.id | tonumber)]): `SELECT $1::int AS id`
  |> jq: `{ got: .rows[0].id }`
'''


def run(tests: str) -> list[CaseResult]:
    return asyncio.run(run_tests(program_from_text(APP + tests)))


def test_call_path_keeps_spaces_inside_interpolations() -> None:
    [result] = run('''
describe "d"
  let first = "John"
  let last = "Doe"
  it "t"
    when calling GET /hello/{{first}} {{last}}?q=1   # a comment
    then status is 200
    and output `.name` equals "John Doe"
    and output `.q` equals 1
''')
    assert result.passed, result.message


def test_call_path_with_a_wrong_value_fails() -> None:
    [result] = run('''
describe "d"
  it "t"
    when calling GET /hello/John Doe
    then output `.name` equals "John"
''')
    assert not result.passed


def test_mock_answers_before_inline_arguments_are_evaluated() -> None:
    [result] = run('''
describe "d"
  with mock pg returning `{ "rows": [{ "id": 42 }] }`
  it "t"
    when executing pipeline load
    with input `{ "params": { "id": "not a number" } }`
    then output `.got` equals 42
''')
    assert result.passed, result.message
