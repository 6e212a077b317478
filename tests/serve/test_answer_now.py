"""Differential test of the answer given from the connection (`WebpipeApp.answer_now`,
`webpipe.protocol`): every request is sent over a real socket to a real uvicorn server with
the lane on and with it off, and the response bytes must be the same (the `date` header
aside). The lane is also shown to have answered the requests it may answer, so the
comparison cannot pass by never taking it."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.hostile.harness import free_port
from webpipe.lane import Later
from webpipe.program import program_from_text
from webpipe.protocol import BoundedHttpProtocol, set_lane
from webpipe.server import WebpipeApp, build_served, create_app

APP = r"""
GET /hello/:w
  |> jq: `{ hello: .params.w, q: .query }`

GET /page/:w
  |> jq: `{ title: "Hi", name: .params.w }`
  |> handlebars: `<h1>{{title}}, {{name}}</h1>`

GET /three/:n
  |> jq: `{ n: .params.n }`
  |> jq: `{ n: (.n * 2), p: .params }`
  |> jq: `{ result: (.n + 1), p: .p }`

GET /libjq/:w
  |> jq: `{ down: (.params.w | ascii_downcase), has: (.params.w | test("a")) }`

GET /fails/:w
  |> jq: `{ x: (.params.w | tonumber) }`
  |> jq: `{ y: .x, headers: .headers }`

GET /cookies
  |> jq: `{ ok: true, setCookies: ["a=1; HttpOnly"], setHeaders: { "X-Extra": "yes" } }`

GET /cached/:w
  |> cache: `ttl: 600`
  |> jq: `{ hello: .params.w }`

GET /everything
  |> jq: `.`

GET /typed
  |> jq: `{ content_type: "text/plain" }`

POST /hello/:w
  |> jq: `{ posted: .params.w }`

GET /lua/:n
  |> lua: `local out = {} for i = 1, request.params.n do out[i] = i * i end
           return { squares = out }`

GET /lua-fails
  |> lua: `error("no")`

POST /echo
  |> jq: `{ got: .body, ct: .content_type, m: .method }`

PUT /echo/:id
  |> jq: `{ id: .params.id, got: .body }`

DELETE /echo/:id
  |> jq: `{ gone: .params.id, got: .body }`

config limits {
  maxBodyBytes: 3000
  maxJsonDepth: 8
}
"""


@dataclass
class Counting:
    """A lane that counts the answers it gave now, and the requests it ran later (in a task
    of the connection's, `lane_cycle.py`)."""

    app: WebpipeApp
    given: int = 0
    later: int = 0

    def answer_now(self, scope: dict[str, Any], body: bytes) -> Any:
        found = self.app.answer_now(scope, body)
        self.given += isinstance(found, tuple)
        self.later += isinstance(found, Later)
        return found

    async def serve_later(self, later: Later, write: Any) -> None:
        await self.app.serve_later(later, write)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[int, Counting]]:
    public = tmp_path / "public"
    (public / "hello").mkdir(parents=True)
    (public / "static.txt").write_text("a file\n")
    (public / "hello" / "shadowed").write_text("the file wins over GET /hello/:w\n")
    app = create_app(build_served(program_from_text(APP, base_dir=tmp_path)))
    assert isinstance(app, WebpipeApp)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=BoundedHttpProtocol,
                            lifespan="off", log_level="warning")
    running = uvicorn.Server(config)
    task = asyncio.ensure_future(running.serve())
    while not running.started:
        await asyncio.sleep(0.01)
    try:
        yield port, Counting(app)
    finally:
        set_lane(None)
        running.should_exit = True
        await task


async def exchange(port: int, raw: bytes, answers: int) -> list[bytes]:
    """Send `raw` on one connection and read `answers` responses (by content-length)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        out = []
        for _ in range(answers):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            is_head = raw.startswith(b"HEAD")
            body = b"" if is_head or length is None else await asyncio.wait_for(
                reader.readexactly(int(length.group(1))), 10)
            out.append(re.sub(rb"(?im)^date: [^\r]*\r\n", b"", head) + body)
        return out
    finally:
        writer.close()


def get(path: str, *extra: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: t", "X-Request-Id: fixed-id", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(path: str, body: bytes, *extra: str, method: str = "POST",
         content_type: str = "application/json") -> bytes:
    head = get(path, f"Content-Type: {content_type}", f"Content-Length: {len(body)}", *extra,
               method=method)
    return head + body


DEEP = b"[" * 20 + b"]" * 20


# (request bytes, responses expected, whether the lane may answer every one of them)
CASES: list[tuple[str, bytes, int, bool]] = [
    ("jq", get("/hello/w%20orld?x=1&y=two"), 1, True),
    ("head", get("/hello/abc", method="HEAD"), 1, True),
    ("handlebars", get("/page/%3Cb%3E"), 1, True),
    ("three steps", get("/three/7"), 1, True),
    ("libjq, in a worker", get("/libjq/BaNaNa"), 1, False),
    ("cookies and headers", get("/cookies"), 1, True),
    ("whole request", get("/everything?a=1", "Cookie: c=2", "X-Forwarded-For: 10.0.0.9"), 1,
     True),
    ("other content type", get("/typed"), 1, True),
    ("an error envelope", get("/fails/abc"), 1, False),
    ("a static file", get("/static.txt"), 1, False),
    ("a static file over a route", get("/hello/shadowed"), 1, False),
    ("lua", get("/lua/5"), 1, True),
    ("lua fails", get("/lua-fails"), 1, False),
    ("not found", get("/nothing"), 1, False),
    ("health", get("/health"), 1, False),
    ("a POST without a body", get("/hello/p", "Content-Length: 0", method="POST"), 1, True),
    ("a POST, no length", get("/hello/p", method="POST"), 1, True),
    ("a JSON body", post("/echo", b'{"a": [1, 2.5, "x"], "b": null}'), 1, True),
    ("a form body", post("/echo", b"a=1&b=two+words&c=%41",
                         content_type="application/x-www-form-urlencoded"), 1, True),
    ("a text body", post("/echo", b"plain text", content_type="text/plain"), 1, True),
    ("PUT", post("/echo/7", b'{"v": 1}', method="PUT"), 1, True),
    ("DELETE", post("/echo/8", b"{}", method="DELETE"), 1, True),
    ("malformed JSON", post("/echo", b'{"a": '), 1, False),
    ("JSON too deep", post("/echo", DEEP), 1, False),
    ("a body over maxBodyBytes", post("/echo", b'"' + b"x" * 3100 + b'"'), 1, False),
    ("a body over the lane's size", post("/echo", b'"' + b"x" * 70_000 + b'"'), 1, False),
    ("a chunked body", get("/echo", "Content-Type: application/json",
                           "Transfer-Encoding: chunked", method="POST") + b"2\r\n{}\r\n0\r\n\r\n",
     1, False),
    ("an expectation", post("/echo", b"{}", "Expect: 100-continue"), 1, False),
    ("pipelined posts", post("/echo", b"[1]") + post("/echo", b"[2]") + get("/hello/z"), 3,
     True),
    ("a GET with a body", get("/hello/b", "Content-Length: 0"), 1, False),
    ("connection close", get("/hello/c", "Connection: close"), 1, False),
    ("HTTP/1.0", get("/hello/d", version="1.0"), 1, False),
    ("pipelined", get("/hello/e") + get("/three/2") + get("/page/f"), 3, True),
    ("pipelined, mixed", get("/hello/g") + get("/fails/x") + get("/hello/h"), 3, False),
]


@pytest.mark.parametrize(("name", "raw", "answers", "lane_answers"), CASES,
                         ids=[case[0] for case in CASES])
async def test_the_connection_answers_as_the_app_does(
        served: tuple[int, Counting], name: str, raw: bytes, answers: int,
        lane_answers: bool) -> None:
    port, lane = served
    set_lane(None)
    usual = await exchange(port, raw, answers)
    set_lane(lane)
    now = await exchange(port, raw, answers)
    assert now == usual
    assert all(r.startswith(b"HTTP/1.1 ") for r in usual)
    if lane_answers:
        assert lane.given == answers
    elif answers == 1:
        assert lane.given == 0


async def test_a_body_that_comes_after_its_head_is_answered_the_usual_way(
        served: tuple[int, Counting]) -> None:
    port, lane = served
    set_lane(lane)
    body = b'{"late": true}'
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        raw = post("/echo", body)
        writer.write(raw[:-len(body)])  # the head, then the body in two parts
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(body[:5])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(body[5:])
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        answer = await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 ")
    assert answer == b'{"got":{"late":true},"ct":"application/json","m":"POST"}'
    assert lane.given == 0


async def test_a_cache_hit_is_answered_from_the_connection(
        served: tuple[int, Counting]) -> None:
    port, lane = served
    set_lane(lane)
    first = await exchange(port, get("/cached/zed"), 1)
    assert lane.given == 0  # a miss stores the answer when the pipeline ends: the usual path
    given = lane.given
    second = await exchange(port, get("/cached/zed"), 1)
    assert lane.given == given + 1
    set_lane(None)
    third = await exchange(port, get("/cached/zed"), 1)
    assert first == second == third
    assert third[0].endswith(b'\r\n\r\n{"hello":"zed"}')


class Broken:
    """A lane with a bug."""

    def answer_now(self, scope: dict[str, Any], body: bytes) -> Any:
        raise RuntimeError("a bug in the lane")


async def test_a_failing_lane_is_logged_and_the_usual_path_answers(
        served: tuple[int, Counting], caplog: pytest.LogCaptureFixture) -> None:
    port, _lane = served
    set_lane(None)
    usual = await exchange(port, get("/hello/x"), 1)
    set_lane(Broken())
    with caplog.at_level(logging.ERROR, logger="webpipe.connections"):
        answered = await exchange(port, get("/hello/x"), 1)
    assert answered == usual
    assert "answering GET /hello/x from the connection failed" in caplog.text
    assert "a bug in the lane" in caplog.text
