"""Fork/join and task semantics over HTTP, against real loopback upstreams (aiohttp):
concurrency by timing, deadlines that cancel work, background steps after the response,
retries, single-flight, per-request caps, and metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web

from tests.support import loopback
from webpipe.executor.env import Env
from webpipe.executor.process_tasks import PROCESS_TASKS
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app


@dataclass
class Upstream:
    base: str = ""
    hits: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # "start" / "end", in order
    failures_left: int = 0
    failure_status: int = 503
    retry_after: str | None = None
    in_flight: int = 0
    most_in_flight: int = 0
    times: list[float] = field(default_factory=list)  # monotonic time of each hit
    trace: list[str] = field(default_factory=list)  # "start /slow/5", "end /slow/5"
    alerts: list[object] = field(default_factory=list)  # bodies POSTed to /alert


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream()

    async def slow(request: web.Request) -> web.Response:
        ms = int(request.match_info["ms"])
        state.hits.append(request.path)
        state.events.append("start")
        state.trace.append(f"start {request.path}")
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            await asyncio.sleep(ms / 1000)
        except asyncio.CancelledError:
            state.cancelled.append(request.path)
            raise
        finally:
            state.in_flight -= 1
        state.finished.append(request.path)
        state.events.append("end")
        state.trace.append(f"end {request.path}")
        return web.json_response({"slept": ms})

    async def fail(request: web.Request) -> web.Response:
        state.hits.append(request.path)
        await asyncio.sleep(int(request.match_info["ms"]) / 1000)
        state.finished.append(request.path)
        return web.json_response({"broken": True}, status=500)

    async def flaky(request: web.Request) -> web.Response:
        state.hits.append(request.path)
        state.times.append(time.monotonic())
        if state.failures_left > 0:
            state.failures_left -= 1
            headers = {"Retry-After": state.retry_after} if state.retry_after else None
            return web.json_response({"no": True}, status=state.failure_status,
                                     headers=headers)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/slow/{ms}", slow)
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/fail/{ms}", fail)

    async def alert(request: web.Request) -> web.Response:
        state.alerts.append(await request.json())
        return web.json_response({"stored": True})

    app.router.add_post("/alert", alert)
    async with loopback(app, handler_cancellation=True) as state.base:
        yield state


MakeClient = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def client_for() -> AsyncIterator[MakeClient]:
    """Clients for programs; each program's resources (HTTP sessions) closed afterwards."""
    envs: list[Env] = []

    def make(text: str) -> httpx.AsyncClient:
        env = program_from_text(text)
        envs.append(env)
        app = create_app(build_served(env), metrics=True)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 timeout=30)

    yield make
    await PROCESS_TASKS.drain(5.0)
    for env in envs:
        await env.aclose()


async def test_three_upstream_calls_run_concurrently(
        upstream: Upstream, client_for: MakeClient) -> None:
    client = client_for(f'''
GET /three
  |> fetch: `{upstream.base}/slow/200` @async(a)
  |> fetch: `{upstream.base}/slow/200` @async(b)
  |> fetch: `{upstream.base}/slow/200` @async(c)
  |> join: `a, b, c`
  |> jq: `[.async[] | .data.response.slept]`
''')
    start = time.monotonic()
    r = await client.get("/three")
    elapsed = time.monotonic() - start
    assert r.json() == [200, 200, 200]
    assert upstream.events == ["start"] * 3 + ["end"] * 3  # all three were in flight at once
    assert elapsed < 0.55, f"three 200 ms calls took {elapsed:.3f} s (sequential: 0.6 s)"


async def test_deadline_cancels_the_upstream_call(
        upstream: Upstream, client_for: MakeClient) -> None:
    client = client_for(f'''
GET /deadline
  |> fetch: `{upstream.base}/slow/2000` @async(slow) @timeout(100)
  |> fetch: `{upstream.base}/slow/10` @async(quick)
  |> join: `slow, quick`
  |> jq: `{{ slow: .async.slow, quick: .async.quick.data.response }}`
''')
    start = time.monotonic()
    body = (await client.get("/deadline")).json()
    assert time.monotonic() - start < 1.0
    assert body == {"slow": {"error": "timeout after 100 ms", "type": "timeout"},
                    "quick": {"slept": 10}}
    for _ in range(100):  # the upstream sees the disconnect a moment later (more under load)
        if "/slow/2000" in upstream.cancelled:
            break
        await asyncio.sleep(0.02)
    assert "/slow/2000" in upstream.cancelled
    assert "/slow/2000" not in upstream.finished


async def test_branches_sharing_a_deadline_are_each_cut_or_kept(
        upstream: Upstream, client_for: MakeClient) -> None:
    """30 slow and 30 quick branches start together with the same `@timeout`: their
    deadlines share timers (executor/deadlines.py); the quick ones leave before it fires."""
    slow = "\n".join(f"  |> fetch: `{upstream.base}/slow/2000` @async(s{i}) @timeout(150)"
                     for i in range(30))
    quick = "\n".join(f"  |> fetch: `{upstream.base}/slow/10` @async(q{i}) @timeout(150)"
                      for i in range(30))
    names = ", ".join([f"s{i}" for i in range(30)] + [f"q{i}" for i in range(30)])
    client = client_for(f'''
GET /shared
{slow}
{quick}
  |> join: `{names}`
  |> jq: `[.async | to_entries[] | .value.type // .value.data.response.slept] | group_by(.)
          | map({{(.[0] | tostring): length}}) | add`
''')
    start = time.monotonic()
    body = (await client.get("/shared")).json()
    assert time.monotonic() - start < 1.5
    assert body == {"timeout": 30, "10": 30}
    for _ in range(100):  # the upstream sees the disconnects a moment later
        if len([p for p in upstream.cancelled if p == "/slow/2000"]) == 30:
            break
        await asyncio.sleep(0.02)
    assert upstream.cancelled.count("/slow/2000") == 30


async def test_join_deadline_bounds_the_whole_wait(
        upstream: Upstream, client_for: MakeClient) -> None:
    client = client_for(f'''
GET /join-deadline
  |> fetch: `{upstream.base}/slow/1000` @async(a)
  |> fetch: `{upstream.base}/slow/10` @async(b)
  |> join: `a, b` @timeout(150)
  |> jq: `{{ a: .async.a.type, b: .async.b.data.response.slept }}`
''')
    assert (await client.get("/join-deadline")).json() == {"a": "timeout", "b": 10}


async def test_background_runs_after_a_2xx_response_only(
        upstream: Upstream, client_for: MakeClient) -> None:
    client = client_for(f'''
GET /ok
  |> jq: `{{ done: true }}`
  |> fetch: `{upstream.base}/slow/400` @background

GET /bad
  |> jq: `{{ errors: [{{ type: "nope" }}] }}`
  |> result
    nope(400):
      |> jq: `{{ refused: true }}`
      |> fetch: `{upstream.base}/slow/1` @background
''')
    r = await client.get("/ok")
    assert r.json() == {"done": True}
    assert upstream.finished == []  # the response did not wait for the step
    assert (await client.get("/bad")).status_code == 400
    assert await PROCESS_TASKS.drain(5.0) == []
    assert upstream.finished == ["/slow/400"]


async def test_background_retries_with_backoff(
        upstream: Upstream, client_for: MakeClient) -> None:
    upstream.failures_left = 2
    client = client_for(f'''
GET /retry
  |> jq: `{{ ok: true }}`
  |> fetch: `{upstream.base}/flaky` @background @retry(3)
''')
    await client.get("/retry")
    await PROCESS_TASKS.drain(5.0)
    assert upstream.hits == ["/flaky", "/flaky", "/flaky"]


async def test_dedup_shares_one_upstream_call(
        upstream: Upstream, client_for: MakeClient) -> None:
    client = client_for(f'''
GET /shared
  |> fetch: `{upstream.base}/slow/200` @dedup
  |> jq: `.data.response`
''')
    bodies = await asyncio.gather(*(client.get("/shared") for _ in range(5)))
    assert [b.json() for b in bodies] == [{"slept": 200}] * 5
    assert upstream.hits == ["/slow/200"]


async def test_per_request_cap_applies_back_pressure(
        upstream: Upstream, client_for: MakeClient) -> None:
    client = client_for(f'''
config async {{
  maxPerRequest: 2
}}

GET /capped
  |> fetch: `{upstream.base}/slow/150` @async(a)
  |> fetch: `{upstream.base}/slow/150` @async(b)
  |> fetch: `{upstream.base}/slow/150` @async(c)
  |> fetch: `{upstream.base}/slow/150` @async(d)
  |> join: `a, b, c, d`
  |> jq: `[.async[] | .data.response.slept]`
''')
    start = time.monotonic()
    assert (await client.get("/capped")).json() == [150, 150, 150, 150]
    assert time.monotonic() - start >= 0.3  # two waves of two, nothing dropped
    build_served(program_from_text("GET /x\n"))  # restore default limits


async def test_metrics_page(
        upstream: Upstream, client_for: MakeClient) -> None:
    client = client_for(f'''
GET /m
  |> fetch: `{upstream.base}/slow/1` @async(a)
  |> join: `a`
''')
    assert (await client.get("/m")).status_code == 200
    page = (await client.get("/metrics")).text
    assert "webpipe_tasks_pending" in page
    assert 'webpipe_tasks_total{kind="async",outcome="ok",route="GET /m",task="a"}' in page
    assert 'webpipe_requests_total{route="GET /m",status="200"}' in page
    assert "webpipe_task_duration_seconds_count" in page
    assert "webpipe_tasks_oldest_pending_age_seconds" in page


async def test_metrics_show_the_age_of_the_oldest_pending_task(
        upstream: Upstream, client_for: MakeClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    client = client_for(f'''
GET /pending
  |> jq: `{{ ok: true }}`
  |> fetch: `{upstream.base}/slow/800` @background
''')

    async def gauges() -> dict[str, float]:
        page = (await client.get("/metrics")).text
        return {s.name: s.value for f in text_string_to_metric_families(page)
                for s in f.samples if s.name.startswith("webpipe_tasks_")}

    assert (await client.get("/pending")).json() == {"ok": True}
    for _ in range(200):  # until the step has been pending for a while
        seen = await gauges()
        if seen["webpipe_tasks_oldest_pending_age_seconds"] >= 0.2:
            break
        await asyncio.sleep(0.02)
    assert seen["webpipe_tasks_pending"] >= 1
    assert 0.2 <= seen["webpipe_tasks_oldest_pending_age_seconds"] < 30
    await PROCESS_TASKS.drain(5.0)
    seen = await gauges()
    assert seen["webpipe_tasks_pending"] == 0
    assert seen["webpipe_tasks_oldest_pending_age_seconds"] == 0
