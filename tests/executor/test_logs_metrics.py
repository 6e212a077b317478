"""Issue 15 outcomes 4, 5 and 7 on real `webpipe serve` processes against a loopback
upstream: un-joined failures and lifetime cuts are logged with route, task name and
`file:line`; `/metrics` (prometheus-client, `--workers 2`) agrees with counts taken at the
upstream; `@dedup` shares calls between users and never across credentials."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.executor.test_tasks_http import Upstream, upstream  # noqa: F401  (fixture)
from tests.hostile.harness import Served, serve


async def until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    """Poll `check` (never a fixed sleep) until it holds, or fail after `seconds`."""
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.05)


def line_of(app: Path, needle: str) -> int:
    return next(i for i, t in enumerate(app.read_text().splitlines(), 1) if needle in t)


async def test_unjoined_failures_and_lifetime_cuts_are_logged(
        tmp_path: Path, upstream: Upstream) -> None:  # noqa: F811
    text = f'''
config async {{
  lifetimeMs: 300
}}

GET /unjoined
  |> fetch: `{upstream.base}/fail/10` @async(lost)
  |> jq: `{{ ok: true }}`

GET /cut
  |> fetch: `{upstream.base}/slow/2000` @async(long) @detached
  |> jq: `{{ ok: true }}`
'''
    async with serve(tmp_path, text) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        assert (await client.get("/unjoined")).json() == {"ok": True}
        assert (await client.get("/cut")).json() == {"ok": True}
        app = tmp_path / "app.wp"
        lost = f"GET /unjoined @async(lost) at {app}:{line_of(app, '/fail/10')} failed " \
               "(never joined): httpError"
        cut = f"GET /cut @async(long) at {app}:{line_of(app, '/slow/2000')} cut at its " \
              "lifetime of 300 ms"
        await until(lambda: lost in served.log.read_text() and cut in served.log.read_text())


def samples(page: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def total(page: str, name: str, **labels: str) -> float:
    return sum(v for k, v in samples(page, name).items() if set(labels.items()) <= set(k))


async def scrape(served: Served) -> str:
    async with httpx.AsyncClient(base_url=served.base) as client:  # a new connection
        return (await client.get("/metrics")).text


async def test_metrics_across_two_workers_match_the_upstream(
        tmp_path: Path, upstream: Upstream) -> None:  # noqa: F811
    text = f'''
GET /m
  |> fetch: `{upstream.base}/slow/5` @async(quick)
  |> fetch: `{upstream.base}/slow/1000` @async(late)
  |> join: `quick, late` @timeout(100)
  |> jq: `{{ ok: true }}`
  |> fetch: `{upstream.base}/fail/1` @background

GET /d
  |> fetch: `{upstream.base}/slow/300` @dedup
  |> jq: `{{ ok: true }}`
'''
    async with serve(tmp_path, text, "--workers", "2", "--metrics") as served:
        for _ in range(20):
            async with httpx.AsyncClient(base_url=served.base, timeout=10) as client:
                assert (await client.get("/m")).json() == {"ok": True}
        async with httpx.AsyncClient(base_url=served.base, timeout=10) as client:
            await asyncio.gather(*(client.get("/d") for _ in range(4)))
        await until(lambda: upstream.hits.count("/fail/1") == 20)
        page = ""

        async def settled() -> bool:
            nonlocal page
            page = await scrape(served)
            return total(page, "webpipe_tasks_total", kind="background") == 20

        end = time.monotonic() + 15
        while not await settled():
            assert time.monotonic() < end, page
            await asyncio.sleep(0.1)
    assert total(page, "webpipe_requests_total", route="GET /m") == 20
    assert total(page, "webpipe_tasks_total", task="quick", outcome="ok") == \
        upstream.hits.count("/slow/5") == 20
    assert total(page, "webpipe_tasks_total", task="late", outcome="timeout") == \
        upstream.hits.count("/slow/1000") == 20
    assert total(page, "webpipe_tasks_total", kind="background", outcome="error") == \
        upstream.hits.count("/fail/1") == 20
    assert total(page, "webpipe_tasks_total", kind="dedup") == 0  # not tasks
    leaders = total(page, "webpipe_dedup_calls_total", result="leader_ok")
    assert leaders == upstream.hits.count("/slow/300")
    assert leaders + total(page, "webpipe_dedup_calls_total", result="shared") == 4


DEDUP = '''
GET /item/:id
  |> fetch("{base}/slow/300") @dedup
  |> jq: `.data.response`

GET /as-user
  |> fetch("{base}/slow/301", {{ headers: {{ authorization: .headers.authorization }} }}) @dedup
  |> jq: `.data.response`

GET /keyed/:id
  |> fetch("{base}/slow/302") @dedup(`.params.id`)
  |> jq: `.data.response`
'''


async def test_dedup_shares_calls_that_differ_only_in_what_they_do_not_send(
        tmp_path: Path, upstream: Upstream) -> None:  # noqa: F811
    async with serve(tmp_path, DEDUP.format(base=upstream.base)) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        await asyncio.gather(*(
            client.get(f"/item/1?unused={i}",
                       headers={"x-request-id": str(i), "cookie": f"session=s{i}"})
            for i in range(5)))
        assert upstream.hits.count("/slow/300") == 1
        await asyncio.gather(*(client.get("/as-user", headers={"authorization": f"Bearer {u}"})
                               for u in ("alice", "bob", "alice")))
        assert upstream.hits.count("/slow/301") == 2  # never one call for two credentials
        await asyncio.gather(*(client.get(f"/keyed/{k}") for k in ("a", "b", "a", "a")))
        assert upstream.hits.count("/slow/302") == 2  # the explicit key decides
