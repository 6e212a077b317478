"""Issue 25 on real `webpipe serve` processes against a loopback upstream whose latency and
failures the test controls: `join @first` takes the first success and drops the losers'
connections; `@hedge(n, ms)` answers in about `ms` plus the fast copy's time and cancels
the slow one; a fetch circuit breaker opens, fails fast without calling the upstream,
probes once after `breakerOpenMs` and closes; partial joins say what is missing
(`.asyncStatus`, `X-Webpipe-Completed`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.hostile.harness import serve
from tests.support import loopback


@dataclass
class Upstream:
    base: str = ""
    hits: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    delays_ms: list[int] = field(default_factory=list)  # /seq: the nth call's latency
    failing: bool = False  # /toggle answers 500 while set


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream()

    async def sleep_for(request: web.Request, ms: int) -> None:
        try:
            await asyncio.sleep(ms / 1000)
        except asyncio.CancelledError:  # the client dropped the connection
            state.cancelled.append(request.path_qs)
            raise

    async def slow(request: web.Request) -> web.Response:
        state.hits.append(request.path)
        ms = int(request.match_info["ms"])
        await sleep_for(request, ms)
        return web.json_response({"slept": ms})

    async def fail(request: web.Request) -> web.Response:
        state.hits.append(request.path)
        await sleep_for(request, int(request.match_info["ms"]))
        return web.json_response({"broken": True}, status=500)

    async def seq(request: web.Request) -> web.Response:
        n = len([h for h in state.hits if h.startswith("/seq")])
        ms = state.delays_ms[n] if n < len(state.delays_ms) else 0
        state.hits.append(f"/seq?call={n}")
        await sleep_for(request, ms)
        return web.json_response({"call": n, "slept": ms})

    async def toggle(request: web.Request) -> web.Response:
        state.hits.append(request.path)
        if state.failing:
            return web.json_response({"down": True}, status=500)
        return web.json_response({"up": True})

    app = web.Application()
    app.router.add_get("/slow/{ms}", slow)
    app.router.add_get("/fail/{ms}", fail)
    app.router.add_get("/seq", seq)
    app.router.add_get("/toggle", toggle)
    async with loopback(app, handler_cancellation=True) as state.base:
        yield state


async def until(condition: object, timeout_s: float = 5.0) -> None:
    """Poll `condition()` until it holds (fails after `timeout_s`)."""
    end = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < end, "condition never held"
        await asyncio.sleep(0.02)


FIRST = '''
GET /first
  |> fetch: `{base}/slow/2000` @async(slow)
  |> fetch: `{base}/fail/10` @async(bad)
  |> fetch: `{base}/slow/100` @async(fast)
  |> join: `slow, bad, fast` @first
  |> jq: `{{ status: .asyncStatus, value: .async.fast.data.response.slept,
            others: (.async | keys) }}`

GET /all-fail
  |> fetch: `{base}/fail/10` @async(a)
  |> fetch: `{base}/fail/50` @async(b)
  |> join: `a, b` @first
  |> result
    asyncError(502):
      |> jq: `{{ types: [.errors[].type], tasks: [.errors[1:][].task],
                 failures: .errors[0].failures }}`

GET /first-deadline
  |> fetch: `{base}/slow/2000` @async(a)
  |> fetch: `{base}/fail/10` @async(b)
  |> join: `a, b` @first @timeout(200)
  |> result
    timeout(504):
      |> jq: `{{ types: [.errors[].type], tasks: [.errors[1:][].task] }}`
'''


async def test_first_wins_and_drops_the_losers(tmp_path: Path, upstream: Upstream) -> None:
    async with serve(tmp_path, FIRST.format(base=upstream.base)) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        start = time.monotonic()
        r = await client.get("/first")
        elapsed = time.monotonic() - start
        await until(lambda: "/slow/2000" in upstream.cancelled)  # its connection dropped
    assert r.status_code == 200
    assert r.json() == {"status": {"complete": True, "failed": ["bad"], "timedOut": [],
                                   "winner": "fast"},
                        "value": 100, "others": ["fast"]}
    assert elapsed < 1.2, f"@first waited {elapsed:.2f} s for the 2 s loser"


async def test_first_when_every_task_fails_or_the_deadline_passes(
        tmp_path: Path, upstream: Upstream) -> None:
    async with serve(tmp_path, FIRST.format(base=upstream.base)) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        failed = await client.get("/all-fail")
        start = time.monotonic()
        late = await client.get("/first-deadline")
        elapsed = time.monotonic() - start
    assert failed.status_code == 502
    assert failed.json() == {"types": ["asyncError", "httpError", "httpError"],
                             "tasks": ["a", "b"], "failures": ["a", "b"]}
    assert late.status_code == 504
    assert late.json() == {"types": ["timeout", "httpError", "timeout"], "tasks": ["b", "a"]}
    assert elapsed < 1.2


HEDGE = '''
GET /hedged
  |> fetch: `{base}/seq` @hedge(2, 100)
  |> jq: `.data.response`

GET /plain
  |> fetch: `{base}/seq`
  |> jq: `.data.response`

GET /all-copies-fail
  |> fetch: `{base}/fail/10` @hedge(3, 1000)
  |> result
    httpError(502):
      |> jq: `{{ type: .errors[0].type, copies: .errors[0].copies }}`

GET /post
  |> jq: `{{ fetchMethod: "POST" }}`
  |> fetch: `{base}/seq` @hedge(2, 100)
  |> result
    fetchError(500):
      |> jq: `{{ message: .errors[0].message }}`
'''


async def test_hedge_takes_the_fast_copy_and_cancels_the_slow_one(
        tmp_path: Path, upstream: Upstream) -> None:
    upstream.delays_ms = [2000, 50]
    async with serve(tmp_path, HEDGE.format(base=upstream.base), "--metrics") as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        start = time.monotonic()
        r = await client.get("/hedged")
        elapsed = time.monotonic() - start
        await until(lambda: "/seq" in upstream.cancelled)
        page = (await client.get("/metrics")).text
    assert r.json() == {"call": 1, "slept": 50}
    print(f"hedge(2, 100) against 2 s then 50 ms: {elapsed * 1000:.0f} ms")
    assert 0.14 <= elapsed < 1.0, f"{elapsed:.3f} s (expected ~0.15 s: 100 ms + 50 ms)"
    assert upstream.hits == ["/seq?call=0", "/seq?call=1"]
    assert 'webpipe_hedged_calls_total{route="GET /hedged",winner="hedge"} 1.0' in page
    assert 'webpipe_hedge_copies_total{route="GET /hedged"} 1.0' in page


async def test_hedge_sends_no_copy_when_the_first_answers_in_time(
        tmp_path: Path, upstream: Upstream) -> None:
    upstream.delays_ms = [10, 10]
    async with serve(tmp_path, HEDGE.format(base=upstream.base)) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        assert (await client.get("/hedged")).json() == {"call": 0, "slept": 10}
        refused = await client.get("/post")
    assert upstream.hits == ["/seq?call=0"]  # the refused POST sent nothing
    assert refused.status_code == 500
    assert "POST is not idempotent" in refused.json()["message"]


async def test_a_failed_copy_starts_the_next_at_once(tmp_path: Path, upstream: Upstream,
                                                     ) -> None:
    async with serve(tmp_path, HEDGE.format(base=upstream.base), "--metrics") as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        start = time.monotonic()
        r = await client.get("/all-copies-fail")
        elapsed = time.monotonic() - start
        page = (await client.get("/metrics")).text
    assert r.status_code == 502
    assert r.json() == {"type": "httpError", "copies": 3}
    assert upstream.hits == ["/fail/10"] * 3
    assert elapsed < 1.0, f"{elapsed:.2f} s: a failed copy must not wait for the 1 s delay"
    assert 'webpipe_hedged_calls_total{route="GET /all-copies-fail",winner="none"} 1.0' \
        in page


BREAKER = '''
config fetch {{
  breakerMaxErrors: 3
  breakerIntervalMs: 10000
  breakerOpenMs: 400
}}

GET /call
  |> fetch: `{base}/toggle`
  |> result
    ok(200):
      |> jq: `{{ up: .data.response.up }}`
    circuitOpen(503):
      |> jq: `{{ type: .errors[0].type, host: .errors[0].host }}`
    httpError(502):
      |> jq: `{{ type: .errors[0].type }}`
'''


async def test_breaker_opens_fails_fast_probes_and_closes(
        tmp_path: Path, upstream: Upstream) -> None:
    upstream.failing = True
    host = upstream.base.removeprefix("http://")
    async with serve(tmp_path, BREAKER.format(base=upstream.base), "--metrics") as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        statuses = [(await client.get("/call")).status_code for _ in range(3)]
        assert statuses == [502, 502, 502]
        assert len(upstream.hits) == 3
        start = time.monotonic()
        opened = [await client.get("/call") for _ in range(5)]
        fast = time.monotonic() - start
        assert [r.status_code for r in opened] == [503] * 5
        assert opened[0].json() == {"type": "circuitOpen", "host": host}
        assert len(upstream.hits) == 3, "an open breaker must not call the upstream"
        page = (await client.get("/metrics")).text
        assert f'webpipe_breaker_state{{host="{host}"}} 1.0' in page
        upstream.failing = False
        await asyncio.sleep(0.45)  # past breakerOpenMs: the next call is the probe
        probe = await client.get("/call")
        assert probe.json() == {"up": True}
        assert len(upstream.hits) == 4  # one probe call
        assert (await client.get("/call")).json() == {"up": True}  # closed again
        page = (await client.get("/metrics")).text
    assert fast < 1.0, f"5 calls on an open breaker took {fast:.2f} s"
    assert f'webpipe_breaker_state{{host="{host}"}} 0.0' in page
    log = served.log.read_text()
    assert f"fetch breaker for {host}: closed -> open" in log
    assert f"fetch breaker for {host}: open -> half-open" in log
    assert f"fetch breaker for {host}: half-open -> closed" in log


async def test_a_failed_probe_reopens_the_breaker(tmp_path: Path, upstream: Upstream) -> None:
    upstream.failing = True
    async with serve(tmp_path, BREAKER.format(base=upstream.base)) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        for _ in range(3):
            await client.get("/call")
        await asyncio.sleep(0.45)
        assert (await client.get("/call")).status_code == 502  # the probe, failing
        assert len(upstream.hits) == 4
        assert (await client.get("/call")).status_code == 503  # open again at once
        assert len(upstream.hits) == 4
    assert "half-open -> open (the probe call failed)" in served.log.read_text()


PARTIAL = '''
config server {{
  completenessHeader: true
}}

GET /partial
  |> fetch: `{base}/slow/10` @async(a)
  |> fetch: `{base}/fail/10` @async(b)
  |> fetch: `{base}/slow/2000` @async(c)
  |> join: `a, b, c` @timeout(300)
  |> jq: `{{ status: .asyncStatus, a: .async.a.data.response.slept }}`

GET /whole
  |> fetch: `{base}/slow/10` @async(a)
  |> join: `a`
  |> jq: `.asyncStatus`

GET /none
  |> jq: `{{ ok: true }}`
'''


async def test_partial_join_status_and_header(tmp_path: Path, upstream: Upstream) -> None:
    async with serve(tmp_path, PARTIAL.format(base=upstream.base)) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        partial = await client.get("/partial")
        whole = await client.get("/whole")
        none = await client.get("/none")
    assert partial.json() == {"status": {"complete": False, "failed": ["b"],
                                         "timedOut": ["c"]}, "a": 10}
    assert partial.headers["x-webpipe-completed"] == "false"
    assert whole.json() == {"complete": True, "failed": [], "timedOut": []}
    assert whole.headers["x-webpipe-completed"] == "true"
    assert "x-webpipe-completed" not in none.headers  # no join, no claim


async def test_no_header_unless_configured(tmp_path: Path, upstream: Upstream) -> None:
    text = PARTIAL.format(base=upstream.base).replace("completenessHeader: true",
                                                      "completenessHeader: false")
    async with serve(tmp_path, text) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        r = await client.get("/whole")
    assert r.json()["complete"] is True
    assert "x-webpipe-completed" not in r.headers
