"""`fetch`'s fast client: aiohttp's connection protocol without its session layers.

aiohttp costs ~90-115 µs of CPU per pooled GET in a 200-way fan-out on this machine; most of
it is the session, request, response and connector objects around the protocol. This client
keeps aiohttp's own `ResponseHandler` (its C parser with the same lenient flags and limits,
its decompression under the cap, its payload and disconnect errors) and replaces the rest:
~50 µs for the same GET (`benchmarks/fetch_clients.py`, spec/decisions.md "fetch's fast
client"). It serves only requests whose every effect it reproduces: a plain `http://` URL
with an IPv4 address or a lower-case ASCII host name and a path and query yarl sends
unchanged, no `query` option, no system proxy, a method aiohttp frames the same way, and no
header aiohttp treats specially; `eligible()` decides per request with a regular expression
and a set look-up, and anything else goes through aiohttp. New connections come from the
session's own connector (its resolver, DNS cache, happy-eyeballs connect and errors) and are
then taken over; pooled ones are reused here without it. What goes out is byte for byte what
aiohttp sends (`Host`, the caller's headers, `Accept`, `Accept-Encoding`, `Content-Length`,
the default `Content-Type` of a body-less POST); redirects follow aiohttp's rules (and hand
the rest of the chain to aiohttp when the next URL is not eligible); an idempotent request
whose connection dropped before its answer is retried once, as aiohttp does; errors carry
aiohttp's texts. `tests/middleware/test_fetch_fast_diff.py` runs every scenario through both
clients against real loopback servers and compares the results byte for byte.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import ClientOSError, ServerDisconnectedError
from aiohttp.client import _has_no_authority  # how aiohttp reads "http:/path"
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.compression_utils import HAS_BROTLI, HAS_ZSTD
from aiohttp.helpers import parse_content_type
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from multidict import CIMultiDictProxy
from yarl import URL

from webpipe.middleware.fetch_response import describe, read_up_to

# Path and query characters yarl sends as they are: no `%` escape (yarl may decode or
# re-case it), no fragment; dot segments, which yarl would resolve, are refused below.
_IPV4 = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
# A lower-case ASCII host name (yarl would lower-case or IDNA-encode others), no final dot;
# one that is all digits and dots must be a dotted-quad IPv4 address (not `127.1`).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_NAME = rf"(?=[a-z0-9.-]*[a-z-]){_LABEL}(?:\.{_LABEL})*"
_URL = re.compile(rf"http://({_IPV4}|{_NAME})(?::([1-9]\d{{0,4}}))?"
                  r"((?:/[A-Za-z0-9\-._~!$&'()*+,;=:@]*)*(?:\?[A-Za-z0-9\-._~!$&'()*+,;=:@/?]+)?)")
_DOTS = re.compile(r"/\.")  # `/.` may start a dot segment, which yarl would resolve
# Methods aiohttp frames like this; CONNECT, TRACE and unknown methods are left to aiohttp.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})  # aiohttp's, less TRACE
_POST_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BODY_LESS = frozenset({"GET", "HEAD", "OPTIONS"})  # aiohttp adds no `Content-Length: 0` to these
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Header names aiohttp sets, replaces or acts on: a request carrying one goes through it.
_RESERVED = frozenset({"host", "content-length", "transfer-encoding", "connection", "expect",
                       "upgrade", "te", "content-encoding", "proxy-authorization", "cookie"})
USABLE = not (HAS_BROTLI or HAS_ZSTD)  # else aiohttp's Accept-Encoding would differ


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
    if match is None or _DOTS.search(url, 7) is not None or "xn--" in match[1]:
        return None  # (punycode: yarl may decode and re-encode it)
    if not headers or "user-agent" not in headers or not _RESERVED.isdisjoint(headers):
        return None  # (fetch always sets a user agent; aiohttp would add its own)
    host, port_text, path = match.groups()
    port = int(port_text) if port_text else 80
    if port > 65535:
        return None
    authority = host if port == 80 else f"{host}:{port}"
    if not path.startswith("/"):  # "" or "?query": aiohttp sends the root path
        path = "/" + path
    return Target(host, port, authority, path)


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
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n")
    elif method not in _BODY_LESS:
        lines.append("Content-Length: 0\r\n")
    if method in _POST_METHODS and "content-type" not in given:
        lines.append("Content-Type: application/octet-stream\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")


class Failed(Exception):
    """A failure as fetch reports it: `phase` "send" (a networkError before the answer's
    head) or "read" (a networkError while reading its body); the text is aiohttp's."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase


class TooLarge(Exception):
    """More than the cap: announced by Content-Length or counted while reading."""


@dataclass(slots=True)
class Answer:
    """One whole response as the fetch step reads it."""

    status: int
    raw_headers: tuple[tuple[bytes, bytes], ...]
    headers: CIMultiDictProxy[str]
    body: bytes = b""

    @property
    def charset(self) -> str | None:
        """As aiohttp's `ClientResponse.charset` reads the first Content-Type."""
        raw = self.headers.get("Content-Type")
        return None if raw is None else parse_content_type(raw)[1].get("charset")


@dataclass(slots=True)
class Progress:
    """Where the request is, for the texts of a timeout: connecting (to `url`), waiting
    for an answer's head, or reading the final answer's body (`headed`)."""

    url: str
    connecting: bool = False
    headed: bool = False


IDLE_SECONDS = 15.0  # aiohttp's keepalive_timeout: an idle connection older than this closes
LIMIT = 1000  # requests in flight at once (fetch.CONNECTION_LIMIT); more wait their turn
_READ_BUFSIZE = 2**16  # ClientSession's defaults, as the session passes them per request
_MAX_LINE, _MAX_FIELD, _MAX_HEADERS = 8190, 8190, 128
_NO_TIMEOUT = aiohttp.ClientTimeout()  # the exchange's deadline bounds the connect too


class FastClient:
    """The pools (one per host and port) and the in-flight limit of one fetch session.
    Connections speak through aiohttp's own `ResponseHandler` (its parser, lenient flags,
    limits, decompression and payload errors), so an answer is read exactly as aiohttp
    reads it; what this client leaves out is the session, request and connector layers."""

    def __init__(self, connector: aiohttp.BaseConnector) -> None:
        self.loop = asyncio.get_running_loop()
        self.connector = connector
        self.pools: dict[tuple[str, int], list[tuple[ResponseHandler, float]]] = {}
        self.busy = 0
        self.queue: deque[asyncio.Future[None]] = deque()
        self.closed = False  # the session closed: connections still in use close when done

    async def send(self, target: Target, progress: Progress, method: str,
                   headers: Mapping[str, str] | None, body: bytes | None,
                   cap: int) -> Answer:
        """One request and its whole answer (a redirect's body unread); `Failed` or
        `TooLarge` else."""
        if self.busy >= LIMIT:
            turn = self.loop.create_future()
            self.queue.append(turn)
            await turn
        self.busy += 1
        try:
            head = request_head(target, method, headers, body)
            data = head if body is None else head + body
            retry = method in _IDEMPOTENT  # aiohttp retries these once on a dropped connection
            while True:
                try:
                    return await self.attempt(target, progress, method, data, cap)
                except (ClientOSError, ServerDisconnectedError) as exc:
                    if not retry:
                        raise Failed("send", describe(exc)) from None
                    retry = False
                except (aiohttp.ClientError, OSError, ValueError) as exc:  # as fetch's catch
                    raise Failed("send", describe(exc)) from None
        finally:
            self.busy -= 1
            while self.queue:  # the next waiter still waiting (a cancelled one is skipped)
                turn = self.queue.popleft()
                if not turn.done():
                    turn.set_result(None)
                    break

    async def attempt(self, target: Target, progress: Progress, method: str, data: bytes,
                      cap: int) -> Answer:
        proto = await self.connection(target, progress)
        proto.set_response_params(skip_payload=method == "HEAD", read_until_eof=True,
                                  read_bufsize=_READ_BUFSIZE,
                                  max_line_size=_MAX_LINE, max_field_size=_MAX_FIELD,
                                  max_headers=_MAX_HEADERS)
        try:
            assert proto.transport is not None
            proto.transport.write(data)
            while True:  # interim answers (1xx but 101) are skipped, as ClientResponse.start
                try:
                    message, payload = await proto.read()
                except HttpProcessingError as exc:
                    raise Failed("send", f"{exc.code}, message={exc.message!r}, "
                                         f"url={progress.url!r}") from None
                if not 100 <= message.code <= 199 or message.code == 101:
                    break
            answer = Answer(message.code, message.raw_headers, message.headers)
            if message.code in REDIRECT_STATUSES and (
                    message.headers.get("Location") or message.headers.get("URI")):
                return answer  # followed without reading this body (released below)
            progress.headed = True
            answer.body = await read_capped(proto, payload, message.headers, cap)
            return answer
        except BaseException:
            proto.close()
            raise
        finally:
            self.release(target, proto)

    def release(self, target: Target, proto: ResponseHandler) -> None:
        """Back to the pool when aiohttp's connector would keep it, else closed."""
        if self.closed or proto.should_close or proto.transport is None \
                or proto.transport.is_closing():
            proto.close()
        else:
            self.pools[(target.host, target.port)].append((proto, time.monotonic()))

    async def connection(self, target: Target, progress: Progress) -> ResponseHandler:
        """An idle pooled connection to the target, else a new one from aiohttp's connector
        (its resolver and DNS cache, its happy-eyeballs connect, its errors), taken over."""
        pool = self.pools.setdefault((target.host, target.port), [])
        stale = time.monotonic() - IDLE_SECONDS
        while pool:
            proto, since = pool.pop()
            if since >= stale and proto.is_connected():
                return proto
            proto.close()  # idle too long (aiohttp's keepalive_timeout) or closed by the peer
        progress.connecting = True
        request = ClientRequest("GET", URL(progress.url), loop=self.loop)
        try:
            conn = await self.connector.connect(request, [], _NO_TIMEOUT)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise Failed("send", describe(exc)) from None
        opened = conn.protocol
        assert opened is not None
        # Ours from now on: out of the connector's count of acquired connections, and
        # detached from the wrapper so that dropping it neither closes nor pools it.
        self.connector._release_acquired(request.connection_key, opened)
        conn._protocol = None
        progress.connecting = False
        return opened

    def close(self) -> None:
        """Close every pooled connection (the session is closing), and the ones in use
        when their answers are read."""
        self.closed = True
        for pool in self.pools.values():
            for proto, _since in pool:
                proto.close()
            pool.clear()


async def read_capped(proto: ResponseHandler, payload: StreamReader,
                      headers: CIMultiDictProxy[str], cap: int) -> bytes:
    """`fetch_response.read_capped` on the payload itself: the same reads, the same cap."""
    declared = headers.get("Content-Length")
    if declared is None or int(declared) <= cap:
        try:
            body = await read_up_to(payload, cap)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise Failed("read", describe(exc)) from None
        if body is not None:
            return body
    proto.close()
    raise TooLarge()


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


async def fetch(client: FastClient, target: Target, progress: Progress, method: str,
                headers: dict[str, str], body: bytes | None, cap: int,
                max_redirects: int) -> Answer | HandOver:
    """One request with aiohttp's redirect rules (ClientSession._request): the final
    answer, or where aiohttp has to take over. Raises `Failed` or `TooLarge`."""
    first = progress.url
    for redirects in range(1, max_redirects + 1):
        answer = await client.send(target, progress, method, headers, body, cap)
        if answer.status not in REDIRECT_STATUSES:
            return answer
        if redirects >= max_redirects:  # counted before the Location is looked at
            raise Failed("send", too_many_redirects(first))
        location = answer.headers.get("Location") or answer.headers.get("URI")
        if location is None:
            return answer  # aiohttp returns it as the answer (aio-libs/aiohttp#2022)
        if (answer.status == 303 and method != "HEAD") or (
                answer.status in (301, 302) and method == "POST"):
            method, body = "GET", None
        following = redirect_url(progress.url, location)
        if following.origin() != URL(progress.url).origin():
            headers = {k: v for k, v in headers.items() if k != "authorization"}
        text = str(following)
        next_target = eligible(text, method, headers, False)
        if next_target is None:
            return HandOver(method, following, headers, body, max_redirects - redirects)
        target, progress.url, progress.headed = next_target, text, False
    raise Failed("send", too_many_redirects(first))  # not reached: the loop returns or raises


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
