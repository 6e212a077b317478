"""A library program shared by the GraphQL tests, and helpers that run it for real."""

from __future__ import annotations

from typing import Any

from tests.support import body_of
from webpipe.executor.context import RequestContext
from webpipe.executor.env import Env
from webpipe.executor.pipeline import run_body
from webpipe.executor.state import Outcome
from webpipe.graphql.runtime import GraphqlRuntime
from webpipe.graphql.schema import build_graphql
from webpipe.program import program_from_text

SCHEMA = '''graphqlSchema = `
  type Author { id: ID! name: String! books(limit: Int): [Book!]! }
  type Book { id: ID! title: String! batch: Int author: Author }
  type Loose { a: String }
  type Query {
    author(id: ID!): Author
    authors: [Author!]!
    shelfSize: Int
    echo(id: ID, n: Int, tags: [String], limit: Int = 10, parent: String): JSON
    broken: String
    loose: String
    looseId: ID
    weird: Loose
    seen: JSON
    unresolved: String
  }
  type Mutation { renameAuthor(id: ID!, name: String!): Author }
`
'''

RESOLVERS = '''
query author =
  |> jq: `if .args.id == "0"
          then { errors: [{ type: "notFound", message: "no such author" }] }
          else { id: .args.id, name: "Ursula" } end`

query authors =
  |> jq: `[{ id: "1", name: "Ada" }, { id: "2", name: "Brook" }, { id: "1", name: "Ada again" }]`

query shelfSize =
  |> jq: `42`

query echo =
  |> jq: `del(.context)`

query broken =
  |> nosuchstep: `x`

query loose =
  |> jq: `7`

query looseId =
  |> jq: `7`

query weird =
  |> jq: `"text"`

query seen =
  |> jq: `{ state: .context, path: $context.request.path }`

mutation renameAuthor =
  |> jq: `{ id: .id, name: .name }`

pipeline BooksByAuthor =
  |> jq: `.args as $a | .keys as $ks | reduce ($ks[] | tostring) as $k ({}; .[$k] = (
           [{ id: ("b-" + $k), title: ("Volume " + $k), batch: ($ks | length) },
            { id: ("c-" + $k), title: "Second", batch: ($ks | length) }]
           | .[0:($a.limit // 2)]))`

resolver Author.books =
  |> loader(.parent.id): BooksByAuthor

pipeline AuthorsById =
  |> jq: `reduce .keys[] as $k ({}; .[$k] = { id: $k, name: ("Author " + $k) })`

resolver Book.author =
  |> jq: `{ id: (.parent.id | ltrimstr("b-") | ltrimstr("c-")) }`
  |> loader(.id): AuthorsById
  |> jq: `. + { name: (.name + "!") }`
'''

ROUTES = '''
graphql authorName = `query($id: ID!) { author(id: $id) { name } }`

GET /a/:id
  |> graphql({ id: .params.id }): `query($id: ID!) { author(id: $id) { name } }`

GET /b/:id
  |> jq: `{ graphqlParams: { id: .params.id } }`
  |> graphql: authorName

POST /c
  |> jq: `{ query: .body.q, variables: .body.vars }`
  |> graphql

GET /dash
  |> graphql: `query { shelfSize }` @result(shelfSize)
  |> graphql: `query { author(id: "9") { name } }` @result(writer)
  |> jq: `{ size: .data.shelfSize, writer: .data.writer.data.author.name }`

GET /keep
  |> graphql: `{ shelfSize }`
  |> jq: `{ size: .data.shelfSize, params: .params }`

GET /branch/:id
  |> graphql({ id: .params.id }): `query($id: ID!) { author(id: $id) { name } }`
  |> result
    ok(200):
      |> jq: `{ branch: "ok", errors: .errors }`

GET /typed/:id
  |> graphql({ id: .params.id }): `query($id: ID!) { author(id: $id) { name } }` @error(gqlFailed)
  |> result
    gqlFailed(502):
      |> jq: `{ problem: .errors[0].message }`
    ok(200):
      |> jq: `{ name: .data.author.name }`

GET /bad-vars
  |> graphql(.params): `query { shelfSize }`

GET /bad-vars-2
  |> graphql(42): `query { shelfSize }`

GET /bad-doc
  |> graphql: `query { nope }`

GET /later
  |> graphql: `{ shelfSize }` @async(t) @result(shelfSize)
  |> join: `t`
  |> jq: `{ t: .async.t }`
'''

LIBRARY = SCHEMA + RESOLVERS + ROUTES


def library(extra: str = "") -> Env:
    return program_from_text(LIBRARY + extra)


def runtime_of(env: Env) -> GraphqlRuntime:
    runtime = build_graphql(env)
    assert runtime is not None
    return runtime


async def gql(env: Env, query: str, variables: dict[str, Any] | None = None,
              state: Any = None, ctx: RequestContext | None = None) -> dict[str, Any]:
    runtime = runtime_of(env)
    return await runtime.execute(runtime.document(query), variables or {},
                                 {} if state is None else state, env,
                                 ctx or RequestContext())


async def call(env: Env, method: str, path: str, params: dict[str, Any] | None = None,
               body: Any = None, ctx: RequestContext | None = None) -> Outcome:
    route = next(r for _m, r in env.index.routes() if r.method == method and r.path == path)
    state = {"method": method, "path": path, "params": params or {}, "query": {},
             "headers": {}, "body": body}
    ctx = ctx or RequestContext(request=state)
    return await run_body(body_of(env, route), state, env, ctx)
