"""Issue 15 outcomes 6, 8 and 9 over HTTP against a loopback upstream: `@timeout` and
`@retry` on plain steps; retries with full-jitter backoff, `Retry-After` and the attempt
count; background steps that run only after a 2xx response, in parallel with `@async`,
under their own cap and lifetime (a real `webpipe serve` process)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.executor.test_logs_metrics import line_of, until
from tests.executor.test_tasks_http import (  # noqa: F401  (fixtures)
    MakeClient,
    Upstream,
    client_for,
    upstream,
)
from tests.hostile.harness import serve
from webpipe.executor.process_tasks import PROCESS_TASKS, TaskLimits
from webpipe.executor.retry import backoff_s


async def test_timeout_on_a_plain_step_ends_it(upstream: Upstream,  # noqa: F811
                                               client_for: MakeClient) -> None:  # noqa: F811
    client = client_for(f'''
GET /t
  |> fetch: `{upstream.base}/slow/1000` @timeout(100)
  |> result
    timeout(504):
      |> jq: `{{ type: .errors[0].type, message: .errors[0].message }}`
''')
    start = time.monotonic()
    r = await client.get("/t")
    assert time.monotonic() - start < 0.8  # not the 1 s step
    assert r.status_code == 504
    assert r.json() == {"type": "timeout", "message": "step timed out after 100 ms"}
    await until(lambda: "/slow/1000" in upstream.cancelled)  # the call was really cut


async def test_retry_on_a_plain_step_records_the_attempts(
        upstream: Upstream, client_for: MakeClient) -> None:  # noqa: F811
    upstream.failures_left = 10
    client = client_for(f'''
config async {{
  retryBaseMs: 1
}}

GET /r
  |> fetch: `{upstream.base}/flaky` @retry(2)
  |> result
    httpError(502):
      |> jq: `{{ attempts: .errors[0].attempts, status: .errors[0].status }}`
''')
    r = await client.get("/r")
    assert r.json() == {"attempts": 3, "status": 503}
    assert upstream.hits == ["/flaky"] * 3


async def test_retry_honours_retry_after(upstream: Upstream,  # noqa: F811
                                         client_for: MakeClient) -> None:  # noqa: F811
    upstream.failures_left, upstream.failure_status, upstream.retry_after = 1, 429, "1"
    client = client_for(f'''
config async {{
  retryBaseMs: 1
}}

GET /r
  |> fetch: `{upstream.base}/flaky` @retry(2)
  |> jq: `.data.response`
''')
    assert (await client.get("/r")).json() == {"ok": True}
    gap = upstream.times[1] - upstream.times[0]
    assert gap >= 0.95, f"retried after {gap:.3f} s; the server asked for 1 s"


async def test_backoff_is_exponential_with_full_jitter_under_the_cap(
        client_for: MakeClient) -> None:  # noqa: F811
    client_for("config async {\n  retryBaseMs: 100\n  retryMaxMs: 500\n}\n\nGET /x\n")
    assert PROCESS_TASKS.limits.retry_base_ms == 100
    for retry, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)):
        pauses = [backoff_s(retry) for _ in range(300)]
        assert all(0 <= p <= ceiling for p in pauses)
        assert max(pauses) > ceiling * 0.8 and min(pauses) < ceiling * 0.2  # spread: jitter
    PROCESS_TASKS.configure(TaskLimits())


BACKGROUND = '''
config async {{
  maxBackground: 2
  backgroundLifetimeMs: 1500
}}

GET /order
  |> fetch: `{base}/slow/10` @background @async(early)
  |> fetch: `{base}/slow/300`
  |> jq: `{{ ok: true }}`

GET /parallel
  |> jq: `{{ ok: true }}`
  |> fetch: `{base}/slow/400` @background @async(a)
  |> fetch: `{base}/slow/401` @background @async(b)
  |> fetch: `{base}/slow/402` @background @async(c)

GET /sequence
  |> jq: `{{ ok: true }}`
  |> fetch: `{base}/slow/200` @background
  |> fetch: `{base}/slow/201` @background

GET /refused
  |> jq: `{{ errors: [{{ type: "nope" }}] }}`
  |> result
    nope(400):
      |> fetch: `{base}/slow/5` @background @async(never)
      |> jq: `{{ refused: true }}`

GET /cut
  |> jq: `{{ ok: true }}`
  |> fetch: `{base}/slow/5000` @background @async(long)
'''


async def test_background_steps_run_after_a_2xx_response_bounded(
        tmp_path: Path, upstream: Upstream) -> None:  # noqa: F811
    async with serve(tmp_path, BACKGROUND.format(base=upstream.base)) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        assert (await client.get("/order")).json() == {"ok": True}
        await until(lambda: "/slow/10" in upstream.finished)
        assert upstream.trace.index("end /slow/300") < upstream.trace.index("start /slow/10")

        start = time.monotonic()
        assert (await client.get("/parallel")).json() == {"ok": True}
        assert time.monotonic() - start < 0.35  # the response did not wait for them
        await until(lambda: len([p for p in upstream.finished if p.startswith("/slow/40")]) == 3)
        assert upstream.most_in_flight == 2  # in parallel, under maxBackground

        assert (await client.get("/sequence")).json() == {"ok": True}
        await until(lambda: "/slow/201" in upstream.finished)
        assert upstream.trace.index("end /slow/200") < upstream.trace.index("start /slow/201")

        r = await client.get("/refused")
        assert (r.status_code, r.json()) == (400, {"refused": True})

        assert (await client.get("/cut")).json() == {"ok": True}
        app = tmp_path / "app.wp"
        cut = f"GET /cut @background @async(long) at {app}:{line_of(app, '/slow/5000')} " \
              "failed: cut at its background lifetime of 1500 ms"
        await until(lambda: cut in served.log.read_text())
    assert "/slow/5" not in upstream.hits  # never on a non-2xx response


async def test_a_failed_background_step_calls_its_on_error_pipeline(
        tmp_path: Path, upstream: Upstream) -> None:  # noqa: F811
    text = f'''
config async {{
  retryBaseMs: 1
}}

pipeline alert =
  |> fetch("{upstream.base}/alert", {{ method: "POST", body: . }})

GET /order/:id
  |> jq: `{{ id: .params.id }}`
  |> fetch: `{upstream.base}/fail/1` @background @retry(2) @onError(alert)
'''
    async with serve(tmp_path, text) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        assert (await client.get("/order/7")).json() == {"id": 7}
        await until(lambda: len(upstream.alerts) == 1)
    app = tmp_path / "app.wp"
    [report] = upstream.alerts
    assert isinstance(report, dict)
    assert report["attempts"] == 3 and upstream.hits.count("/fail/1") == 3
    assert report["step"] == "fetch"
    assert report["location"] == f"{app}:{line_of(app, '/fail/1')}:3"
    assert report["error"].startswith("httpError: ")
    assert report["input"] == {"id": 7}
