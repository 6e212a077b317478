"""GraphQL schema, resolvers, the `graphql` step and the automatic endpoint (spec/graphql.md),
run for real: graphql-core executes, resolver pipelines run jq through the executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.graphql.support import LIBRARY, call, gql, library, runtime_of
from webpipe.errors import HardError, LoadError
from webpipe.executor.context import RequestContext
from webpipe.graphql import graphql_endpoint_path, handle_graphql_request, load_graphql
from webpipe.graphql.schema import build_graphql
from webpipe.program import load_program, program_from_text
from webpipe.testing.mocks import MockInvoker, MockSet
from webpipe.testing.runner import run_tests

# ---- schema build (§1-§2) ------------------------------------------------------------


def test_schema_is_built_once_and_cached() -> None:
    env = library()
    runtime = runtime_of(env)
    assert env.resources["graphql"] is runtime
    assert build_graphql(env) is runtime
    assert {"Author", "Book", "Query", "Mutation", "JSON"} <= set(runtime.schema.type_map)


def test_no_schema_gives_none_and_warns_about_resolvers() -> None:
    env = program_from_text("query x =\n  |> jq: `1`\n")
    assert build_graphql(env) is None
    assert any(d.code == "graphql-no-schema" and d.severity == "warning"
               for d in env.diagnostics)


def test_unknown_type_is_a_load_error_pointing_into_the_sdl() -> None:
    text = "graphqlSchema = `\n  type Query {\n    a: Bar\n  }\n`\n"
    with pytest.raises(LoadError) as caught:
        build_graphql(program_from_text(text))
    error = caught.value
    assert error.message == "GraphQL initialization failed: Unknown type 'Bar'."
    assert error.span is not None
    assert (error.span.line, error.span.column) == (3, 8)
    assert "a: Bar" in str(error)


def test_sdl_syntax_error_and_missing_query_root() -> None:
    with pytest.raises(LoadError) as caught:
        build_graphql(program_from_text("graphqlSchema = `type Query {`\n"))
    assert caught.value.message.startswith("GraphQL initialization failed: Syntax Error")
    assert caught.value.span is not None and caught.value.span.line == 1
    with pytest.raises(LoadError, match="Query root type must be provided"):
        build_graphql(program_from_text("graphqlSchema = `type Foo { a: Int }`\n"))


def test_a_graphql_step_makes_schema_errors_load_errors() -> None:
    text = "graphqlSchema = `type Query { a: Nope }`\nGET /\n  |> graphql: `{ a }`\n"
    with pytest.raises(LoadError, match="Unknown type"):
        program_from_text(text)


def test_later_schema_in_a_file_wins_and_modules_concatenate(tmp_path: Path) -> None:
    (tmp_path / "lib.wp").write_text(
        "graphqlSchema = `type Query { old: Int } type Extra { e: Int }`\n"
        "query old =\n  |> jq: `1`\n")
    (tmp_path / "main.wp").write_text(
        'import "./lib.wp" as lib\n'
        "graphqlSchema = `type Query { ignored: Int }`\n"
        "graphqlSchema = `type Query { fresh: Extra }`\n"
        "query fresh =\n  |> jq: `{ e: 5 }`\n")
    env = load_program(tmp_path / "main.wp")
    runtime = runtime_of(env)
    assert set(runtime.schema.query_type.fields) == {"fresh"}  # type: ignore[union-attr]
    assert any(d.code == "graphql-duplicate-type" and d.span and "lib.wp" in d.span.source.name
               for d in env.diagnostics)
    assert any(d.code == "graphql-unmatched" for d in env.diagnostics)  # `query old`


async def test_extend_type_and_declared_json_scalar() -> None:
    env = program_from_text(
        "graphqlSchema = `scalar JSON type Query { a: Int } extend type Query { b: JSON }`\n"
        "query b =\n  |> jq: `{ any: [1, 2] }`\n")
    assert await gql(env, "{ a b }") == {"data": {"a": None, "b": {"any": [1, 2]}}}


def test_resolver_warnings() -> None:
    env = library("query authors =\n  |> jq: `[]`\n"
                  "query shelfSize =\n  |> loader(.x): BooksByAuthor\n")
    runtime_of(env)
    codes = [d.code for d in env.diagnostics if d.severity == "warning"]
    assert "graphql-duplicate" in codes and "graphql-root-loader" in codes


# ---- resolvers (§3-§4) -----------------------------------------------------------------


async def test_query_mutation_and_type_resolvers() -> None:
    env = library()
    assert await gql(env, '{ author(id: "3") { id name } shelfSize }') == {
        "data": {"author": {"id": "3", "name": "Ursula"}, "shelfSize": 42}}
    mutation = 'mutation { renameAuthor(id: "3", name: "Le Guin") { id name } }'
    assert await gql(env, mutation) == {
        "data": {"renameAuthor": {"id": "3", "name": "Le Guin"}}}


async def test_resolver_input_shape_and_raw_argument_types() -> None:
    env = library()
    out = await gql(env, '{ echo(id: 42, n: 5, tags: ["x"], parent: "p") }')
    echo = out["data"]["echo"]
    assert echo == {"parent": "p", "id": 42, "n": 5, "tags": ["x"], "limit": 10,
                    "args": {"id": 42, "n": 5, "tags": ["x"], "limit": 10, "parent": "p"}}
    assert list(echo)[:1] == ["parent"]
    out = await gql(env, "query($id: ID, $n: Int = 3) { echo(id: $id, n: $n) }", {"id": 7})
    assert out["data"]["echo"]["args"] == {"id": 7, "n": 3, "limit": 10}


async def test_resolvers_see_the_state_and_the_request_context() -> None:
    env = library()
    ctx = RequestContext(request={"path": "/somewhere"})
    out = await gql(env, "{ seen }", state={"user": {"id": 1}}, ctx=ctx)
    assert out["data"]["seen"] == {"state": {"user": {"id": 1}}, "path": "/somewhere"}


async def test_default_resolution_and_root_fields_without_resolver() -> None:
    env = library()
    assert await gql(env, "{ unresolved weird { a } }") == {
        "data": {"unresolved": None, "weird": {"a": None}}}


async def test_output_values_pass_through_unless_strict() -> None:
    env = library()
    assert await gql(env, "{ loose looseId }") == {"data": {"loose": 7, "looseId": 7}}
    strict = library('config graphql {\n  strictScalars: true\n}\n')
    assert await gql(strict, "{ loose looseId }") == {"data": {"loose": "7", "looseId": "7"}}


async def test_errors_array_and_hard_errors_become_field_errors() -> None:
    env = library()
    out = await gql(env, '{ author(id: "0") { name } broken }')
    assert out["data"] == {"author": None, "broken": None}
    assert out["errors"][0] == {"message": "no such author",
                                "locations": [{"line": 1, "column": 3}], "path": ["author"]}
    assert out["errors"][1]["path"] == ["broken"]
    assert "nosuchstep" in out["errors"][1]["message"]
    assert all("type" not in e and "extensions" not in e for e in out["errors"])


async def test_validation_and_variable_errors_have_null_data() -> None:
    env = library()
    bad = await gql(env, "{ nope }")
    assert bad["data"] is None and "nope" in bad["errors"][0]["message"]
    missing = await gql(env, "query($id: ID!) { author(id: $id) { name } }")
    assert missing["data"] is None and "$id" in missing["errors"][0]["message"]
    syntax = await gql(env, "{ author(")
    assert syntax["data"] is None and syntax["errors"][0]["message"].startswith("Syntax Error")


async def test_introspection_and_typename() -> None:
    out = await gql(library(), "{ __schema { queryType { name } } authors { __typename } }")
    assert out["data"]["__schema"] == {"queryType": {"name": "Query"}}
    assert out["data"]["authors"][0] == {"__typename": "Author"}


# ---- the `graphql` step (§6) ----------------------------------------------------------


async def test_step_with_inline_variables_and_graphql_params() -> None:
    env = library()
    out = await call(env, "GET", "/a/:id", {"id": "5"})
    assert out.state == {"data": {"author": {"name": "Ursula"}}}
    named = await call(env, "GET", "/b/:id", {"id": "5"})
    # auto-named target `authorName` differs from the field, so the whole response is wrapped
    assert named.state["data"] == {"authorName": {"data": {"author": {"name": "Ursula"}}}}
    assert "resultName" not in named.state


async def test_step_reads_query_and_variables_from_state() -> None:
    env = library()
    body = {"q": "query($id: ID!) { author(id: $id) { id } }", "vars": {"id": 9}}
    assert (await call(env, "POST", "/c", body=body)).state == {
        "data": {"author": {"id": 9}}}


async def test_smart_unwrap_with_target() -> None:
    out = await call(library(), "GET", "/dash")
    assert out.state == {"size": 42, "writer": "Ursula"}


async def test_transform_restores_request_keys_when_not_last() -> None:
    out = await call(library(), "GET", "/keep", {"id": 1})
    assert out.state == {"size": 42, "params": {"id": 1}}


async def test_graphql_errors_do_not_branch_unless_typed() -> None:
    env = library()
    plain = await call(env, "GET", "/branch/:id", {"id": "0"})
    assert plain.state["branch"] == "ok" and plain.state["errors"][0]["message"] == \
        "no such author"
    typed = await call(env, "GET", "/typed/:id", {"id": "0"})
    assert (typed.status, typed.state) == (502, {"problem": "no such author"})


async def test_inline_variables_must_be_an_object() -> None:
    env = library()
    assert (await call(env, "GET", "/bad-vars", {"id": 1})).state == {
        "data": {"shelfSize": 42}}  # `.params` is an object: a valid variables map
    [error] = (await call(env, "GET", "/bad-vars-2")).state["errors"]
    assert error["type"] == "graphqlError" and error["step"] == "graphql"
    assert error["message"] == "GraphQL variables must be an object, got number"


async def test_bad_document_warns_at_load_and_answers_with_errors() -> None:
    env = library()
    assert any(d.code == "graphql-document" for d in env.diagnostics)
    out = await call(env, "GET", "/bad-doc")
    assert out.state["data"] is None and "nope" in out.state["errors"][0]["message"]


async def test_async_graphql_step_honours_its_result_tag() -> None:
    out = await call(library(), "GET", "/later")  # as a synchronous step: `.data.<name>`
    assert out.state["t"]["data"] == {"shelfSize": 42}
    assert out.state["t"]["path"] == "/later"  # the snapshot it was spawned on


async def test_missing_schema_and_missing_query_are_hard_errors() -> None:
    env = program_from_text("GET /x\n  |> graphql: `{ a }`\n")
    with pytest.raises(HardError, match="No GraphQL schema defined in program"):
        await call(env, "GET", "/x")
    with pytest.raises(HardError, match="requires either a config string or 'query'"):
        await call(library(), "POST", "/c", body={})


# ---- mocks and call recording (§10, testing.md §5.3, §6.4) ------------------------------


async def test_resolver_mocks_and_call_log() -> None:
    env = library()
    mocks = MockSet(named={("query", "author"): {"id": "m", "name": "Mocked"},
                           ("Query", "shelfSize"): {"errors": [{"message": "mocked failure"}]}})
    ctx = RequestContext(call_log={}, invoker=MockInvoker(mocks))
    out = await gql(env, '{ author(id: 3) { name } shelfSize }', state={"s": 1}, ctx=ctx)
    assert out["data"] == {"author": {"name": "Mocked"}, "shelfSize": None}
    assert out["errors"][0]["message"] == "mocked failure"
    assert ctx.call_log == {
        "Query.author": [{"parent": None, "context": {"s": 1}, "id": 3, "args": {"id": 3}}],
        "Query.shelfSize": [{"parent": None, "context": {"s": 1}, "args": {}}]}


async def test_type_resolver_mock_applies_to_loader_resolvers() -> None:
    env = library()
    ctx = RequestContext(call_log={}, invoker=MockInvoker(MockSet(named={
        ("Author", "books"): [{"id": "z", "title": "Mocked"}]})))
    out = await gql(env, "{ authors { books { title } } }", ctx=ctx)
    assert out["data"]["authors"][0] == {"books": [{"title": "Mocked"}]}
    assert len(ctx.call_log["Author.books"]) == 3  # type: ignore[index]
    assert "pipeline.BooksByAuthor" not in ctx.call_log  # type: ignore[operator]


def test_dsl_suite_mocks_and_call_assertions() -> None:
    import asyncio

    suite = '''
describe "author page"
  with mock query author returning `{ id: "3", name: "Mocked" }`

  it "uses the mock and records the call"
    when calling GET /a/3
    then output `.data.author.name` equals "Mocked"
    and call query author with `{ id: 3 }`

  it "runs the real resolver"
    when calling GET /dash
    then output `.size` equals 42
    and call query shelfSize with `{ args: {} }`
'''
    results = asyncio.run(run_tests(program_from_text(LIBRARY + suite)))
    assert [(r.passed, r.message) for r in results] == [(True, None), (True, None)]


# ---- automatic endpoint (§7) ----------------------------------------------------------

ENDPOINT = 'config graphql {\n  endpoint: "/gql"\n}\n'


async def test_endpoint_path_rules() -> None:
    assert graphql_endpoint_path(library(ENDPOINT)) == "/gql"
    assert graphql_endpoint_path(library()) is None
    shadowed = library(ENDPOINT + "POST /gql\n  |> jq: `{ mine: true }`\n")
    assert graphql_endpoint_path(shadowed) is None
    get_only = library(ENDPOINT + "GET /gql\n  |> jq: `{ mine: true }`\n")
    assert graphql_endpoint_path(get_only) == "/gql"
    no_schema = program_from_text(ENDPOINT)
    assert graphql_endpoint_path(no_schema) is None
    assert [d.code for d in no_schema.diagnostics] == ["graphql-endpoint"]


async def test_endpoint_answers_posted_queries() -> None:
    env = library(ENDPOINT)
    request = {"method": "POST", "path": "/gql", "query": {"page": "1"},
               "headers": {"x-user": "u1"}, "body": None}
    ctx = RequestContext(request=request)
    body = {"query": "query($id: ID!) { author(id: $id) { id } seen }", "variables": {"id": 1}}
    status, value = await handle_graphql_request(env, body, ctx)
    assert status == 200 and value["data"]["author"] == {"id": 1}
    seen = value["data"]["seen"]["state"]
    assert seen["headers"] == {"x-user": "u1"} and seen["query"] == body["query"]
    assert seen["variables"] == {"id": 1}


async def test_endpoint_error_cases_and_pipeline_mock() -> None:
    env = library(ENDPOINT)
    status, value = await handle_graphql_request(env, "not an object", RequestContext())
    assert status == 200 and value["errors"][0]["type"] == "jqError"
    status, value = await handle_graphql_request(env, {"query": "{ nope }"}, RequestContext())
    assert status == 200 and value["data"] is None
    with pytest.raises(HardError, match="'query' in state"):
        await handle_graphql_request(env, {"variables": {}}, RequestContext())
    mocked = RequestContext(invoker=MockInvoker(MockSet(pipelines={"graphql": {"m": 1}})))
    assert await handle_graphql_request(env, {"query": "{ shelfSize }"}, mocked) == (
        200, {"m": 1})
    ctx = RequestContext(invoker=MockInvoker(MockSet(middleware={"graphql": {"mw": 1}})))
    assert await handle_graphql_request(env, {"query": "{ shelfSize }"}, ctx) == (
        200, {"mw": 1})


def test_load_graphql_builds_only_when_graphql_is_declared() -> None:
    plain = program_from_text("GET /\n  |> jq: `1`\n")
    load_graphql(plain)
    assert "graphql" not in plain.resources
    env = program_from_text("graphqlSchema = `type Query { a: Int }`\n")
    load_graphql(env)
    assert env.resources["graphql"] is not None
    with pytest.raises(LoadError, match="Unknown type"):
        load_graphql(program_from_text("graphqlSchema = `type Query { a: B }`\n"))
