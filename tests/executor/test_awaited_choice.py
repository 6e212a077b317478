"""`StepPlan.run_async` (issue 23): a plain body awaits a step's middleware `run` directly
(`pipeline.run_awaited`), without the invoker's, the mock lookup's and the argument
resolution's coroutines. The differential: the same program served with the choice taken
and with it undone (every awaited step then through `invoke_step`), against real
PostgreSQL and a real upstream, on routes that exercise what `invoke_step` does around the
call: inline arguments (failing, or needing a sandbox worker), step errors, envelopes,
names given by the state, several awaited steps in one body, request bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiohttp import web

from tests.hostile.harness import free_port
from tests.middleware.pg_server import socket_dir
from webpipe.executor.env import Env
from webpipe.pgembed import default_data_dir, embedded_url
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

APP = r"""
pg userById = `SELECT id, name FROM awaited_users WHERE id = $1`
pg byName = `SELECT id, name FROM awaited_users WHERE name = $1`
pg allUsers = `SELECT id, name FROM awaited_users ORDER BY id`

GET /user/:id
  |> pg([.params.id]): userById
  |> jq: `.data.userById.rows[0]`

GET /args-fail/:id
  |> pg([(.params.id | tonumber)]): userById

GET /args-worker/:name
  |> pg([(.params.name | ascii_downcase)]): byName
  |> jq: `{ found: .data.byName.rows, down: (.params.name | test("A")) }`

GET /arity
  |> pg([1, 2]): userById

GET /sqlfail
  |> pg: `SELECT nothing FROM nowhere`
  |> jq: `{ never: true }`

GET /named
  |> jq: `{ resultName: "mine", kept: .params }`
  |> pg: allUsers

GET /unnamed
  |> pg: `SELECT 1 AS one`

GET /chain/:id
  |> jq: `{ id: .params.id }`
  |> pg([.id]): userById
  |> fetch: `UPSTREAM/ok`
  |> jq: `{ user: .data.userById.rows[0], up: .data.response, q: .query }`

GET /fetchfail
  |> fetch: `http://127.0.0.1:CLOSED/x`
  |> jq: `{ never: true }`

GET /fetch-named
  |> fetch: `UPSTREAM/ok`
  |> jq: `.data`

POST /users
  |> pg([.body.name]): `SELECT $1::text AS name`
  |> jq: `.data`
"""

URLS = ("/user/1", "/user/99", "/user/x", "/args-fail/x", "/args-fail/1", "/args-worker/ANN",
        "/args-worker/nobody", "/arity", "/sqlfail", "/named?a=1", "/unnamed",
        "/chain/2?z=3", "/chain/x", "/fetchfail", "/fetch-named")


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The embedded server tests/serve/test_answer_later.py uses (the same directory)."""
    return embedded_url(default_data_dir(tmp_path_factory.getbasetemp() / "awaiting"))


@pytest.fixture
async def program(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DROP TABLE IF EXISTS awaited_users")
        await conn.execute("CREATE TABLE awaited_users (id int PRIMARY KEY, name text)")
        await conn.execute("INSERT INTO awaited_users VALUES (1, 'ann'), (2, 'bo')")
    finally:
        await conn.close()
    monkeypatch.setenv("WEBPIPE_DISABLE_SYSTEM_PROXY", "1")

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"up": True})

    app = web.Application()
    app.router.add_get("/ok", ok)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    upstream = f"http://127.0.0.1:{runner.addresses[0][1]}"
    block = f'config pg {{\n  host: "{socket_dir(pg_url)}"\n  port: 5432\n}}\n'
    yield block + APP.replace("UPSTREAM", upstream).replace("CLOSED", str(free_port()))
    await runner.cleanup()


def _client(text: str, tmp_path: Path, direct: bool) -> tuple[httpx.AsyncClient, int, Env]:
    env = program_from_text(text, base_dir=tmp_path)
    chosen = [plan for plan in env.step_plans if plan.run_async is not None
              and plan.run_sync is None]
    if not direct:
        for plan in env.step_plans:  # undo the load-time choice: `invoke_step`
            plan.run_async = None
    app = create_app(build_served(env))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                             base_url="http://t"), len(chosen), env


async def test_awaited_steps_answer_like_invoked_ones(program: str, tmp_path: Path) -> None:
    (fast, chosen, fast_env), (slow, _, slow_env) = (_client(program, tmp_path, True),
                                                     _client(program, tmp_path, False))
    assert chosen == 12  # every pg and fetch step of the program
    try:
        for url in URLS:
            got, want = await fast.get(url), await slow.get(url)
            assert (got.status_code, got.headers["content-type"], got.content) == (
                want.status_code, want.headers["content-type"], want.content), url
        for body in (b'{"name": "cy"}', b'{"name": 5}', b'{}'):
            got, want = (await fast.post("/users", content=body),
                         await slow.post("/users", content=body))
            assert (got.status_code, got.content) == (want.status_code, want.content), body
        assert (await fast.get("/user/1")).json() == {"id": 1, "name": "ann"}
        assert (await fast.get("/args-worker/ANN")).json()["found"] == [
            {"id": 1, "name": "ann"}]
        assert (await fast.get("/args-fail/x")).status_code == 500
        assert (await fast.get("/named")).json()["data"]["mine"]["rows"][0] == {
            "id": 1, "name": "ann"}
        assert (await fast.get("/chain/2")).json()["up"] == {"up": True}
    finally:
        await fast_env.aclose()
        await slow_env.aclose()
