"""`fetch`'s fast client: pooled HTTP/1.1 on httptools' parser for the plain requests.

aiohttp costs ~75-85 µs of CPU per pooled GET; this client does the same GET in ~25 µs
(`benchmarks/fetch_clients.py`, spec/decisions.md "fetch's fast client"). It serves only
requests whose every effect it reproduces from aiohttp: a plain `http://` URL with an IPv4
literal host and a path and query that aiohttp sends unchanged, no `query` option, no
system proxy, a method aiohttp sends the same way, and no header that aiohttp would treat
specially. `eligible()` decides that per request with a regular expression and a few set
look-ups; everything else goes through aiohttp. What goes out is byte for byte what aiohttp
sends (`Host`, the caller's headers, `Accept`, `Accept-Encoding`, `Content-Length`, the
default `Content-Type` of a body-less POST), and what comes back is read as aiohttp reads
it: the capped read, gzip/deflate through aiohttp's own decompressor, redirects by its
rules, one retry of an idempotent request whose connection dropped, and errors carrying
the texts aiohttp's exceptions would. `tests/middleware/test_fetch_fast_diff.py` runs every
scenario through both clients against real loopback servers and compares the results.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httptools
from aiohttp.client import _has_no_authority  # how aiohttp reads "http:/path"
from aiohttp.compression_utils import HAS_BROTLI, HAS_ZSTD, ZLibDecompressor
from aiohttp.helpers import parse_content_type
from yarl import URL

# Path and query characters yarl leaves as they are (no requoting, no dot segments: those
# are refused below); `%` only as an upper-case escape of a character yarl would not decode.
_URL = re.compile(r"http://((?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d"
                  r"|[1-9]?\d)){3})(?::([1-9]\d{0,4}))?((?:/[A-Za-z0-9\-_~!$&'()*+,;=:@]*)*"
                  r"(?:\?[A-Za-z0-9\-_~!$&'()*+,;=:@/?]+)?)")
_DOTS = re.compile(r"/\.")  # `/.` may start a dot segment, which yarl would resolve
# Methods aiohttp frames like this: HEAD's body-less answer needs the parser told (httptools
# cannot be), CONNECT and unknown methods are left to aiohttp.
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "OPTIONS"})
_POST_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BODY_LESS = frozenset({"GET", "OPTIONS"})  # aiohttp adds no `Content-Length: 0` to these
# Header names aiohttp sets, replaces or acts on: a request carrying one goes through it.
_RESERVED = frozenset({"host", "content-length", "transfer-encoding", "connection", "expect",
                       "upgrade", "te", "content-encoding", "proxy-authorization", "cookie"})
USABLE = not (HAS_BROTLI or HAS_ZSTD)  # else aiohttp's Accept-Encoding would differ
_MAX_LINE = 8190  # aiohttp's header line and field limits


@dataclass(frozen=True, slots=True)
class Target:
    """Where an eligible request goes: the pool key, the `Host` header, the request target."""

    host: str
    port: int
    authority: str
    path: str


def eligible(url: str, method: str, headers: Mapping[str, str] | None,
             has_query: bool) -> Target | None:
    """The request's target when the fast client sends it as aiohttp would, else None."""
    if has_query or method not in _METHODS or not url.startswith("http://"):
        return None
    match = _URL.fullmatch(url)
    if match is None or _DOTS.search(url, 7) is not None:
        return None
    if headers and not _RESERVED.isdisjoint(headers):
        return None
    host, port_text, path = match.groups()
    port = int(port_text) if port_text else 80
    if port > 65535:
        return None
    authority = host if port == 80 else f"{host}:{port}"
    return Target(host, port, authority, path or "/")


def request_head(target: Target, method: str, headers: Mapping[str, str] | None,
                 body: bytes | None) -> bytes:
    """The request line and headers in aiohttp's order (ClientRequest.send)."""
    lines = [f"{method} {target.path} HTTP/1.1\r\nHost: {target.authority}\r\n"]
    given = headers or {}
    lines.extend(f"{name}: {value}\r\n" for name, value in given.items())
    if "accept" not in given:
        lines.append("Accept: */*\r\n")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    if "user-agent" not in given:
        lines.append("User-Agent: Python/3 aiohttp\r\n")  # not reached: fetch always sets one
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n")
    elif method not in _BODY_LESS:
        lines.append("Content-Length: 0\r\n")
    if method in _POST_METHODS and "content-type" not in given:
        lines.append("Content-Type: application/octet-stream\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")


class Disconnected(Exception):
    """The connection ended before the answer's headers (aiohttp's ServerDisconnectedError)."""


class PayloadError(Exception):
    """The connection ended inside the body, or the body could not be decoded."""


class TooLarge(Exception):
    """More than the cap: announced by Content-Length or counted while reading."""


@dataclass(slots=True)
class Answer:
    """One response as the fetch step reads it."""

    status: int = 0
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: bytes) -> str | None:
        """The first value of `name` (lower case), as aiohttp's `headers.get` gives it."""
        for key, value in self.raw_headers:
            if key.lower() == name:
                return value.decode("utf-8", "surrogateescape")
        return None

    @property
    def charset(self) -> str | None:
        raw = self.header(b"content-type")
        if raw is None:
            return None
        return parse_content_type(raw)[1].get("charset")


# What aiohttp's exceptions would say (their `str()`, which the envelopes carry).
DISCONNECTED = "Server disconnected"
_SHORT_BODY = {  # the connection ended inside a body of this framing
    True: "Response payload is not completed: <TransferEncodingError: 400, message="
          "'Not enough data to satisfy transfer length header.'>",
    False: "Response payload is not completed: <ContentLengthError: 400, message="
           "'Not enough data to satisfy content length header.'>",
}
_NO_BODY_STATUSES = frozenset({204, 304})
_CHUNK = 2**16  # decompressed bytes per step, so a gzip bomb stops near the cap


class Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time, its answer read into `answer`."""

    def __init__(self, pool: list[Conn]) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.answer = Answer()
        self.cap = 0
        self.size = 0
        self.headed = False  # the final answer's headers are in
        self.chunked = False
        self.delimited = False  # Content-Length or chunked: else the body ends at EOF
        self.inflate: ZLibDecompressor | None = None
        self.encoding = ""
        self.pieces: list[bytes] = []
        self.inflate_started = False
        self.idle_since = 0.0

    def start(self, waiter: asyncio.Future[Answer], cap: int) -> None:
        self.waiter, self.cap, self.size = waiter, cap, 0
        self.answer, self.pieces, self.headed = Answer(), [], False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(PayloadError(f"400, message={str(exc)!r}") if self.headed
                      else Disconnected(f"400, message={str(exc)!r}"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.answer.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # interim: aiohttp waits for the next
            self.answer.raw_headers = []
            return
        answer = self.answer
        answer.status, self.headed = status, True
        if status in REDIRECT_STATUSES and (answer.header(b"location")
                                            or answer.header(b"uri")):
            self.finish(False)  # aiohttp follows without reading this body
            return
        length = answer.header(b"content-length")
        self.chunked = (answer.header(b"transfer-encoding") or "").lower().endswith("chunked")
        self.delimited = length is not None or self.chunked or status in _NO_BODY_STATUSES
        if length is not None and int(length) > self.cap:
            self.fail(TooLarge())
            return
        encoding = (answer.header(b"content-encoding") or "").lower()
        self.inflate = None
        if encoding in ("gzip", "deflate") and status not in _NO_BODY_STATUSES:
            self.encoding = encoding
            self.inflate = ZLibDecompressor(encoding=encoding)
            self.inflate_started = False
        elif encoding in ("br", "zstd") and status not in _NO_BODY_STATUSES:
            name = "brotli (br). Please install `Brotli`" if encoding == "br" \
                else "zstandard (zstd). Please install `backports.zstd`"
            self.fail(Disconnected(f"400, message='Can not decode content-encoding: {name}'"))

    def on_body(self, chunk: bytes) -> None:
        if not self.headed or self.waiter is None:
            return
        if self.inflate is not None:
            self.inflated(chunk)
        else:
            self.size += len(chunk)
            self.pieces.append(chunk)
        if self.size > self.cap:
            self.fail(TooLarge())

    def inflated(self, chunk: bytes) -> None:
        """Decompress as aiohttp's DeflateBuffer does, a bounded step at a time."""
        inflate = self.inflate
        assert inflate is not None
        if not self.inflate_started and chunk:
            if self.encoding == "deflate" and chunk[0] & 0xF != 8:
                inflate = self.inflate = ZLibDecompressor(encoding="deflate",
                                                          suppress_deflate_header=True)
            self.inflate_started = True
        try:
            out = inflate.decompress_sync(chunk, max_length=_CHUNK)
            while True:
                if out:
                    self.size += len(out)
                    self.pieces.append(out)
                if self.size > self.cap or not inflate.data_available:
                    return
                out = inflate.decompress_sync(b"", max_length=_CHUNK)
        except Exception:  # what aiohttp turns into ContentEncodingError, whatever zlib said
            self.fail(PayloadError(f"400, message='Can not decode content-encoding: "
                                   f"{self.encoding}'"))

    def on_message_complete(self) -> None:
        if not self.headed:  # the end of an interim answer
            return
        if self.inflate is not None and self.size > 0 and self.encoding == "deflate" \
                and not self.inflate.eof:
            self.fail(PayloadError("400, message='deflate'"))
            return
        self.finish(self.parser.should_keep_alive())

    def finish(self, keep: bool) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None:  # already ended (a redirect's answer, a failure)
            return
        self.idle_since = time.monotonic()
        self.answer.body = b"".join(self.pieces)
        self.pieces, self.inflate = [], None
        if keep and self.transport is not None and not self.transport.is_closing():
            self.pool.append(self)
        elif self.transport is not None:
            self.transport.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(self.answer)

    def fail(self, exc: Exception) -> None:
        """End this request with `exc`; the connection is never reused after it."""
        waiter, self.waiter = self.waiter, None
        self.pieces, self.inflate = [], None
        if self.transport is not None:
            self.transport.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)
        if self.waiter is None:
            return
        if self.headed and not self.delimited:
            self.finish(False)  # a body without length ends with the connection
        elif self.headed:
            self.fail(PayloadError(_SHORT_BODY[self.chunked]))
        elif isinstance(exc, OSError) and exc.errno is not None:
            self.fail(ConnectionError(exc.errno, exc.strerror))
        else:
            self.fail(Disconnected(DISCONNECTED))


class Failed(Exception):
    """A failure as fetch reports it: `phase` "send" (networkError before the answer),
    "timeout" (timeoutError) or "read" (networkError while reading the body)."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase


IDLE_SECONDS = 15.0  # aiohttp's keepalive_timeout: an idle connection older than this closes
LIMIT = 1000  # requests in flight at once (fetch.CONNECTION_LIMIT); more wait their turn


class FastClient:
    """The pools (one per host and port) and the in-flight limit of one fetch session."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.pools: dict[tuple[str, int], list[Conn]] = {}
        self.busy = 0
        self.queue: list[asyncio.Future[None]] = []
        self.closed = False

    async def send(self, target: Target, url: str, method: str,
                   headers: Mapping[str, str] | None, body: bytes | None,
                   deadline: float, cap: int) -> Answer:
        """One request and its whole answer (no redirects); `Failed` or `TooLarge` else."""
        if self.busy >= LIMIT:
            turn = self.loop.create_future()
            self.queue.append(turn)
            await turn
        self.busy += 1
        try:
            head = request_head(target, method, headers, body)
            data = head if body is None else head + body
            try:
                return await self.attempt(target, url, data, deadline, cap)
            except (Disconnected, ConnectionError) as exc:
                if method not in _IDEMPOTENT:
                    raise Failed("send", str(exc)) from None
            try:  # aiohttp retries an idempotent request once on a dropped connection
                return await self.attempt(target, url, data, deadline, cap)
            except (Disconnected, ConnectionError) as exc:
                raise Failed("send", str(exc)) from None
        finally:
            self.busy -= 1
            if self.queue:
                self.queue.pop(0).set_result(None)

    async def attempt(self, target: Target, url: str, data: bytes, deadline: float,
                      cap: int) -> Answer:
        conn = await self.connection(target, url, deadline)
        waiter: asyncio.Future[Answer] = self.loop.create_future()
        conn.start(waiter, cap)
        timer = self.loop.call_at(deadline, conn.fail, TimeoutError())
        assert conn.transport is not None
        conn.transport.write(data)
        try:
            return await waiter
        except TimeoutError:
            if conn.headed:
                raise Failed("read", "operation timed out") from None
            raise Failed("timeout", "operation timed out") from None
        except PayloadError as exc:
            raise Failed("read", str(exc)) from None
        finally:
            timer.cancel()
            if not waiter.done():  # cancelled from outside: the connection is half used
                conn.fail(TimeoutError())

    async def connection(self, target: Target, url: str, deadline: float) -> Conn:
        """An idle pooled connection to the target, else a new one."""
        key = (target.host, target.port)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = []
        stale = time.monotonic() - IDLE_SECONDS
        while pool:
            conn = pool.pop()
            if conn.transport is None or conn.transport.is_closing():
                continue
            if conn.idle_since >= stale:
                return conn
            conn.transport.close()  # idle too long, as aiohttp's keepalive_timeout closes it
        try:
            async with asyncio.timeout_at(deadline):
                _transport, conn = await self.loop.create_connection(
                    lambda: Conn(pool), target.host, target.port)
        except TimeoutError:
            raise Failed("timeout", f"Connection timeout to host {url}") from None
        except OSError as exc:
            raise Failed("send", f"Cannot connect to host {target.host}:{target.port} "
                                 f"ssl:default [{exc.strerror}]") from None
        return conn

    def close(self) -> None:
        """Close every pooled connection (the session is closing)."""
        self.closed = True
        for pool in self.pools.values():
            for conn in list(pool):
                if conn.transport is not None:
                    conn.transport.close()
            pool.clear()


REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class HandOver:
    """A redirect to a URL the fast client does not serve: aiohttp takes the rest of the
    chain from here, with the redirects left (spec/fetch.md "Fast client")."""

    method: str
    url: URL  # as aiohttp resolved the Location
    headers: dict[str, str]
    body: bytes | None
    redirects_left: int


def too_many_redirects(url: str) -> str:
    """aiohttp's TooManyRedirects text: the first request of the chain."""
    return f"0, message='', url={url!r}"


async def fetch(client: FastClient, target: Target, url: str, method: str,
                headers: dict[str, str], body: bytes | None, deadline: float, cap: int,
                max_redirects: int) -> Answer | HandOver:
    """One request with aiohttp's redirect rules (ClientSession._request): the final
    answer, or where aiohttp has to take over. Raises `Failed` or `TooLarge`."""
    current = url
    for redirects in range(1, max_redirects + 1):
        answer = await client.send(target, current, method, headers, body, deadline, cap)
        if answer.status not in REDIRECT_STATUSES:
            return answer
        if redirects >= max_redirects:  # counted before the Location is looked at
            raise Failed("send", too_many_redirects(url))
        location = answer.header(b"location") or answer.header(b"uri")
        if location is None:
            return answer  # aiohttp returns it as the answer (aio-libs/aiohttp#2022)
        if (answer.status == 303) or (answer.status in (301, 302) and method == "POST"):
            method, body = "GET", None  # HEAD never comes here (not eligible)
        following = redirect_url(current, location)
        if following.origin() != URL(current).origin():
            headers = {k: v for k, v in headers.items() if k != "authorization"}
        text = str(following)
        next_target = eligible(text, method, headers, False)
        if next_target is None:
            return HandOver(method, following, headers, body, max_redirects - redirects)
        target, current = next_target, text
    raise Failed("send", too_many_redirects(url))  # not reached: the loop returns or raises


def redirect_url(current: str, location: str) -> URL:
    """The next URL as aiohttp resolves a Location; its errors as aiohttp raises them."""
    try:
        following = URL(location, encoded=False)
    except ValueError:
        raise Failed("send", "invalid URL") from None
    scheme = following.scheme
    if scheme not in ("http", "https", ""):
        raise Failed("send", "invalid URL")
    if not scheme or (scheme == "http" and _has_no_authority(location, scheme)):
        following = URL(current).join(following)
    try:
        following.origin()
    except ValueError:
        raise Failed("send", "invalid URL") from None
    if not following.raw_host:
        raise Failed("send", "invalid URL")
    return following
