"""µs of client CPU per `pg` step against a real PostgreSQL in its own process (W4's query).

Prices the `pg` middleware alone, without HTTP or the step loop: `PgMiddleware.run` on W4's
statement (`SELECT id, name FROM bench_users WHERE id = $1`, one row), next to what W4's
hand-written handler does with asyncpg and to the pieces in between. CPU time of this
process (`time.process_time`), so the database's own work, in its own process, does not
count; wall time is printed too. Modes run alternated, round by round.

    python benchmarks/pg_step.py [MODE ...] [--number 1000] [--rounds 15] [--rows 1]
        [--profile FILE]

Modes: `step` the middleware; `step-cte` the same with `WEBPIPE_PG_ROWS_CTE=1` (every row
through the `json_agg(row_to_json(..))` CTE, as before issue 23: an A/B of that change in
one process); `hand` W4's hand-written handler (`pool.fetchrow` on asyncpg's default pool,
which resets each connection on release: a second round trip); `cte` and `direct` asyncpg
alone on a pool without that reset, as the middleware's: `cte` runs the CTE and parses its
JSON text with orjson, `direct` runs the statement and builds the row dicts (the floor);
`W4` and `hand:W4` the whole W4 request, webpipe's and the hand-written app, through
uvicorn's protocol in-process (`http_inprocess.py`'s harness, timed here in CPU).
`--rows N` selects N rows (`id <= $1`) instead of one. The database is `DATABASE_URL`, else
`run.py`'s embedded one (seeded). Compare checkouts with `PYTHONPATH=OTHER_CHECKOUT`,
alternating runs; `--profile` writes a cProfile of the last mode's timed loop.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ONE = "SELECT id, name FROM bench_users WHERE id = $1"
MANY = "SELECT id, name FROM bench_users WHERE id <= $1 ORDER BY id"
CTE = ("WITH _wp_t AS (\n{}\n) SELECT COALESCE(json_agg(row_to_json(_wp_t)), '[]'::json)"
       " AS rows FROM _wp_t")


@dataclass
class Host:
    """The smallest MiddlewareHost: no `config pg`, so `DATABASE_URL` names the database."""

    base_dir: Path = HERE

    def config_block(self, name: str) -> Mapping[str, Any] | None:
        return None

    def variables_of(self, kind: str) -> Mapping[str, str]:
        return {}

    def middleware(self, name: str) -> Any:
        raise KeyError(name)

    @property
    def limits(self) -> Any:
        from webpipe.limits import limits_of

        return limits_of(self)

    def sandbox(self) -> Any:
        raise NotImplementedError


async def seed(url: str, rows: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_users (id int PRIMARY KEY, "
                           "name text)")
        await conn.execute("INSERT INTO bench_users SELECT i, 'user ' || i FROM "
                           "generate_series(1, $1) i ON CONFLICT DO NOTHING", max(rows, 1))
    finally:
        await conn.close()


async def modes(url: str, rows: int) -> dict[str, Callable[[], Awaitable[Any]]]:
    import asyncpg
    import orjson

    from webpipe.middleware.base import StepCall
    from webpipe.middleware.pg import PgMiddleware

    sql, arg = (ONE, 1) if rows == 1 else (MANY, rows)
    mw = PgMiddleware(Host())  # type: ignore[arg-type]
    os.environ["WEBPIPE_PG_ROWS_CTE"] = "1"  # read when a middleware is made
    mw_cte = PgMiddleware(Host())  # type: ignore[arg-type]
    del os.environ["WEBPIPE_PG_ROWS_CTE"]
    prepared = mw.prepare(sql, None)
    call = StepCall(name="pg", config=sql, args=([arg],), target="q")
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)  # W4's hand-written one
    # the middleware's pool returns connections without asyncpg's reset round trip
    quiet = await asyncpg.create_pool(url, min_size=1, max_size=4, reset=_no_reset)

    async def step() -> Any:
        return (await mw.run({}, prepared, call)).value

    async def step_cte() -> Any:
        return (await mw_cte.run({}, prepared, call)).value

    async def hand() -> Any:
        return [dict(r) for r in await pool.fetch(sql, arg)]

    cte = CTE.format(sql.replace("$1", "($1::int8)"))

    async def cte_mode() -> Any:
        async with quiet.acquire() as conn:
            return orjson.loads(await conn.fetchval(cte, arg))

    direct = sql.replace("$1", "($1::int8)")

    async def direct_mode() -> Any:
        async with quiet.acquire() as conn:
            records = await conn.fetch(direct, arg)
        return [dict(r.items()) for r in records]

    return {"step": step, "step-cte": step_cte, "hand": hand, "cte": cte_mode,
            "direct": direct_mode}


async def http_mode(name: str) -> Callable[[], Awaitable[Any]]:
    """W4 through the whole stack in-process (`http_inprocess.py`'s harness: uvicorn's
    protocol parsing the request bytes, the app, the response written to a transport that
    keeps it); `hand:W4` is the hand-written Starlette app."""
    import tempfile

    from http_inprocess import connected, hand_app, request_bytes, webpipe_app
    from workloads import W4

    workdir = Path(tempfile.mkdtemp(prefix="webpipe-pg-step-"))
    app, http = hand_app(W4, workdir) if name == "hand:W4" else webpipe_app(W4, workdir)
    request, transport, _protocol = connected(app, http, request_bytes(W4))

    async def one() -> Any:
        await request()
        assert transport.last.startswith(b"HTTP/1.1 200"), transport.last

    return one


async def _no_reset(conn: Any) -> None:
    pass


async def timed(run: Callable[[], Awaitable[Any]], number: int,
                profile: cProfile.Profile | None) -> tuple[float, float]:
    if profile is not None:
        profile.enable()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(number):
        await run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if profile is not None:
        profile.disable()
    return cpu / number * 1e6, wall / number * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=["step", "hand"])
    parser.add_argument("--number", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--profile", help="write a cProfile of the last mode here")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        from run import database_url

        os.environ["DATABASE_URL"] = database_url(HERE / ".work")
    url = os.environ["DATABASE_URL"]
    await seed(url, args.rows)
    runs = await modes(url, args.rows)
    for name in args.names:
        if name in ("W4", "hand:W4"):
            runs[name] = await http_mode(name)
    for run in runs.values():  # warm-up: pool, statement caches, first-use decisions
        for _ in range(200):
            await run()
    cpu: dict[str, list[float]] = {name: [] for name in args.names}
    wall: dict[str, list[float]] = {name: [] for name in args.names}
    profile = cProfile.Profile() if args.profile else None
    for index in range(args.rounds):  # modes alternated round by round
        for name in args.names:
            last = profile if name == args.names[-1] and index == args.rounds - 1 else None
            c, w = await timed(runs[name], args.number, last)
            cpu[name].append(c)
            wall[name].append(w)
    for name in args.names:
        print(f"{name:<8} cpu best {min(cpu[name]):6.1f} median "
              f"{statistics.median(cpu[name]):6.1f} us   wall best {min(wall[name]):6.1f} "
              f"median {statistics.median(wall[name]):6.1f} us", flush=True)
    if profile is not None:
        profile.dump_stats(args.profile)
    print("webpipe from", Path(sys.modules["webpipe"].__file__ or "").parent)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
