"""Three slow queries under `@async` run in parallel on the pool (the reference's
/test-parallel-sleep shape): about one query's time, not three."""

from __future__ import annotations

import time
from pathlib import Path

from tests.middleware.pg_server import TcpProxy
from tests.middleware.test_pg import _get, app_dir, pg_url, proxy  # noqa: F401  (fixtures)

SLEEPS = """
config pg {
  host: "127.0.0.1"
  port: PORT
}

GET /parallel
  |> pg: `SELECT pg_sleep(0.5)::text AS slept, 1 AS n` @async(a)
  |> pg: `SELECT pg_sleep(0.5)::text AS slept, 2 AS n` @async(b)
  |> pg: `SELECT pg_sleep(0.5)::text AS slept, 3 AS n` @async(c)
  |> join: `a, b, c`
  |> jq: `[.async.a, .async.b, .async.c] | map(.data.rows[0].n)`
"""


async def test_three_sleeping_queries_overlap(tmp_path: Path, proxy: TcpProxy) -> None:  # noqa: F811
    wp = SLEEPS.replace("PORT", str(proxy.port))
    await _get(wp, tmp_path, "/parallel")  # warm the pool's connections
    start = time.monotonic()
    response = await _get(wp, tmp_path, "/parallel")
    elapsed = time.monotonic() - start
    assert response.json() == [1, 2, 3]
    assert elapsed < 1.2, f"three 0.5 s queries took {elapsed:.2f} s"
