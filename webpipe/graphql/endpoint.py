"""Load-time schema build and the automatic endpoint `config graphql { endpoint }` (§7).

`load_graphql(env)` builds the schema at load time, so its errors are load errors. The
server and the test runner ask `graphql_endpoint_path(env)` once per program: a path
means "answer `POST <path>` with `handle_graphql_request()`". The handler runs the
reference's synthetic route body, planned once like any other pipeline:

    |> jq: `{ query: .body.query, variables: (.body.variables // {}) }`
    |> graphql

so every detail matches the reference: the request keys reach resolvers via `.context`,
a non-object body gives a `jqError` envelope, a body without `query` is a hard error,
`graphql` middleware mocks apply, and `with mock pipeline graphql` replaces the whole
endpoint. This module does not import graphql-core (the `graphql` step does, on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webpipe.errors import Diagnostic
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.executor.compiled import Body
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env
    from webpipe.source import Span

JSON = Any
ENDPOINT_NAME = "graphql"  # the synthetic route's pipeline name, for `with mock pipeline`
ENDPOINT_JQ = "{ query: .body.query, variables: (.body.variables // {}) }"
_PATH_KEY = "graphql.endpoint_path"
_BODY_KEY = "graphql.endpoint_body"


def load_graphql(env: Env) -> None:
    """Build the GraphQL schema now when the program declares one (or has resolvers), so
    schema problems surface at load time: raises `LoadError`; warnings go to
    `env.diagnostics`. Programs without GraphQL never import graphql-core."""
    if _has(env, n.GraphqlSchema) or _has(env, n.Resolver):
        from webpipe.graphql.schema import build_graphql

        build_graphql(env)


def graphql_endpoint_path(env: Env) -> str | None:
    """The configured endpoint path when the endpoint is active, else None.

    Active when `config graphql` has a string `endpoint`, some module declares a
    `graphqlSchema`, and no user `POST` route has exactly that path. An endpoint without
    a schema adds a warning to `env.diagnostics` (once)."""
    if _PATH_KEY not in env.resources:
        env.resources[_PATH_KEY] = _endpoint_path(env)
    path: str | None = env.resources[_PATH_KEY]
    return path


def _endpoint_path(env: Env) -> str | None:
    block = env.config_block("graphql") or {}
    path = block.get("endpoint")
    if not isinstance(path, str) or not path:
        return None
    if not _has(env, n.GraphqlSchema):
        env.diagnostics.append(Diagnostic(
            f"config graphql endpoint {path!r} ignored: the program has no graphqlSchema",
            _block_span(env), "warning", "graphql-endpoint"))
        return None
    if any(route.method == "POST" and route.path == path for _m, route in env.index.routes()):
        return None
    return path


async def handle_graphql_request(env: Env, body: JSON, ctx: RequestContext,
                                 ) -> tuple[int, JSON]:
    """Answer one `POST <endpoint>`: always status 200 with the GraphQL response (or an
    error envelope). Raises `HardError` for a body without `query`; callers map it like a
    route's hard error (HTTP 500 / "test errored").

    `ctx.request` should be the request object (its keys reach resolvers as `.context`);
    `body` is the parsed JSON body and replaces `ctx.request["body"]`."""
    from webpipe.executor.pipeline import run_body

    mocked = ctx.invoker.pipeline_mock(ENDPOINT_NAME)
    if mocked is not None:
        return 200, mocked[0]
    request = ctx.request if isinstance(ctx.request, dict) else {}
    outcome = await run_body(_endpoint_body(env), {**request, "body": body}, env, ctx)
    return 200, outcome.state


def _endpoint_body(env: Env) -> Body:
    """The synthetic route body, compiled once (its steps planned) and kept in the env."""
    from webpipe.executor.compiled import Body, Call
    from webpipe.executor.env import plan_step

    found = env.resources.get(_BODY_KEY)
    if isinstance(found, Body):
        return found
    span = _block_span(env)
    steps = (n.MiddlewareStep(name="jq", config=ENDPOINT_JQ, config_kind=n.ConfigKind.BACKTICK,
                              span=span),
             n.MiddlewareStep(name="graphql", span=span))
    body = Body(n.Pipeline(steps=steps, span=span),
                tuple(Call(step, plan_step(env, env.index.main, step)) for step in steps), None)
    env.resources[_BODY_KEY] = body
    return body


def _has(env: Env, kind: type[n.Item]) -> bool:
    return any(True for _ in env.index.all_items(kind))


def _block_span(env: Env) -> Span:
    for module in env.index.config_modules():
        for item in module.items(n.ConfigBlock):
            if isinstance(item, n.ConfigBlock) and item.name == "graphql":
                return item.span
    return env.index.main.source.span(0)
