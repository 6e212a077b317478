"""Remote GraphQL through gql (issue 18 outcome 3) against a real GraphQL server on
127.0.0.1: graphql-core behind aiohttp, started per test. Covers variables from the state
and from a second argument, headers from config, the `graphqlError` envelope with the
server's `errors`, `httpError`/`networkError`/`timeout` envelopes, `@retry`, `@async`,
`with mock`, and load-time validation against a schema snapshot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from graphql import build_schema, graphql

from tests.middleware.pg_server import free_port
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app
from webpipe.testing.runner import CaseResult, run_tests

SDL = """
type User { login: String! name: String }
type Query { user(login: String!): User  auth: String  fail: String }
"""
SCHEMA = build_schema(SDL)


class Server:
    def __init__(self) -> None:
        self.calls = 0
        self.flaky = 0  # answer 503 this many times first
        self.retry_after: str | None = None  # the 503s' Retry-After

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.flaky > 0:
            self.flaky -= 1
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return web.Response(status=503, text="busy", headers=headers)
        body = await request.json()
        if "slow" in (body.get("query") or ""):
            await asyncio.sleep(5)
        if "shared" in (body.get("query") or ""):
            await asyncio.sleep(0.3)
        root = {"user": lambda _info, login: {"login": login, "name": login.upper()},
                "auth": lambda _info: request.headers.get("Authorization"),
                "fail": _fail}
        result = await graphql(SCHEMA, body["query"], root_value=_Root(root),
                               variable_values=body.get("variables"))
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        return web.json_response(out)


def _fail(_info: Any) -> str:
    raise ValueError("upstream says no")


class _Root:
    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __getattr__(self, name: str) -> Any:
        return self.fields[name]


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    state = Server()
    app = web.Application()
    app.router.add_post("/graphql", state.handle)
    app.router.add_post("/broken", _broken)
    app.router.add_post("/big", _big)
    app.router.add_post("/deep", _deep)
    app.router.add_post("/limited", _limited)
    app.router.add_post("/invalid", _invalid)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _broken(_request: web.Request) -> web.Response:
    return web.Response(status=500, text="boom")


async def _big(_request: web.Request) -> web.Response:
    return web.json_response({"data": {"auth": "x" * 50_000}})


async def _deep(_request: web.Request) -> web.Response:
    return web.Response(text='{"data": {"auth": ' + "[" * 600 + "]" * 600 + "}}",
                        content_type="application/json")


async def _limited(_request: web.Request) -> web.Response:
    return web.Response(status=429, text="slow down", headers={"Retry-After": "7"})


async def _invalid(_request: web.Request) -> web.Response:
    return web.json_response({"errors": [{"message": "Syntax Error: bad"}]}, status=400)


def app(base: str, routes: str, schema: str = "") -> str:
    extra = "".join(f'''
config graphql_{name} {{
  url: "{base}/{name}"
}}
''' for name in ("big", "deep", "limited", "invalid"))
    return extra + f'''
config graphql_gh {{
  url: "{base}/graphql"
  headerAuthorization: "Bearer t0k"
  {schema}
}}

config graphql_down {{
  url: "{base}/broken"
}}

config graphql_gone {{
  url: "http://127.0.0.1:9/graphql"
}}
{routes}'''


async def run(text: str) -> list[CaseResult]:
    env = program_from_text(text)
    try:
        return await run_tests(env)
    finally:
        await env.aclose()


async def check(text: str) -> None:
    results = await run(text)
    assert results
    failed = [(r.name, r.message, r.outcome) for r in results if not r.passed]
    assert not failed, failed


async def test_queries_with_variables_and_config_headers(server: tuple[Server, str]) -> None:
    _, base = server
    await check(app(base, '''
GET /user/:login
  |> jq: `{ variables: { login: .params.login } }`
  |> graphql(gh): `query ($login: String!) { user(login: $login) { login name } }`

GET /arg/:login
  |> graphql(gh, { login: .params.login }): `query ($login: String!) {
    user(login: $login) { name } }`

GET /auth
  |> graphql(gh): `{ auth }`

describe "remote"
  it "variables from the state"
    when calling GET /user/ann
    then output `.data.user` equals `{ "login": "ann", "name": "ANN" }`
  it "variables from the argument"
    when calling GET /arg/bob
    then output `.data.user.name` equals "BOB"
  it "headers from config"
    when calling GET /auth
    then output `.data.auth` equals "Bearer t0k"
'''))


async def test_failures_are_fetch_envelopes_and_graphql_errors(
        server: tuple[Server, str]) -> None:
    _, base = server
    await check(app(base, '''
GET /fail
  |> graphql(gh): `{ fail auth }`

GET /down
  |> graphql(down): `{ auth }`

GET /gone
  |> graphql(gone): `{ auth }`

GET /slow
  |> graphql(gh): `{ slow: auth }` @timeout(300)

describe "failures"
  it "graphqlError carries the server's errors"
    when calling GET /fail
    then output `.errors[0].type` equals "graphqlError"
    and output `.errors[0].message` equals "upstream says no"
    and output `.errors[0].errors[0].path` equals `["fail"]`
    and output `.errors[0].data.auth` equals "Bearer t0k"
  it "httpError with the status"
    when calling GET /down
    then output `.errors[0].type` equals "httpError"
    and output `.errors[0].status` equals 500
  it "networkError"
    when calling GET /gone
    then output `.errors[0].type` equals "networkError"
  it "timeout"
    when calling GET /slow
    then output `.errors[0].type` equals "timeoutError"
'''))


async def test_retry_async_and_mock(server: tuple[Server, str]) -> None:
    state, base = server
    state.flaky = 2
    await check(app(base, '''
GET /retry
  |> graphql(gh): `{ auth }` @retry(3)

GET /async
  |> graphql(gh): `{ user(login: "x") { name } }` @async(u)
  |> join: u
  |> jq: `{ name: .async.u.data.user.name }`

GET /mocked
  |> graphql(gh): `{ auth }`

describe "tags"
  it "retry"
    when calling GET /retry
    then output `.data.auth` equals "Bearer t0k"
  it "async"
    when calling GET /async
    then output `.name` equals "X"
  it "mock"
    with mock graphql returning `{ "data": { "auth": "mocked" } }`
    when calling GET /mocked
    then output `.data.auth` equals "mocked"
'''))
    assert state.calls == 3 + 1  # two 503s, the retry's success, the async query


async def test_answers_are_bounded_as_fetch_bounds_them(server: tuple[Server, str]) -> None:
    _, base = server
    await check(app(base, '''
config limits {
  fetchMaxBytes: 10000
  maxJsonDepth: 100
}

GET /big
  |> graphql(big): `{ auth }`

GET /deep
  |> graphql(deep): `{ auth }`

GET /small
  |> graphql(gh): `{ auth }`

describe "bounds"
  it "a body past fetchMaxBytes"
    when calling GET /big
    then output `.errors[0].type` equals "responseTooLarge"
    and output `.errors[0].message | test("exceeds 10000 bytes")` equals true
  it "a body nested past maxJsonDepth"
    when calling GET /deep
    then output `.errors[0].type` equals "limitError"
    and output `.errors[0].message | test("maxJsonDepth")` equals true
  it "within the bounds"
    when calling GET /small
    then output `.data.auth` equals "Bearer t0k"
'''))


async def test_http_failures_keep_status_and_retry_after(server: tuple[Server, str]) -> None:
    _, base = server
    await check(app(base, '''
GET /limited
  |> graphql(limited): `{ auth }`

GET /invalid
  |> graphql(invalid): `{ auth }`

describe "non-2xx answers"
  it "429 with Retry-After"
    when calling GET /limited
    then output `.errors[0].type` equals "httpError"
    and output `.errors[0].status` equals 429
    and output `.errors[0].retryAfter` equals 7
  it "400 with a GraphQL result"
    when calling GET /invalid
    then output `.errors[0].type` equals "graphqlError"
    and output `.errors[0].status` equals 400
    and output `.errors[0].message` equals "Syntax Error: bad"
'''))


async def test_retry_waits_what_retry_after_asks(server: tuple[Server, str]) -> None:
    state, base = server
    state.flaky, state.retry_after = 1, "1"
    text = app(base, '''
config async {
  retryBaseMs: 10
  retryMaxMs: 5000
}

GET /retry
  |> graphql(gh): `{ auth }` @retry(2)

describe "retry-after"
  it "waits, then succeeds"
    when calling GET /retry
    then output `.data.auth` equals "Bearer t0k"
''')
    started = time.monotonic()
    await check(text)
    assert time.monotonic() - started >= 0.95  # the backoff alone would be <= 10 ms
    assert state.calls == 2


async def test_dedup_shares_one_remote_call(server: tuple[Server, str]) -> None:
    state, base = server
    env = program_from_text(app(base, '''
GET /shared
  |> graphql(gh): `{ shared: auth }` @dedup
'''))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(build_served(env))),
                               base_url="http://t", timeout=30)
    try:
        answers = await asyncio.gather(*(client.get("/shared") for _ in range(5)))
    finally:
        await client.aclose()
        await env.aclose()
    assert [a.json() for a in answers] == [{"data": {"shared": "Bearer t0k"}}] * 5
    assert state.calls == 1


async def test_snapshot_validates_remote_operations_at_load(
        server: tuple[Server, str], tmp_path: Path) -> None:
    _, base = server
    (tmp_path / "gh.graphql").write_text(SDL)
    text = app(base, '''
GET /bad
  |> graphql(gh): `query {
    user(login: "a") { nickname }
  }`
''', schema=f'schema: "{tmp_path / "gh.graphql"}"')
    env = program_from_text(text)
    found = [d for d in env.diagnostics if d.code == "graphql-remote"]
    assert [d.message for d in found] == [
        "graphql(gh): Cannot query field 'nickname' on type 'User'. Did you mean 'name'?"]
    line = text.split("\n").index('    user(login: "a") { nickname }') + 1
    assert found[0].span is not None and (found[0].span.line, found[0].span.column) == (line, 24)
    await env.aclose()


async def test_unknown_remote_is_a_load_error() -> None:
    env = program_from_text('GET /x\n  |> graphql(nope): `{ a }`\n')
    assert any("no remote named 'nope'" in d.message for d in env.diagnostics), \
        [d.message for d in env.diagnostics]
    await env.aclose()




async def test_pull_writes_the_snapshot_check_then_uses(
        server: tuple[Server, str], tmp_path: Path) -> None:
    from webpipe.graphql.pull import pull_all

    _, base = server
    snapshot = tmp_path / "schemas" / "gh.graphql"
    env = program_from_text(app(base, "GET /x\n  |> graphql(gh): `{ auth }`\n",
                                schema=f'schema: "{snapshot}"'))
    written, failures = await pull_all(env)
    await env.aclose()
    assert (written, failures) == ([snapshot], [])
    assert "user(login: String!): User" in snapshot.read_text()
    env = program_from_text(app(base, "GET /x\n  |> graphql(gh): `{ nope }`\n",
                                schema=f'schema: "{snapshot}"'))
    assert [d.code for d in env.diagnostics if d.code == "graphql-remote"] == ["graphql-remote"]
    await env.aclose()


def test_graphql_pull_command_reports_a_failing_remote(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from webpipe.cli import cli

    wp = tmp_path / "app.wp"
    wp.write_text('config graphql_gone {\n  url: "http://127.0.0.1:9/graphql"\n'
                  '  schema: "gone.graphql"\n}\n\nGET /x\n  |> graphql(gone): `{ a }`\n')
    result = CliRunner().invoke(cli, ["graphql", "pull", str(wp)])
    assert result.exit_code == 1
    assert "graphql_gone" in result.output
    assert not (tmp_path / "gone.graphql").exists()
