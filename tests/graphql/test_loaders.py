"""Batched `loader` resolvers (spec/graphql.md §5.2): one batch per tick, keys in order and
de-duplicated, results mapped back by key text, failures fail every key of the batch."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.graphql.support import gql, library
from webpipe.executor.context import RequestContext
from webpipe.graphql.loaders import MAX_BATCH, key_text
from webpipe.middleware import Registry
from webpipe.middleware.base import BaseMiddleware, StepCall, StepResult
from webpipe.program import program_from_text
from webpipe.testing.mocks import MockInvoker, MockSet


def logged(ctx: RequestContext, key: str) -> list[Any]:
    assert ctx.call_log is not None
    return ctx.call_log.get(key, [])


async def test_one_batch_per_level_with_keys_in_order() -> None:
    env = library()
    ctx = RequestContext(call_log={})
    out = await gql(env, "{ authors { name books { id batch author { name } } } }",
                    state={"s": 1}, ctx=ctx)
    authors = out["data"]["authors"]
    assert [a["name"] for a in authors] == ["Ada", "Brook", "Ada again"]
    assert authors[0]["books"] == [
        {"id": "b-1", "batch": 2, "author": {"name": "Author 1!"}},
        {"id": "c-1", "batch": 2, "author": {"name": "Author 1!"}}]
    assert authors[1]["books"][0]["id"] == "b-2"
    [books_batch] = logged(ctx, "pipeline.BooksByAuthor")
    assert books_batch == {"keys": ["1", "2"], "args": {}, "context": {"s": 1}}
    [authors_batch] = logged(ctx, "pipeline.AuthorsById")
    assert authors_batch["keys"] == ["1", "2"]
    assert len(logged(ctx, "Author.books")) == 3
    assert logged(ctx, "Author.books")[0] == {
        "parent": {"id": "1", "name": "Ada"}, "args": {}, "context": {"s": 1}}


async def test_different_arguments_never_share_a_batch() -> None:
    ctx = RequestContext(call_log={})
    out = await gql(library(), "{ authors { one: books(limit: 1) { id } two: books { id } } }",
                    ctx=ctx)
    first = out["data"]["authors"][0]
    assert first == {"one": [{"id": "b-1"}], "two": [{"id": "b-1"}, {"id": "c-1"}]}
    batches = logged(ctx, "pipeline.BooksByAuthor")
    assert sorted(str(b["args"]) for b in batches) == ["{'limit': 1}", "{}"]
    assert all(b["keys"] == ["1", "2"] for b in batches)


LOADERS = '''
graphqlSchema = `
  type Item { id: ID! v: JSON w: JSON x: JSON y: JSON z: JSON }
  type Query { items: [Item!]! }
`
query items =
  |> jq: `[{ id: 1 }, { id: "1" }, { id: true }, { id: [1] }]`

pipeline ByText =
  |> jq: `{ "1": "one", "true": "yes", "[1]": "list" }`
resolver Item.v =
  |> loader(.parent.id): ByText

pipeline NotAnObject =
  |> jq: `[1]`
resolver Item.w =
  |> loader(.parent.id): NotAnObject

pipeline Exploding =
  |> nosuchstep: `x`
resolver Item.x =
  |> loader(.parent.id): Exploding

pipeline Envelope =
  |> jq: `{ errors: [{ type: "sqlError", message: "db down" }] }`
resolver Item.y =
  |> loader(.parent.id): Envelope

resolver Item.z =
  |> loader(.parent.id): Nowhere
'''


async def test_key_text_mapping_and_missing_entries() -> None:
    assert [key_text(k) for k in ("a", 7, 7.5, True, None, [1], {"a": 1})] == [
        "a", "7", "7.5", "true", "null", "[1]", '{"a":1}']
    ctx = RequestContext(call_log={})
    out = await gql(program_from_text(LOADERS), "{ items { v } }", ctx=ctx)
    assert [i["v"] for i in out["data"]["items"]] == ["one", "one", "yes", "list"]
    [batch] = logged(ctx, "pipeline.ByText")
    assert batch["keys"] == [1, "1", True, [1]]  # equal JSON keys only are de-duplicated


async def test_loader_failures_fail_every_key() -> None:
    env = program_from_text(LOADERS)
    for field, message in (("w", "Loader pipeline NotAnObject must return an object/map, "
                                 "got: [1]"),
                           ("y", "DataLoader error: db down"),
                           ("z", "DataLoader error: pipeline 'Nowhere' not found")):
        out = await gql(env, f"{{ items {{ id {field} }} }}")
        assert [i[field] for i in out["data"]["items"]] == [None] * 4
        assert {e["message"] for e in out["errors"]} == {message}
        assert len(out["errors"]) == 4
    out = await gql(env, "{ items { x } }")
    assert out["errors"][0]["message"].startswith("DataLoader error: ")
    assert "nosuchstep" in out["errors"][0]["message"]


async def test_loader_in_root_resolver_is_a_field_error() -> None:
    env = library("query shelfSize =\n  |> loader(.x): BooksByAuthor\n")
    out = await gql(env, "{ shelfSize }")
    assert out["errors"][0]["message"] == (
        "loader can only be used in type resolvers, not Query/Mutation")


async def test_loader_pipeline_mock_is_honoured_and_recorded() -> None:
    mocks = MockSet(pipelines={"BooksByAuthor": {"1": [{"id": "m", "title": "Mock"}], "2": []}})
    ctx = RequestContext(call_log={}, invoker=MockInvoker(mocks))
    out = await gql(library(), "{ authors { books { id } } }", ctx=ctx)
    assert [a["books"] for a in out["data"]["authors"]] == [[{"id": "m"}], [], [{"id": "m"}]]
    assert [b["keys"] for b in logged(ctx, "pipeline.BooksByAuthor")] == [["1", "2"]]


async def test_batches_are_capped() -> None:
    count = MAX_BATCH + 5
    env = program_from_text(f'''
graphqlSchema = `
  type Item {{ id: Int! twice: Int }}
  type Query {{ items: [Item!]! }}
`
query items =
  |> jq: `[range({count}) | {{ id: . }}]`
pipeline Twice =
  |> jq: `reduce .keys[] as $k ({{}}; .[$k | tostring] = $k * 2)`
resolver Item.twice =
  |> loader(.parent.id): Twice
''')
    ctx = RequestContext(call_log={})
    out = await gql(env, "{ items { twice } }", ctx=ctx)
    assert [i["twice"] for i in out["data"]["items"]] == [2 * i for i in range(count)]
    assert [len(b["keys"]) for b in logged(ctx, "pipeline.Twice")] == [MAX_BATCH, 5]


class Slow(BaseMiddleware):
    """Yields to the event loop several times, like a step waiting for I/O."""

    in_flight = 0
    max_in_flight = 0

    async def run(self, state: Any, prepared: object, call: StepCall) -> StepResult:
        Slow.in_flight += 1
        Slow.max_in_flight = max(Slow.max_in_flight, Slow.in_flight)
        try:
            for _ in range(5):
                await asyncio.sleep(0)
        finally:
            Slow.in_flight -= 1
        return StepResult({"slow": True})


async def test_slow_key_steps_are_serialised_and_still_batched_once() -> None:
    registry = Registry()
    registry.register("slow", Slow)
    env = program_from_text(LOADERS + "resolver Item.v =\n  |> slow\n"
                            "  |> loader(.parent.id): ByText\n", registry=registry)
    ctx = RequestContext(call_log={})
    out = await gql(env, "{ items { v } }", ctx=ctx)
    assert [i["v"] for i in out["data"]["items"]] == ["one", "one", "yes", "list"]
    assert [len(b["keys"]) for b in logged(ctx, "pipeline.ByText")] == [4]
    assert Slow.max_in_flight == 1  # resolver pipelines of one execution never overlap (§9)
