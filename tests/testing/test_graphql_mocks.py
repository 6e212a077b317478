"""GraphQL mocks in tests (issue 18 outcome 2): mutation mocks, call assertions on the
arguments resolvers received through variables, describe-level mocks and lets applying to
every `it` with `it`-level ones overriding, and the `ID` leniency of the reference."""

from __future__ import annotations

import asyncio

from webpipe.program import program_from_text
from webpipe.testing.runner import CaseResult, run_tests

APP = '''
graphqlSchema = `
  type User { id: Int! name: String! }
  type Query { user(id: Int!): User users(limit: Int): [User!]! }
  type Mutation { createUser(name: String!): User! }
`
query user =
  |> jq: `{ id: .id, name: "real" }`
query users =
  |> jq: `[{ id: 1, name: "real" }]`
mutation createUser =
  |> jq: `{ id: 1, name: .name }`

GET /one
  |> jq: `.graphqlParams = { id: 42 }`
  |> graphql: `query ($id: ID!) { user(id: $id) { id name } }`

GET /many/:limit
  |> jq: `{ variables: { limit: (.params.limit | tonumber) } }`
  |> graphql: `query ($limit: Int) { users(limit: $limit) { name } }`

graphql bad = `query ($id: String!) { user(id: $id) { id } }`

GET /create
  |> graphql: `mutation { createUser(name: "Ann") { id name } }`
'''


def run(tests: str) -> list[CaseResult]:
    return asyncio.run(run_tests(program_from_text(APP + tests)))


def passed(tests: str) -> list[bool]:
    return [r.passed for r in run(tests)]


def test_mutation_mock_replaces_the_resolver() -> None:
    assert passed('''
describe "d"
  it "t"
    with mock mutation createUser returning `{ "id": 99, "name": "Mocked" }`
    when calling GET /create
    then output `.data.createUser.id` equals 99
    and call mutation createUser with `{ "name": "Ann" }`
''') == [True]


def test_call_assertions_see_arguments_passed_as_variables() -> None:
    results = passed('''
describe "d"
  with mock query user returning `{ "id": 42, "name": "V" }`
  it "right"
    when calling GET /one
    then output `.data.user.name` equals "V"
    and call query user with `{ "id": 42 }`
  it "wrong"
    when calling GET /one
    then call query user with `{ "id": 7 }`
  it "variables key"
    when calling GET /many/3
    then call query users with `{ "limit": 3 }`
''')
    assert results == [True, False, True]


def test_describe_level_mocks_and_lets_with_it_overrides() -> None:
    results = passed('''
describe "d"
  let want = "from describe"
  with mock query users returning `[{ "id": 1, "name": .want }]`
  it "describe level"
    when calling GET /many/1
    then output `.data.users[0].name` equals "from describe"
  it "it-level let overrides the describe's"
    let want = "from it"
    when calling GET /many/1
    then output `.data.users[0].name` equals "from it"
  it "it-level mock overrides the describe's"
    with mock query users returning `[{ "id": 2, "name": "it mock" }]`
    when calling GET /many/1
    then output `.data.users[0].name` equals "it mock"
    and call query users with `{ "limit": 1 }`
''')
    assert results == [True, True, True]


def test_with_mock_after_an_it_belongs_to_the_describe() -> None:
    results = passed('''
describe "d"
  it "earlier it sees the later describe-level mock"
    when calling GET /create
    then output `.data.createUser.name` equals "late"

  with mock mutation createUser returning `{ "id": 5, "name": "late" }`

  it "later it too"
    when calling GET /create
    then output `.data.createUser.id` equals 5
''')
    assert results == [True, True]


def test_id_variable_stands_for_int_but_other_mismatches_are_errors() -> None:
    [ok, bad] = run('''
describe "d"
  it "ID for Int"
    when calling GET /one
    then output `.data.user.id` equals 42
  it "String for Int is still rejected"
    when executing variable graphql bad
    then output `[.. | objects | .message? | strings] | join(" ")` contains "expecting type 'Int!'"
''')
    assert ok.passed, ok.message
    assert bad.passed, bad.message
