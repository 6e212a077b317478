"""The debugger in-process on a real port: the ASGI app driven by httpx, a DAP client over
TCP. Pause, `.async`, the errors a client gets, one client at a time, broken framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.debugger.dap_client import DapClient
from tests.hostile.harness import free_port
from webpipe.debugger import Debugger
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

ASYNC = """\
GET /fan
  |> jq: `{a: 1}` @async(one)
  |> jq: `{base: true}`
  |> join: one
  |> jq: `{got: .async.one.a}`

GET /plain
  |> jq: `{plain: .query.q}`
"""


@asynccontextmanager
async def debugged(tmp_path: Path, text: str,
                   ) -> AsyncIterator[tuple[DapClient, httpx.AsyncClient, str]]:
    env = program_from_text(text, base_dir=tmp_path)
    debugger = Debugger(free_port())
    app = create_app(build_served(env), debugger=debugger)
    await debugger.start()
    dap = await DapClient.connect(debugger.port)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield dap, http, str((tmp_path / "app.wp").resolve())
    finally:
        await dap.close()
        await debugger.stop()
        await env.aclose()


async def test_pause_the_next_request(tmp_path: Path) -> None:
    async with debugged(tmp_path, ASYNC) as (dap, http, app):
        await dap.start(app, [])
        threads = (await dap.request("threads"))["threads"]
        assert threads == [{"id": 1, "name": "next request"}]
        await dap.request("pause", threadId=1)
        paused = asyncio.ensure_future(http.get("/plain?q=x"))
        thread, event, frame = await dap.stopped()
        assert (event["reason"], frame["name"], frame["line"]) == ("pause", "GET /plain |> jq", 8)
        assert (await dap.state(frame["id"]))["query"]["value"] == '{"q":"x"}'
        await dap.request("continue", threadId=thread)
        assert (await paused).json() == {"plain": "x"}


async def test_async_scope_shows_pending_then_joined_tasks(tmp_path: Path) -> None:
    async with debugged(tmp_path, ASYNC) as (dap, http, app):
        await dap.start(app, [4, 5])
        paused = asyncio.ensure_future(http.get("/fan"))
        thread, _, frame = await dap.stopped()
        assert frame["line"] == 4
        assert await _async_scope(dap, frame["id"]) == [("one (pending)", "task")]
        await dap.request("continue", threadId=thread)
        _, _, frame = await dap.stopped()
        assert frame["line"] == 5
        [(name, kind)] = await _async_scope(dap, frame["id"])
        assert (name, kind) == ("one", "object")
        await dap.request("continue", threadId=thread)
        assert (await paused).json() == {"got": 1}


async def _async_scope(dap: DapClient, frame_id: int) -> list[tuple[str, str]]:
    scopes = (await dap.request("scopes", frameId=frame_id))["scopes"]
    ref = next(s["variablesReference"] for s in scopes if s["name"] == "Async")
    variables = (await dap.request("variables", variablesReference=ref))["variables"]
    return [(v["name"], v["type"]) for v in variables]


async def test_errors_a_client_gets(tmp_path: Path) -> None:
    async with debugged(tmp_path, ASYNC) as (dap, http, app):
        await dap.start(app, [8])
        paused = asyncio.ensure_future(http.get("/plain?q=one"))
        thread, _, frame = await dap.stopped()
        scopes = {s["name"]: s["variablesReference"]
                  for s in (await dap.request("scopes", frameId=frame["id"]))["scopes"]}
        context = await dap.call("setVariable", variablesReference=scopes["Context"],
                                 name="flags", value="{}")
        assert not context["success"] and "read-only" in context["message"]
        bad_jq = await dap.call("evaluate", expression=".query |||", frameId=frame["id"])
        assert not bad_jq["success"] and "jq" in bad_jq["message"].lower()
        hover = await dap.request("evaluate", expression="query", frameId=frame["id"],
                                  context="hover")
        assert hover["result"] == '{"q":"one"}' and hover["variablesReference"] > 0
        not_a_key = await dap.call("evaluate", expression="nothere", frameId=frame["id"],
                                   context="hover")
        assert not not_a_key["success"]  # no hover box over words that are not keys
        no_frame = await dap.call("evaluate", expression=".")
        assert not no_frame["success"] and "paused request" in no_frame["message"]
        unknown = await dap.call("restartFrame", frameId=frame["id"])
        assert not unknown["success"] and "not supported" in unknown["message"]
        await dap.request("continue", threadId=thread)
        assert (await paused).json() == {"plain": "one"}
        stale = await dap.call("variables", variablesReference=scopes["State"])
        assert not stale["success"] and "no longer valid" in stale["message"]


async def test_one_client_at_a_time_and_broken_framing(tmp_path: Path) -> None:
    async with debugged(tmp_path, ASYNC) as (dap, _http, _app):
        port = int(dap.writer.get_extra_info("peername")[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # refused: closed at once
        writer.close()
        await dap.request("disconnect")
    async with debugged(tmp_path, ASYNC) as (dap, _http, _app):
        dap.writer.write(b"Content-Length: nope\r\n\r\n{}")
        await asyncio.wait([dap.task], timeout=10)  # dropped: the client reads the end
        assert isinstance(dap.task.exception(), asyncio.IncompleteReadError)


async def test_without_inspect_there_is_no_hook() -> None:
    served = build_served(program_from_text(ASYNC))
    assert served.env.debugger is None
    assert served.plain  # the fast paths stay on
