"""Differential suite for `fetch`'s fast client (issue 23, spec/fetch.md "Fast client").

Every scenario runs through two `fetch` middlewares, one with the fast client and one with
it switched off (aiohttp only), against the same real loopback server, which answers with
exact bytes (status lines, repeated and mixed-case headers, empty, chunked, length-delimited
and close-delimited bodies, gzip and deflate, bodies at and past the cap, redirects, stalls,
refused, reset and half-closed connections, interim answers, garbage). The step's value, or
its StepError's type and message, must be the same byte for byte, and so must the requests
the server received. Scenarios the fast client serves also assert that it served them.
Each runs on asyncio's loop, and all of them once more on uvloop (`webpipe serve`'s loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support import SimpleHost
from webpipe.errors import StepError
from webpipe.middleware.base import StepCall
from webpipe.middleware.fetch import FetchMiddleware

Writer = asyncio.StreamWriter

Act = Callable[[Writer, bytes, "Server"], Awaitable[None]]


def reply(status: str, headers: list[tuple[str, str]], body: bytes = b"",
          length: bool = True) -> bytes:
    head = f"HTTP/1.1 {status}\r\n"
    lines = list(headers)
    if length:
        lines.append(("Content-Length", str(len(body))))
    head += "".join(f"{k}: {v}\r\n" for k, v in lines) + "\r\n"
    return head.encode("latin-1") + body


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


JSON_CT = [("Content-Type", "application/json")]
BIG = json.dumps([{"i": i, "s": "x" * 20} for i in range(12_000)]).encode()  # ~380 KB
WORDS = b'{"words": "' + b"lorem ipsum " * 2000 + b'"}'


def send(data: bytes) -> Act:
    async def act(writer: Writer, _request: bytes, _server: Server) -> None:
        writer.write(data)
    return act


def send_then_close(data: bytes) -> Act:
    async def act(writer: Writer, _request: bytes, _server: Server) -> None:
        writer.write(data)
        await writer.drain()
        writer.close()
    return act


def reset() -> Act:
    async def act(writer: Writer, _request: bytes, _server: Server) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    return act


def stall(first: bytes) -> Act:
    async def act(writer: Writer, _request: bytes, server: Server) -> None:
        writer.write(first)
        await server.done.wait()  # until the test ends
    return act


def redirect(status: int, location: str) -> Act:
    async def act(writer: Writer, _request: bytes, server: Server) -> None:
        target = location.replace("OTHER", server.other)
        writer.write(reply(f"{status} Moved", [("Location", target)], b"moved"))
    return act


def late() -> Act:
    async def act(writer: Writer, _request: bytes, _server: Server) -> None:
        await asyncio.sleep(0.3)
        writer.write(reply("200 OK", JSON_CT, b'{"late": true}'))
    return act


def echo() -> Act:
    """200 with the request it received as a JSON string (method, path, headers, body)."""
    async def act(writer: Writer, request: bytes, _server: Server) -> None:
        answer = reply("200 OK", JSON_CT, json.dumps(request.decode("latin-1")).encode())
        writer.write(answer.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
                     if request.startswith(b"HEAD ") else answer)
    return act


def once_then_close() -> Act:
    """Answer keep-alive, then close the idle connection shortly after."""
    async def act(writer: Writer, _request: bytes, _server: Server) -> None:
        writer.write(reply("200 OK", JSON_CT, b'{"n":1}'))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
    return act


ROUTES: dict[str, Act] = {
    "/json": send(reply("200 OK", JSON_CT, b'{"a": [1, 2.5, "x"], "b": null}')),
    "/text": send(reply("200 OK", [("Content-Type", "text/plain; charset=iso-8859-1")],
                        "caf\xe9 \xa3".encode("latin-1"))),
    "/utf16": send(reply("200 OK", [], "\ufeff{\"u\": 1}".encode("utf-16"))),
    "/badutf8": send(reply("200 OK", [("Content-Type", "text/plain")], b"ab\xff\xfecd")),
    "/repeated": send(reply("200 OK", [("X-A", "1"), ("x-a", "2"), ("Set-Cookie", "a=1"),
                                       ("Set-Cookie", "b=2"), ("MiXeD-CaSe", "v"),
                                       ("X-Bin", "caf\xe9"), ("Content-Type", "text/a"),
                                       ("Content-Type", "text/b; charset=utf-8")], b"r")),
    "/empty": send(reply("200 OK", [], b"")),
    "/nocontent": send(reply("204 No Content", [], b"", length=False)),
    "/chunked": send(reply("200 OK", [("Transfer-Encoding", "chunked"), *JSON_CT],
                           chunked(b'{"c"', b': [1,', b'2]}'), length=False)),
    "/eof": send_then_close(reply("200 OK", [("Connection", "close")], b"until the end",
                                  length=False)),
    "/eof-keep": send_then_close(reply("200 OK", [], b"no length, no close header",
                                       length=False)),
    "/gzip": send(reply("200 OK", [("Content-Encoding", "gzip"), *JSON_CT],
                        gzip.compress(WORDS))),
    "/gzip-chunked": send(reply("200 OK", [("Content-Encoding", "gzip"),
                                           ("Transfer-Encoding", "chunked")],
                                chunked(*(lambda z: (z[:10], z[10:40], z[40:]))(
                                    gzip.compress(WORDS))), length=False)),
    "/deflate": send(reply("200 OK", [("Content-Encoding", "deflate")],
                           zlib.compress(b"zlib-wrapped " * 50))),
    "/rawdeflate": send(reply("200 OK", [("Content-Encoding", "DEFLATE")],
                              (lambda c: c.compress(b"raw deflate " * 50) + c.flush())(
                                  zlib.compressobj(wbits=-15)))),
    "/badgzip": send(reply("200 OK", [("Content-Encoding", "gzip")], b"not gzip at all")),
    "/xgzip": send(reply("200 OK", [("Content-Encoding", "x-gzip")], gzip.compress(b"xg"))),
    "/br": send(reply("200 OK", [("Content-Encoding", "br")], b"\x0b\x02\x80hi\x03")),
    "/big": send(reply("200 OK", JSON_CT, BIG)),
    "/deep": send(reply("200 OK", JSON_CT, b"[" * 600 + b"]" * 600)),
    "/404": send(reply("404 Not Found", JSON_CT, b'{"missing": true}')),
    "/503": send(reply("503 Busy", [("Retry-After", "7")], b"later")),
    "/500": send(reply("500 Oops", [], b"")),
    "/r302": redirect(302, "/json"),
    "/r303": redirect(303, "/echo"),
    "/r307": redirect(307, "/echo"),
    "/r301": redirect(301, "/echo"),
    "/rrel": redirect(302, "json"),
    "/rabs": redirect(302, "http://OTHER/echo"),
    "/rhttps": redirect(302, "https://127.0.0.1:1/x"),
    "/rftp": redirect(302, "ftp://example.invalid/x"),
    "/rquoted": redirect(302, "/echo?q=a b&z=\u00e9"),
    "/rloop": redirect(302, "/rloop"),
    "/rnoloc": send(reply("302 Found", [], b"no location")),
    "/rbig": send(reply("302 Found", [("Location", "/json"), ("Content-Length", "999999")],
                        b"", length=False)),
    "/echo": echo(),
    "/slowhead": stall(b""),
    "/slowbody": stall(reply("200 OK", [("Content-Length", "100")], length=False)
                       + b"0123456789"),
    "/reset": reset(),
    "/close": send_then_close(b""),
    "/short": send_then_close(reply("200 OK", [("Content-Length", "100")], length=False)
                              + b"only ten b"),
    "/shortchunk": send_then_close(reply("200 OK", [("Transfer-Encoding", "chunked")], b"",
                                         length=False) + b"a\r\n0123456789\r\n5\r\nab"),
    "/interim": send(b"HTTP/1.1 100 Continue\r\n\r\n" + reply("200 OK", JSON_CT, b"[100]")),
    "/garbage": send_then_close(b"NOT HTTP AT ALL\r\n\r\n"),
    "/longheader": send(reply("200 OK", [("X-Long", "v" * 9000)], b"x")),
    "/idle": once_then_close(),
    "/late": late(),
}


@dataclass
class Server:
    """The scenario server: answers by path, records every request it read."""

    port: int = 0
    other: str = ""  # host:port of a second server (another origin)
    requests: list[bytes] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    writers: set[Writer] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                path = head.split(b" ")[1].decode().split("?")[0]
                await ROUTES.get(path, send(reply("418 Unknown", [], path.encode())))(
                    writer, request, self)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
        finally:
            self.writers.discard(writer)

    async def stop(self) -> None:
        self.done.set()
        for writer in list(self.writers):
            writer.close()
        for _ in range(100):  # the handlers see their connections closed and return
            if not self.writers:
                return
            await asyncio.sleep(0.01)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with servers() as main:
        yield main


@contextlib.asynccontextmanager
async def servers() -> AsyncIterator[Server]:
    main, other = Server(), Server()
    servers = [await asyncio.start_server(s.handle, "127.0.0.1", 0) for s in (main, other)]
    main.port = servers[0].sockets[0].getsockname()[1]
    other.port = servers[1].sockets[0].getsockname()[1]
    main.other = f"127.0.0.1:{other.port}"
    yield main
    for s in servers:
        s.close()
    await main.stop()
    await other.stop()


async def outcome(fetch: FetchMiddleware, args: tuple[Any, ...]) -> str:
    call = StepCall(name="fetch", config="", args=args, target="r")
    try:
        value = (await fetch.run({}, fetch.prepare("", None), call)).value
    except StepError as exc:
        return f"StepError {exc.error_type}: {exc.message}"
    return json.dumps(value, ensure_ascii=False)


def middlewares() -> tuple[FetchMiddleware, FetchMiddleware]:
    host = SimpleHost(configs={"limits": {"fetchMaxBytes": 200_000}})
    fast, slow = FetchMiddleware(host), FetchMiddleware(host)
    slow.fast_enabled = False
    return fast, slow


async def compare(server: Server, path: str, options: dict[str, Any] | None = None,
                  served: bool = True, url: str | None = None) -> str:
    """Run `path` through both clients; the same outcome and requests. Returns it."""
    target = url or f"http://127.0.0.1:{server.port}{path}"
    args: tuple[Any, ...] = (target, options) if options is not None else (target,)
    fast, slow = middlewares()
    try:
        results, requests = [], []
        for fetch in (fast, slow):
            server.requests.clear()
            results.append(await outcome(fetch, args))
            requests.append(list(server.requests))
        assert results[0] == results[1]
        assert requests[0] == requests[1]
        assert fast.fast_enabled and slow._fast is None
        used = fast._fast is not None and bool(fast._fast.pools)  # a pool: it was asked
        assert used == served, f"fast client {'not ' if served else ''}used"
        return results[0]
    finally:
        await fast.aclose()
        await slow.aclose()


ANSWERS = ["/json", "/text", "/utf16", "/badutf8", "/repeated", "/empty", "/nocontent",
           "/chunked", "/eof", "/eof-keep", "/gzip", "/gzip-chunked", "/deflate",
           "/rawdeflate", "/badgzip", "/xgzip", "/br", "/big", "/deep", "/404", "/503",
           "/500", "/interim", "/garbage", "/longheader", "/short", "/shortchunk"]


@pytest.mark.parametrize("path", ANSWERS)
async def test_answers_are_read_the_same(server: Server, path: str) -> None:
    await compare(server, path)


CAPS = [  # (path, cap, whether the body is past it)
    ("/big", len(BIG), False), ("/big", len(BIG) - 1, True), ("/gzip", len(WORDS), False),
    ("/gzip", len(WORDS) - 1, True), ("/gzip-chunked", 100, True), ("/chunked", 12, False),
    ("/chunked", 11, True), ("/eof", 13, False), ("/eof", 12, True), ("/empty", 0, False),
    ("/json", 0, True), ("/404", 5, True), ("/r302", 31, False), ("/r302", 30, True),
]


@pytest.mark.parametrize(("path", "cap", "past"), CAPS)
async def test_the_cap_at_and_past_it(server: Server, path: str, cap: int, past: bool) -> None:
    result = await compare(server, path, {"maxBytes": cap})
    assert result.startswith("StepError responseTooLarge") == past


REQUESTS = [
    {"method": "POST", "body": {"a": [1, "é"], "b": None}},
    {"method": "post", "body": "text", "headers": {"Content-Type": "text/plain"}},
    {"method": "PUT"}, {"method": "PATCH", "body": None}, {"method": "DELETE"},
    {"method": "OPTIONS"}, {"method": "GET", "headers": {"X-Ünïcode": "no", "X-V": "café ☕"}},
    {"headers": {"Accept": "text/html", "Accept-Encoding": "identity",
                 "Authorization": "Bearer t", "X-Empty": ""}},
    {"headers": {"user-agent": "mine/2", "X-A": "1", "x-a": "2"}}, {"method": "HEAD"},
    {"method": "head", "body": {"x": 1}}, {"method": "GET", "body": [1, 2]},
    {"headers": {"X-Sp": "  padded\t ", "X-Tab": "a\tb"}},
]


@pytest.mark.parametrize("options", REQUESTS)
async def test_requests_go_out_the_same(server: Server, options: dict[str, Any]) -> None:
    echoed = json.loads(await compare(server, "/echo?x=1&y=2", options))
    assert echoed["status"] == 200


AIOHTTP_ONLY = [  # (path, options): requests the fast client leaves to aiohttp
    ("/echo", {"method": "TRACE"}), ("/echo", {"method": "PURGE"}),
    ("/echo", {"query": {"q": "a b"}}), ("/echo", {"headers": {"Host": "example.com"}}),
    ("/echo", {"headers": {"Cookie": "a=1"}}), ("/echo?q=a%20b", {}), ("/a/../echo", {}),
    ("/echo#frag", {}),
]
# (and URLs: https, an upper-case or punycode host name, `127.1`, a final dot; see eligible)


@pytest.mark.parametrize(("path", "options"), AIOHTTP_ONLY)
async def test_what_the_fast_client_leaves_to_aiohttp(server: Server, path: str,
                                                      options: dict[str, Any]) -> None:
    await compare(server, path, options, served=False)


REDIRECTS = [
    ("/r302", {}), ("/r303", {"method": "POST", "body": {"k": 1}}),
    ("/r307", {"method": "POST", "body": {"k": 1}}), ("/r301", {"method": "POST", "body": 1}),
    ("/r301", {"method": "PUT", "body": 2}), ("/rrel", {}),
    ("/rabs", {"headers": {"Authorization": "secret"}}), ("/rhttps", {}), ("/rftp", {}),
    ("/rquoted", {}), ("/rloop", {}), ("/rnoloc", {}), ("/rbig", {"maxBytes": 100}),
]


@pytest.mark.parametrize(("path", "options"), REDIRECTS)
async def test_redirects_follow_the_same_rules(server: Server, path: str,
                                               options: dict[str, Any]) -> None:
    await compare(server, path, options)


FAILURES = [("/slowhead", {"timeout": 1}), ("/slowbody", {"timeout": 1}), ("/reset", {}),
            ("/reset", {"method": "POST"}), ("/close", {}), ("/close", {"method": "POST"}),
            ("/json", {"timeout": 0})]


@pytest.mark.parametrize(("path", "options"), FAILURES)
async def test_failures_give_the_same_envelopes(server: Server, path: str,
                                                options: dict[str, Any]) -> None:
    result = await compare(server, path, options, served=options.get("timeout") != 0)
    assert "errors" in result


@pytest.mark.parametrize("tail", ["", "?x=1", "/?x=1", "/a/b/?q=/x?y", "/~u/a-b_c.d;p=1,2"])
async def test_urls_go_out_the_same(server: Server, tail: str) -> None:
    await compare(server, "", url=f"http://127.0.0.1:{server.port}{tail}")


@pytest.mark.parametrize("path", ["/json", "/r302", "/rabs", "/echo", "/short"])
async def test_host_names_go_through_the_same_connector(server: Server, path: str) -> None:
    """`localhost`: aiohttp's resolver (both loopback addresses, the DNS cache) and its
    connect, in both clients; the `Host` header and redirects by name."""
    await compare(server, "", {"headers": {"Authorization": "a"}},
                  url=f"http://localhost:{server.port}{path}")


async def test_a_name_that_does_not_resolve(server: Server) -> None:
    result = await compare(server, "", url="http://does-not-exist.invalid/x")
    assert "Cannot connect to host does-not-exist.invalid:80" in result


async def test_connection_refused(server: Server) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for host in ("127.0.0.1", "localhost"):
        result = await compare(server, "", url=f"http://{host}:{port}/x")
        assert f"Cannot connect to host {host}:{port}" in result


async def test_keep_alive_reuse_after_the_server_closed_the_idle_connection(
        server: Server) -> None:
    url = f"http://127.0.0.1:{server.port}/idle"
    fast, slow = middlewares()
    try:
        for fetch in (fast, slow):
            server.requests.clear()
            first = await outcome(fetch, (url,))
            await asyncio.sleep(0.3)  # the server has closed the pooled connection by now
            second = await outcome(fetch, (url,))
            assert first == second and '"n": 1' in first
            assert len(server.requests) == 2
    finally:
        await fast.aclose()
        await slow.aclose()


async def test_pooled_connections_are_reused(server: Server) -> None:
    fast, _slow = middlewares()
    try:
        url = f"http://127.0.0.1:{server.port}/json"
        await asyncio.gather(*(outcome(fast, (url,)) for _ in range(20)))
        assert fast._fast is not None
        opened = len(fast._fast.pools[("127.0.0.1", server.port)])
        for _ in range(5):
            await asyncio.gather(*(outcome(fast, (url,)) for _ in range(20)))
        assert len(fast._fast.pools[("127.0.0.1", server.port)]) == opened <= 20
        # the connections it opened through aiohttp's connector are not counted there as
        # acquired (else its limit of 1000 would block once that many had been opened)
        assert fast._session is not None
        assert not fast._session.connector._acquired  # type: ignore[union-attr]
    finally:
        await fast.aclose()
        await _slow.aclose()


async def test_a_cancelled_request_never_leaves_its_connection_in_the_pool(
        server: Server) -> None:
    """`@hedge` and `@timeout` cancel a fetch mid-answer: the half-read connection closes."""
    fast, slow = middlewares()
    try:
        url = f"http://127.0.0.1:{server.port}/slowbody"
        task = asyncio.ensure_future(outcome(fast, (url,)))
        for _ in range(200):  # until the answer's head has arrived
            await asyncio.sleep(0.01)
            if fast._fast is not None and fast._fast.busy and len(server.requests) == 1:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fast._fast is not None and fast._fast.busy == 0
        assert all(not pool for pool in fast._fast.pools.values())
        json_url = f"http://127.0.0.1:{server.port}/json"
        assert await outcome(fast, (json_url,)) == await outcome(slow, (json_url,))
    finally:
        await fast.aclose()
        await slow.aclose()


async def test_requests_past_the_limit_wait_their_turn(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from webpipe.middleware import fetch_fast

    monkeypatch.setattr(fetch_fast, "LIMIT", 2)
    fast, slow = middlewares()
    try:
        url = f"http://127.0.0.1:{server.port}/json"
        expected = await outcome(slow, (url,))
        waiting = [asyncio.ensure_future(outcome(fast, (url,))) for _ in range(3)]
        for _ in range(200):
            await asyncio.sleep(0)
            if fast._fast is not None and len(fast._fast.queue) == 1:
                break
        assert fast._fast is not None and fast._fast.busy == 2 and len(fast._fast.queue) == 1
        waiting[2].cancel()  # a waiter cancelled in the queue is skipped, not handed a turn
        results = await asyncio.gather(*waiting[:2],
                                       *(outcome(fast, (url,)) for _ in range(6)))
        assert results == [expected] * 8
        assert waiting[2].cancelled()
        assert fast._fast is not None and fast._fast.busy == 0
        assert len(fast._fast.pools[("127.0.0.1", server.port)]) <= 2
    finally:
        await fast.aclose()
        await slow.aclose()


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "WEBPIPE_FETCH_AIOHTTP"])
async def test_a_proxy_or_the_opt_out_leaves_every_request_to_aiohttp(
        server: Server, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:1" if variable == "HTTP_PROXY" else "")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    fetch = FetchMiddleware(SimpleHost())
    try:
        result = await outcome(fetch, (f"http://127.0.0.1:{server.port}/json",))
        assert '"status": 200' in result
        assert fetch._fast is None
    finally:
        await fetch.aclose()


def test_every_scenario_on_uvloop() -> None:
    import uvloop

    async def scenarios() -> None:
        async with servers() as server:
            for path in ANSWERS:
                await compare(server, path)
            for path, cap, _past in CAPS:
                await compare(server, path, {"maxBytes": cap})
            for options in REQUESTS:
                await compare(server, "/echo?x=1&y=2", options)
            for path, options in AIOHTTP_ONLY:
                await compare(server, path, options, served=False)
            for path, options in REDIRECTS + FAILURES:
                await compare(server, path, options, served=options.get("timeout") != 0)

    uvloop.run(scenarios())


async def test_a_request_in_flight_when_the_session_closes_does_not_pool_its_connection(
        server: Server) -> None:
    fast, slow = middlewares()
    try:
        task = asyncio.ensure_future(outcome(fast, (f"http://127.0.0.1:{server.port}/late",)))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if server.requests:
                break
        client = fast._fast
        assert client is not None and client.busy == 1
        await fast.aclose()
        assert '"late": true' in await task
        assert client.closed and not any(client.pools.values())
    finally:
        await fast.aclose()
        await slow.aclose()
