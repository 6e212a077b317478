"""`--trace` (issue 21, outcome 1): a real `webpipe serve --trace` prints each request's
step timings as collapsed stacks between the reference's markers; the golden file holds the
block with the µs masked. The reference's bare form `webpipe app.wp --trace` does the same."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from aiohttp import web

from tests.golden import GOLDEN, assert_golden
from tests.hostile.harness import free_port, serve
from tests.support import loopback
from webpipe.tracing.collapsed import END, START

LIB = """pipeline shout =
  |> jq: `{ message: (.message | ascii_upcase) }`
"""

APP = """import "./lib.wp" as lib

pipeline greet =
  |> jq: `{ message: "hello " + .params.name }`
  |> pipeline: lib::shout

pipeline count =
  |> jq: `{ n: 1 }`

GET /hello/:name
  |> pipeline: greet
  |> fetch: `UPSTREAM/a` @async(a)
  |> fetch: `UPSTREAM/b` @async(b)
  |> pipeline: count @async(c)
  |> join: a, b, c
  |> if
    |> jq: `.async.c.n == 1`
  then:
    |> jq: `{ message: .message, a: .async.a.data.response.ok }`
  end
"""


def upstream() -> web.Application:
    async def answer(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/{name}", answer)
    return app


def masked_block(log: str) -> str:
    """The first trace block of a server log, every line's µs replaced by N."""
    start = log.index(START)
    block = log[start:log.index(END, start) + len(END)]
    return re.sub(r" \d+$", " N", block, flags=re.MULTILINE) + "\n"


async def wait_for_block(log: Path) -> str:
    for _ in range(200):  # the block is written when the response is sent
        text = log.read_text()
        if END in text:
            return text
        await asyncio.sleep(0.05)
    raise AssertionError("no trace block in the log: " + log.read_text())


async def test_serve_trace_prints_the_golden_collapsed_stacks(
        tmp_path: Path, update_goldens: bool) -> None:
    (tmp_path / "lib.wp").write_text(LIB)
    async with (loopback(upstream()) as base,
                serve(tmp_path, APP.replace("UPSTREAM", base), "--trace") as served):
        async with httpx.AsyncClient(base_url=served.base) as client:
            response = await client.get("/hello/world")
        assert response.json() == {"message": "HELLO WORLD", "a": True}
        text = await wait_for_block(served.log)
    assert f"\n\n{START}\n" in text and f"\n{END}\n\n" in text  # the reference's blank lines
    assert_golden(GOLDEN / "trace" / "fanout.txt", masked_block(text), update_goldens)
    lines = masked_block(text).splitlines()[1:-1]
    assert all(re.fullmatch(r"GET /hello/world(;[^; ]+)* N", line) for line in lines)


async def test_no_trace_flag_prints_nothing(tmp_path: Path) -> None:
    (tmp_path / "lib.wp").write_text(LIB)
    async with (loopback(upstream()) as base,
                serve(tmp_path, APP.replace("UPSTREAM", base)) as served):
        async with httpx.AsyncClient(base_url=served.base) as client:
            assert (await client.get("/hello/world")).status_code == 200
        await served.stop()
    assert START not in served.log.read_text()


@asynccontextmanager
async def bare(tmp_path: Path, *args: str) -> AsyncIterator[tuple[str, Path]]:
    """The reference's form `webpipe app.wp --trace --port P` in a process of its own."""
    port = free_port()
    log = tmp_path / "bare.log"
    with log.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "webpipe", str(tmp_path / "app.wp"), *args,
            "--port", str(port), stdout=out, stderr=asyncio.subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.kill()
        await proc.wait()


async def test_bare_form_takes_trace(tmp_path: Path) -> None:
    (tmp_path / "app.wp").write_text("GET /x\n  |> jq: `{ x: 1 }`\n")
    async with bare(tmp_path, "--trace") as (base, log), httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                response = await client.get(base + "/x")
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError(log.read_text())
        assert response.json() == {"x": 1}
        text = await wait_for_block(log)
    assert masked_block(text) == f"{START}\nGET /x;jq N\nGET /x N\n{END}\n"
