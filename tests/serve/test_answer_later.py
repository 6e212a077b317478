"""Differential test of the requests the connection runs in a task of its own (`lane.Later`,
`lane_cycle.LaneCycle`): routes that await (`pg`, `fetch`, `@async`/`join`, a `result`
branch) against real PostgreSQL and a real upstream, sent over real sockets with the lane on
and off; the response bytes must be the same (the `date` header aside), and the lane is
shown to have run the requests it may run. Then what is not a response: a bug in the app,
a client that leaves while its route awaits, a shutdown while a route awaits."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import uvicorn
from aiohttp import web

from tests.hostile.harness import free_port, serve
from tests.middleware.pg_server import socket_dir
from tests.serve.test_answer_now import Counting, exchange, get, post
from webpipe.pgembed import default_data_dir, embedded_url
from webpipe.program import program_from_text
from webpipe.protocol import BoundedHttpProtocol, set_lane
from webpipe.server import WebpipeApp, build_served, create_app

APP = r"""
pg userById = `SELECT id, name FROM later_users WHERE id = $1`
pg allUsers = `SELECT id, name FROM later_users ORDER BY id`
pg seen = `INSERT INTO later_seen (tag) VALUES ($1) RETURNING tag`

GET /user/:id
  |> pg([.params.id]): userById
  |> jq: `.data.userById.rows[0]`

GET /users
  |> pg: allUsers

GET /pgfail
  |> pg: `SELECT nothing FROM nowhere`

GET /page/:id
  |> pg([.params.id]): userById
  |> jq: `{ name: .data.userById.rows[0].name }`
  |> handlebars: `<p>{{name}}</p>`

GET /status/:id
  |> pg([.params.id]): userById
  |> jq: `{ n: (.data.userById.rows | length) }`
  |> result
    ok(201):
      |> jq: `{ made: .n }`

GET /hard
  |> pg: allUsers
  |> foreach data.nothing
    |> jq: `.`
  end

GET /close-header
  |> pg: allUsers
  |> jq: `{ ok: true, setHeaders: { Connection: "close" }, setCookies: ["k=v"] }`

GET /fetch
  |> fetch: `UPSTREAM/ok`
  |> jq: `{ got: .data.response }`

GET /fetchfail
  |> fetch: `http://127.0.0.1:CLOSED/x`

GET /async
  |> fetch: `UPSTREAM/ok` @async(a)
  |> pg: allUsers @async(b)
  |> join: `a, b`
  |> jq: `{ a: .async.a.data.response, b: (.async.b.data.rows | length) }`

GET /slow/:tag
  |> fetch: `UPSTREAM/slow`
  |> pg([.params.tag]): seen
  |> jq: `{ slow: .data.response, seen: .data.seen.rows }`

POST /users
  |> pg([.body.name]): `SELECT $1::text AS name`

GET /big
  |> pg: `SELECT repeat('x', 3000000) AS big`

GET /hello/:w
  |> jq: `{ hello: .params.w }`

config limits {
  maxBodyBytes: 200
}
"""


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An embedded server, started once per session (stopped by pgserver at exit); shared
    with tests/executor/test_awaited_choice.py (the same directory)."""
    return embedded_url(default_data_dir(tmp_path_factory.getbasetemp() / "awaiting"))


class Upstream:
    """An HTTP upstream: `/ok` at once, `/slow` after 0.3 s (`arrived` is set first)."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get("/ok", self.ok)
        self.app.router.add_get("/slow", self.slow)

    async def ok(self, request: web.Request) -> web.Response:
        return web.json_response({"up": True})

    async def slow(self, request: web.Request) -> web.Response:
        self.arrived.set()
        await asyncio.sleep(0.3)
        return web.json_response({"slow": True})


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, Upstream]]:
    up = Upstream()
    runner = web.AppRunner(up.app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", up
    await runner.cleanup()


@pytest.fixture
async def program(pg_url: str, upstream: tuple[str, Upstream], tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> str:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DROP TABLE IF EXISTS later_users, later_seen")
        await conn.execute("CREATE TABLE later_users (id int PRIMARY KEY, name text)")
        await conn.execute("INSERT INTO later_users VALUES (1, 'ann'), (2, '<b>bo</b>')")
        await conn.execute("CREATE TABLE later_seen (tag text)")
    finally:
        await conn.close()
    monkeypatch.setenv("WEBPIPE_DISABLE_SYSTEM_PROXY", "1")
    block = f'config pg {{\n  host: "{socket_dir(pg_url)}"\n  port: 5432\n}}\n'
    return block + APP.replace("UPSTREAM", upstream[0]).replace("CLOSED", str(free_port()))


@asynccontextmanager
async def serving(text: str, base: Path, **options: Any,
                  ) -> AsyncIterator[tuple[int, Counting, uvicorn.Server]]:
    """`text` served by a real uvicorn server with webpipe's protocol, the lane off."""
    app = create_app(build_served(program_from_text(text, base_dir=base)))
    assert isinstance(app, WebpipeApp)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=BoundedHttpProtocol,
                            lifespan="off", log_level="warning", **options)
    running = uvicorn.Server(config)
    task = asyncio.ensure_future(running.serve())
    while not running.started:
        await asyncio.sleep(0.01)
    try:
        yield port, Counting(app), running
    finally:
        set_lane(None)
        running.should_exit = True
        await task
        await app.served.env.aclose()


@pytest.fixture
async def served(program: str, tmp_path: Path,
                 ) -> AsyncIterator[tuple[int, Counting, uvicorn.Server]]:
    async with serving(program, tmp_path) as found:
        yield found


# (request bytes, responses expected, how the lane answers a single request: "later" (in a
# task), "now", "usual" (not at all), or None (mixed: not counted))
CASES: list[tuple[str, bytes, int, str | None]] = [
    ("pg, then jq", get("/user/1"), 1, "later"),
    ("HEAD", get("/user/1", method="HEAD"), 1, "later"),
    ("no such row", get("/user/99"), 1, "later"),
    ("rows", get("/users"), 1, "later"),
    ("a pg error envelope", get("/pgfail"), 1, "later"),
    ("html", get("/page/2"), 1, "later"),
    ("a result branch", get("/status/1?x=%20y"), 1, "later"),
    ("a hard error", get("/hard"), 1, "later"),
    ("a connection header", get("/close-header"), 1, "later"),
    ("fetch", get("/fetch"), 1, "later"),
    ("a fetch error envelope", get("/fetchfail"), 1, "later"),
    ("async and join", get("/async"), 1, "later"),
    ("a body", post("/users", b'{"name": "cy"}'), 1, "later"),
    ("a malformed body", post("/users", b'{"name": '), 1, "later"),
    ("a body over maxBodyBytes", post("/users", b'"' + b"x" * 300 + b'"'), 1, "later"),
    ("a body to a GET route", post("/user/1", b"{}"), 1, "usual"),
    ("a pure route", get("/hello/x"), 1, "now"),
    ("not found", get("/nothing"), 1, "usual"),
    ("health", get("/health"), 1, "usual"),
    ("connection close", get("/user/1", "Connection: close"), 1, "usual"),
    ("HTTP/1.0", get("/user/1", version="1.0"), 1, "usual"),
    ("pipelined", get("/user/1") + get("/user/2") + get("/users"), 3, None),
    ("pipelined, mixed", get("/hello/a") + get("/user/2") + get("/pgfail") + get("/hello/b")
     + post("/users", b'{"name": "dee"}') + get("/page/1"), 6, None),
    ("pipelined, then close", get("/fetch") + get("/user/1", "Connection: close"), 2, None),
    ("a connection header, pipelined", get("/close-header") + get("/user/1"), 1, None),
]


@pytest.mark.parametrize(("name", "raw", "answers", "how"), CASES,
                         ids=[case[0] for case in CASES])
async def test_the_connection_runs_awaiting_routes_as_the_app_does(
        served: tuple[int, Counting, uvicorn.Server], name: str, raw: bytes, answers: int,
        how: str | None) -> None:
    port, lane, _server = served
    set_lane(None)
    usual = await exchange(port, raw, answers)
    set_lane(lane)
    later = await exchange(port, raw, answers)
    assert later == usual
    assert all(r.startswith(b"HTTP/1.1 ") for r in usual)
    if how is not None:
        assert (lane.later, lane.given) == {"later": (1, 0), "now": (0, 1),
                                            "usual": (0, 0)}[how]
    elif answers > 1:
        assert lane.later >= 1  # at least the first request ran from the connection


async def until_closed(port: int, raw: bytes) -> bytes:
    """Send `raw` on one connection and read everything until the server closes it (the
    last request says `Connection: close`), `date` headers taken out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return re.sub(rb"(?im)^date: [^\r]*\r\n", b"", await asyncio.wait_for(reader.read(), 10))
    finally:
        writer.close()


CLOSE = "Connection: close"
WHOLE: list[tuple[str, bytes]] = [
    ("HEAD, then GET", get("/user/1", method="HEAD") + get("/page/1", method="HEAD")
     + get("/user/2", CLOSE)),
    ("GET after a connection header", get("/close-header") + get("/user/1", CLOSE)),
    ("a large answer", get("/big") + get("/big") + get("/user/1", CLOSE)),
    ("every kind", get("/user/1") + get("/hello/x", method="HEAD") + get("/fetchfail")
     + post("/users", b'{"name": "e"}') + get("/status/2", method="HEAD") + get("/hard", CLOSE)),
]


@pytest.mark.parametrize(("name", "raw"), WHOLE, ids=[case[0] for case in WHOLE])
async def test_the_connection_writes_every_byte_the_app_does(
        served: tuple[int, Counting, uvicorn.Server], name: str, raw: bytes) -> None:
    port, lane, _server = served
    set_lane(None)
    usual = await until_closed(port, raw)
    set_lane(lane)
    later = await until_closed(port, raw)
    assert later == usual
    assert usual.startswith(b"HTTP/1.1 200 ")
    assert lane.later >= 1


async def test_a_bug_in_the_app_is_logged_and_answered_as_uvicorn_does(
        served: tuple[int, Counting, uvicorn.Server], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    port, lane, _server = served
    app = lane.app

    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(app, "matched_response", broken)
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        set_lane(None)
        usual = await exchange(port, get("/user/1"), 1)
        set_lane(lane)
        later = await exchange(port, get("/user/1"), 1)
    assert later == usual
    assert usual[0].startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert lane.later == 1
    logged = [r for r in caplog.records if r.name == "uvicorn.error"]
    assert [r.getMessage() for r in logged] == ["Exception in ASGI application\n"] * 2
    assert all(r.exc_info and str(r.exc_info[1]) == "a bug of ours" for r in logged)


async def seen_tags(pg_url: str) -> set[str]:
    conn = await asyncpg.connect(pg_url)
    try:
        return {row["tag"] for row in await conn.fetch("SELECT tag FROM later_seen")}
    finally:
        await conn.close()


async def test_a_client_that_leaves_while_its_route_awaits(
        served: tuple[int, Counting, uvicorn.Server], pg_url: str) -> None:
    """As on the usual path, the route runs to its end (its `pg` insert happens) and the
    connection's loss costs nothing else: the next request is answered."""
    port, lane, _server = served
    for tag, on in (("usual", None), ("lane", lane)):
        set_lane(on)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get(f"/slow/{tag}"))
        await writer.drain()
        writer.close()
        for _ in range(200):  # polled: the route ends 0.3 s after the upstream is asked
            if tag in await seen_tags(pg_url):
                break
            await asyncio.sleep(0.05)
        assert tag in await seen_tags(pg_url)
        answered = await exchange(port, get("/user/1"), 1)
        assert answered[0].startswith(b"HTTP/1.1 200 ")
    assert lane.later == 2


async def test_a_shutdown_waits_for_a_route_that_awaits(
        program: str, upstream: tuple[str, Upstream], tmp_path: Path) -> None:
    """uvicorn's shutdown, while a route awaits its upstream: the answer is written whole,
    with `connection: close`, then the connection closes; the same bytes either way."""
    answers = []
    for use_lane in (False, True):
        up = upstream[1]
        up.arrived.clear()
        async with serving(program, tmp_path) as (port, lane, server):
            set_lane(lane if use_lane else None)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(get(f"/slow/stop{int(use_lane)}"))
            await writer.drain()
            await asyncio.wait_for(up.arrived.wait(), 10)
            server.should_exit = True
            answer = await asyncio.wait_for(reader.read(), 10)  # to the end: it closes
            writer.close()
            assert lane.later == int(use_lane)
        answers.append(answer.replace(b"stop1", b"stop0").split(b"\r\n", 2)[::2])
    assert answers[0] == answers[1]
    assert answers[0][0].startswith(b"HTTP/1.1 200 OK")
    assert b"\r\nconnection: close\r\n" in answers[0][1]


async def test_deadlines_wait_while_a_route_awaits_and_resume_after(
        served: tuple[int, Counting, uvicorn.Server], monkeypatch: pytest.MonkeyPatch,
        ) -> None:
    """No head or keep-alive deadline runs while a route awaits (0.3 s, past both); once
    answered, the idle connection is closed at the keep-alive deadline, as uvicorn does."""
    port, lane, _server = served
    monkeypatch.setattr(BoundedHttpProtocol, "header_timeout_s", 0.1)
    monkeypatch.setattr(BoundedHttpProtocol, "keep_alive_s", 0.2)
    loop = asyncio.get_running_loop()
    for tag, on in (("usual", None), ("lane", lane)):
        set_lane(on)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(get(f"/slow/deadline-{tag}"))
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert b"connection: close" not in head
            answered = loop.time()
            rest = await asyncio.wait_for(reader.read(), 10)  # the body, then the close
            assert rest.endswith(b"}")
            assert loop.time() - answered >= 0.1
        finally:
            writer.close()
    assert lane.later == 1


async def test_webpipe_serve_answers_a_route_that_awaits_through_a_sigterm(
        program: str, upstream: tuple[str, Upstream], tmp_path: Path) -> None:
    """A real `webpipe serve` (the lane set by its lifespan, uvicorn's access line off): a
    SIGTERM while a route awaits its upstream still gets the whole answer out, with
    `connection: close`, and the process then exits."""
    up = upstream[1]
    up.arrived.clear()
    block = program.split("\n}\n", 1)[0] + "\n}\n"  # `config pg` (checked at serve)
    slow = ("pg seen = `INSERT INTO later_seen (tag) VALUES ($1) RETURNING tag`\n\n"
            f"GET /slow/:tag\n  |> fetch: `{upstream[0]}/slow`\n"
            "  |> pg([.params.tag]): seen\n"
            "  |> jq: `{ slow: .data.response, seen: .data.seen.rows }`\n")
    async with serve(tmp_path, block + slow) as served:
        host, port = served.base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(get("/slow/sigterm"))
        await writer.drain()
        await asyncio.wait_for(up.arrived.wait(), 10)
        stopping = asyncio.ensure_future(served.stop())
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert await stopping < 5
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close" in head
    assert b"\r\nx-request-id: fixed-id" in head
    assert body == b'{"slow":{"slow":true},"seen":[{"tag":"sigterm"}]}'


async def test_with_limit_concurrency_every_request_goes_the_usual_way(
        program: str, tmp_path: Path) -> None:
    async with serving(program, tmp_path, limit_concurrency=50) as (port, lane, _server):
        set_lane(lane)
        answered = await exchange(port, get("/user/1") + get("/hello/x"), 2)
        assert answered[0].startswith(b"HTTP/1.1 200 ")
        assert (lane.later, lane.given) == (0, 0)
