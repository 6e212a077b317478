"""Issue 15 outcomes 1-2 on a real `webpipe serve` process against a loopback upstream:
`@failfast` names the task that really failed (any list order), keeps finished siblings'
results and reports an expired join deadline as a timeout; nested fork/join under
`maxGlobal` never deadlocks, and `maxWaitMs` turns an over-long wait into `capacityError`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.executor.test_tasks_http import (  # noqa: F401  (fixtures)
    MakeClient,
    Upstream,
    client_for,
    upstream,
)
from tests.hostile.harness import serve
from webpipe.executor.process_tasks import PROCESS_TASKS, TaskLimits


def failfast_app(base: str, order: str) -> str:
    return f'''
GET /ff
  |> fetch: `{base}/slow/2000` @async(slow)
  |> fetch: `{base}/fail/50` @async(bad)
  |> fetch: `{base}/slow/10` @async(quick)
  |> join: `{order}` @failfast
  |> result
    asyncError(502):
      |> jq: `{{ task: .errors[0].task, message: .errors[0].message,
                 quick: .async.quick.data.response.slept, hasSlow: (.async | has("slow")) }}`
    ok(200):
      |> jq: `{{ unexpected: true }}`

GET /deadline
  |> fetch: `{base}/slow/2000` @async(slow)
  |> fetch: `{base}/slow/10` @async(quick)
  |> join: `slow, quick` @failfast @timeout(200)
  |> result
    timeout(504):
      |> jq: `{{ type: .errors[0].type, task: .errors[0].task,
                 quick: .async.quick.data.response.slept }}`
    ok(200):
      |> jq: `{{ unexpected: true }}`
'''


@pytest.mark.parametrize("order", ["slow, bad, quick", "bad, slow, quick", "quick, slow, bad"])
async def test_failfast_names_the_task_that_failed(tmp_path: Path, upstream: Upstream,  # noqa: F811
                                                   order: str) -> None:
    async with serve(tmp_path, failfast_app(upstream.base, order)) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        start = time.monotonic()
        r = await client.get("/ff")
        elapsed = time.monotonic() - start
    assert r.status_code == 502
    body = r.json()
    assert body["task"] == "bad"
    assert body["message"].startswith("task 'bad' failed: httpError")
    assert body["quick"] == 10  # a sibling that had succeeded keeps its result
    assert body["hasSlow"] is False  # the cancelled sibling is not a result
    assert elapsed < 1.5, f"failfast waited {elapsed:.2f} s for the 2 s sibling"


async def test_failfast_join_deadline_is_a_timeout(tmp_path: Path, upstream: Upstream) -> None:  # noqa: F811
    async with serve(tmp_path, failfast_app(upstream.base, "slow, bad")) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        r = await client.get("/deadline")
    assert r.status_code == 504
    assert r.json() == {"type": "timeout", "task": "slow", "quick": 10}


NESTED = '''
config async {{
  maxGlobal: 2
  lifetimeMs: 20000
}}

pipeline pair =
  |> fetch: `{base}/slow/300` @async(a)
  |> fetch: `{base}/slow/300` @async(b)
  |> join: `a, b`
  |> jq: `{{ a: .async.a.data.response.slept, b: .async.b.data.response.slept }}`

GET /nested
  |> pair @async(outer)
  |> join: `outer`
  |> jq: `.async.outer`
'''


async def test_nested_fork_join_under_a_global_cap_never_deadlocks(
        tmp_path: Path, upstream: Upstream) -> None:  # noqa: F811
    async with serve(tmp_path, NESTED.format(base=upstream.base)) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=30) as client:
        start = time.monotonic()
        bodies = await asyncio.gather(*(client.get("/nested") for _ in range(4)))
        elapsed = time.monotonic() - start
    assert [b.json() for b in bodies] == [{"a": 300, "b": 300}] * 4
    assert upstream.most_in_flight <= 2  # the cap held
    # 8 leaf calls, 2 at a time: four waves of 300 ms; a lifetime would be 20 s
    print(f"nested cap: 4 requests, 8 leaf calls of 0.3 s, 2 slots: {elapsed:.2f} s")
    assert elapsed < 4.0, f"took {elapsed:.2f} s"
    assert "lifetime" not in served.log.read_text()


CAPPED = '''
config async {{
  maxGlobal: 1
  maxWaitMs: 100
}}

GET /capped
  |> fetch: `{base}/slow/600` @async(a)
  |> fetch: `{base}/slow/600` @async(b)
  |> join: `a, b`
  |> result
    capacityError(503):
      |> jq: `{{ type: .errors[0].type, task: .errors[0].task, a: .async.a.data.response.slept }}`
    ok(200):
      |> jq: `{{ unexpected: true }}`
'''


async def test_max_wait_turns_a_long_wait_into_a_capacity_error(
        tmp_path: Path, upstream: Upstream) -> None:  # noqa: F811
    async with serve(tmp_path, CAPPED.format(base=upstream.base), "--metrics") as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        r = await client.get("/capped")
        page = (await client.get("/metrics")).text
    assert r.status_code == 503
    assert r.json() == {"type": "capacityError", "task": "b", "a": 600}
    assert upstream.hits == ["/slow/600"]  # the rejected task never ran
    assert 'webpipe_tasks_rejected_total{kind="async",route="GET /capped",task="b"} 1.0' \
        in page


async def test_waiting_for_a_slot_counts_against_the_deadlines(
        upstream: Upstream, client_for: MakeClient) -> None:  # noqa: F811
    client = client_for(f'''
config async {{
  maxGlobal: 1
}}

GET /task-deadline
  |> fetch: `{upstream.base}/slow/700` @async(holder)
  |> fetch: `{upstream.base}/slow/10` @async(waiter) @timeout(200)
  |> join: `holder, waiter`
  |> jq: `{{ holder: .async.holder.data.response.slept, waiter: .async.waiter.type }}`

GET /join-deadline
  |> fetch: `{upstream.base}/slow/700` @async(holder)
  |> fetch: `{upstream.base}/slow/10` @async(waiter)
  |> join: `holder, waiter` @timeout(300)
  |> jq: `{{ holder: .async.holder.type, waiter: .async.waiter.type }}`
''')
    start = time.monotonic()
    assert (await client.get("/task-deadline")).json() == {"holder": 700, "waiter": "timeout"}
    assert (await client.get("/join-deadline")).json() == {"holder": "timeout",
                                                           "waiter": "timeout"}
    assert time.monotonic() - start < 1.6  # 0.7 s + 0.3 s, not a wait past the deadlines
    assert "/slow/10" not in upstream.hits  # the waiter never got a slot
    PROCESS_TASKS.configure(TaskLimits())
