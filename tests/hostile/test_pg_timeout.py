"""Issue 22 outcome 5 (pg): every statement runs under a statement timeout
(`pgStatementTimeoutMs`, default 30 s); past it the step ends with a `timeout` envelope.
A real `webpipe serve` against the embedded PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
import pytest

from tests.hostile.harness import health_while, serve
from tests.hostile.responsive import assert_responsive
from tests.middleware.pg_server import socket_dir
from webpipe.pgembed import default_data_dir, embedded_url


@pytest.fixture(scope="module")
def pg_host(tmp_path_factory: pytest.TempPathFactory) -> str:
    return socket_dir(embedded_url(default_data_dir(tmp_path_factory.mktemp("pgapp"))))


def app(pg_host: str, limits: str) -> str:
    return f"""
config pg {{
  host: "{pg_host}"
  port: 5432
}}
{limits}
GET /sleep/:s
  |> pg([.params.s]): `SELECT pg_sleep($1::float8) AS slept`
  |> result
    ok(200):
      |> jq: `{{ ok: true }}`
    timeout(504):
      |> jq: `.errors[0]`
"""


async def test_sleeping_statements_end_at_the_timeout(tmp_path: Path, pg_host: str) -> None:
    text = app(pg_host, "config limits {\n  pgStatementTimeoutMs: 500\n}\n")
    async with serve(tmp_path, text) as served:
        async with httpx.AsyncClient(base_url=served.base, timeout=60) as c:
            assert (await c.get("/sleep/0")).json() == {"ok": True}
            rss_before = served.rss_kb()

            async def hostile() -> tuple[float, httpx.Response]:
                start = time.monotonic()
                answer = await c.get("/sleep/20")
                return time.monotonic() - start, answer

            latencies, results = await health_while(
                served, asyncio.gather(*(hostile() for _ in range(8))))
            for took, answer in results:  # type: ignore[attr-defined]
                assert took < 0.5 + 4, took  # the budget and generous slack, far below 20 s
                assert answer.status_code == 504
                error = answer.json()
                assert error["type"] == "timeout"
                assert error["sqlstate"] == "57014"
                assert "statement timeout 500 ms" in error["message"]
            assert (await c.get("/sleep/0.1")).json() == {"ok": True}  # pool still healthy
        assert_responsive(latencies)
        assert served.rss_kb() < rss_before * 1.1
        assert await served.stop() < 5


async def test_a_statement_in_flight_does_not_hold_sigterm_past_the_grace(
        tmp_path: Path, pg_host: str) -> None:
    grace = "config async {\n  shutdownGraceMs: 2000\n}\n"
    async with serve(tmp_path, app(pg_host, grace)) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=60) as c:
        assert (await c.get("/sleep/0")).json() == {"ok": True}
        pending = asyncio.ensure_future(c.get("/sleep/20"))
        await asyncio.sleep(0.3)
        assert await served.stop(grace_s=15) < 2 + 3
        # uvicorn answers a request it cancelled at the grace with a 500, or hangs up
        with contextlib.suppress(httpx.HTTPError):
            assert (await pending).status_code == 500
