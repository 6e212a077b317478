"""HTTP/1.1 connections with bounded waits: uvicorn's httptools protocol plus two timers.

uvicorn bounds an idle keep-alive connection (`timeout_keep_alive`, our `keepAliveMs`) but
nothing else: a connection that sends no request, a request head sent byte by byte, or a
body shorter than its Content-Length is held forever, and about a thousand of them exhaust
a 1,024-file limit. `BoundedHttpProtocol` arms a head timer from accept (and again from the
end of each response) until a complete request head (`headerTimeoutMs`), and a body timer
from there until the body is complete (`bodyTimeoutMs`). Past either, the connection gets a
408 JSON answer (unless nothing was asked, or the app already answered) and is closed. It
also refuses connections beyond a cap derived from the open-file limit, with a log line, so
sockets never starve upstreams, Postgres and static files of descriptors.

Why a protocol subclass (chosen through uvicorn's `http=` option): it is the one place that
sees a connection before its first request (an ASGI middleware only runs once a head is
complete), and it knows when the body is complete, so a body that arrives with its head,
the common case, costs no timer at all (an `asyncio.timeout` around the app's body read
cost ~6 µs per request with a body). Decisions: spec/http.md.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from webpipe.lane_cycle import LaneCycle
from webpipe.limits import Limits

if TYPE_CHECKING:
    from starlette.responses import Response

    from webpipe.lane import Later

log = logging.getLogger("webpipe.connections")

RESERVED_FILES = 128  # descriptors kept for upstreams, Postgres, static files and logs
PROTOCOL = "webpipe.protocol:BoundedHttpProtocol"  # uvicorn's `http=` import string
_REFUSAL_LOG_EVERY_S = 10.0
_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
              b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


class Lane(Protocol):
    """The app side of answering a request from the connection (`WebpipeApp.answer_now`,
    and `serve_later` for the `Later` ones, run by a `lane_cycle.LaneCycle`)."""

    def answer_now(self, scope: dict[str, Any], body: bytes,
                   ) -> tuple[int, list[tuple[bytes, bytes]], bytes] | Later | None: ...

    async def serve_later(self, later: Later,
                          write: Callable[[Response], Awaitable[None]]) -> None: ...


# request headers that send a request the usual way: a chunked body, an expectation, an upgrade
_NOT_NOW = frozenset({b"transfer-encoding", b"expect", b"upgrade"})
_LANE_METHODS = frozenset({b"POST", b"PUT", b"PATCH", b"DELETE"})
LANE_BODY_BYTES = 64 * 1024  # a larger body goes the usual way (read as it streams in)


class BoundedHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with head and body timeouts, `keepAliveMs` and a connection cap
    (class attributes, set per process by `configure_connections`).

    The head deadline and the keep-alive deadline (uvicorn's, taken over here) are times kept
    on the connection, watched by one wake-up timer: a response moves them later without
    touching a timer, and the timer, when it fires, closes what is due or sleeps until the
    next deadline. Arming and cancelling a `call_later` twice per response cost ~5 µs."""

    header_timeout_s: ClassVar[float] = Limits().header_timeout_ms / 1000
    body_timeout_s: ClassVar[float] = Limits().body_timeout_ms / 1000
    keep_alive_s: ClassVar[float] = Limits().keep_alive_ms / 1000
    max_connections: ClassVar[int | None] = None
    _last_refusal: ClassVar[float] = 0.0
    # the app that may answer a request from here (`set_lane`), None: every request is a task
    lane: ClassVar[Lane | None] = None
    _answered = False  # the current request was answered from here
    _held: list[bytes] | None = None  # the body so far of a request held for the lane

    _head_at: float | None = None  # loop time by which a complete head must have come
    _head_begun = False
    _idle_at: float | None = None  # loop time at which an idle keep-alive connection closes
    _wake: asyncio.TimerHandle | None = None  # fires at `_wake_at`, at or before a deadline
    _wake_at = 0.0
    _body_timer: asyncio.TimerHandle | None = None
    _body_pending = False  # a head is complete, its body is not

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = self.max_connections
        if cap is not None and len(self.connections) > cap:
            self._refuse(len(self.connections))
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_at = self._idle_at = None
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        self._disarm_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._idle_at = None  # no longer idle (uvicorn cancelled its keep-alive timer here)
        super().data_received(data)
        if self._held is not None:  # a held request's body did not all come with its head
            held, self._held = self._held, None
            if not self.transport.is_closing():  # (closing: the parser refused the rest)
                self._release(b"".join(held))
        # armed only when a head arrived without all of its body
        if self._body_pending and self._body_timer is None and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_timed_out)

    def on_message_begin(self) -> None:
        self._head_begun = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        self._body_pending = True
        lane = self.lane
        length = None if lane is None else self._lane_length()
        if length == 0 and lane is not None:
            answered = self._answer_now(lane, b"")
            if answered is not None:
                self._answered = True  # its `on_message_complete` is still to come
                if answered:
                    self.on_response_complete()
                return
        if length:  # held until its body is complete (see `on_message_complete`)
            self._held = []
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._held is not None:
            self._held.append(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._body_pending = False
        self._disarm_body_timer()
        if self._answered:  # no cycle was made for it
            self._answered = False
            return
        held, lane = self._held, self.lane
        if held is not None:
            self._held = None
            body = b"".join(held)
            answered = None if lane is None else self._answer_now(lane, body)
            if answered is not None:
                if answered:
                    self.on_response_complete()
                return
            self._release(body)
        super().on_message_complete()

    def _lane_length(self) -> int | None:
        """The body length of a request the app may answer from here (0: none), or None:
        it goes the usual way (not a keep-alive HTTP/1.1 request, a chunked or large body,
        an expectation, an upgrade, anything pending on the connection)."""
        parser = self.parser
        cycle = self.cycle
        if (self.pipeline or (cycle is not None and not cycle.response_complete)
                or self.flow.write_paused or self.limit_concurrency is not None
                or parser.get_http_version() != "1.1" or not parser.should_keep_alive()):
            return None
        method = parser.get_method()
        declared = None
        for name, value in self.headers:
            if name in _NOT_NOW:
                return None
            if name == b"content-length":
                declared = value
        if method == b"GET" or method == b"HEAD":
            return 0 if declared is None else None
        if method not in _LANE_METHODS:
            return None
        if declared is None:
            return 0
        if not declared.isdigit() or len(declared) > 6 or int(declared) > LANE_BODY_BYTES:
            return None
        return int(declared)

    def _release(self, body: bytes) -> None:
        """Send a held request the usual way (uvicorn's cycle and task) with its body so
        far; the rest of it, if any, follows through `on_body`."""
        super().on_headers_complete()
        if body:
            super().on_body(body)

    def _answer_now(self, lane: Lane, body: bytes) -> bool | None:
        """Write the app's answer to the request whose head just completed (and whose `body`
        is all here) when it can give one without awaiting (`Lane.answer_now`): True. False:
        the request runs from here in a task (`LaneCycle`), which answers it. None: it goes
        the usual way, which fills in the scope again."""
        try:
            parsed = httptools.parse_url(self.url)
            raw_path = parsed.path
            path = raw_path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return None
        method = self.parser.get_method()
        scope: dict[str, Any] = self.scope  # type: ignore[assignment]
        scope["method"] = method.decode("ascii")
        scope["path"] = self.root_path + (urllib.parse.unquote(path) if "%" in path else path)
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = parsed.query or b""
        try:
            answer = lane.answer_now(scope, body)
        except Exception:  # a bug of ours: logged, and the usual path answers (a 500)
            log.exception("answering %s %s from the connection failed", scope["method"],
                          scope["path"])
            return None
        if answer is None:
            return None
        if not isinstance(answer, tuple):  # a `Later`: started as uvicorn starts a cycle
            cycle = self.cycle = LaneCycle(self, lane, answer)
            self._start_asgi_task(cycle, self.app)
            return False
        status, headers, content = answer
        head = [STATUS_LINE[status]]
        for name, value in (*self.server_state.default_headers, *headers):
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        if method != b"HEAD":
            head.append(content)
        self.transport.write(b"".join(head))
        return True

    def handle_websocket_upgrade(self) -> None:
        self._body_pending = False  # the connection is no longer HTTP/1.1 requests
        self._head_at = self._idle_at = None
        self._disarm_body_timer()
        super().handle_websocket_upgrade()

    def on_response_complete(self) -> None:
        # uvicorn's, with its keep-alive `call_later` replaced by a deadline (class docstring)
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # the next head is already complete: its cycle starts now
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_at = self.loop.time() + self.keep_alive_s
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._head_begun = False
        at = self._head_at = self.loop.time() + self.header_timeout_s
        idle_at = self._idle_at
        self._wake_by(at if idle_at is None or at < idle_at else idle_at)

    def _disarm_head_timer(self) -> None:
        self._head_at = None  # the wake-up, if any, then finds nothing due

    def _wake_by(self, at: float) -> None:
        """Have the wake-up timer fire no later than `at` (usually it already does)."""
        wake = self._wake
        if wake is not None:
            if self._wake_at <= at:
                return
            wake.cancel()
        self._wake_at = at
        self._wake = self.loop.call_at(at, self._woken)

    def _woken(self) -> None:
        """Close the connection if a deadline passed; otherwise sleep until the next one.
        (A timer may fire a little early: then it is armed again for the rest.)"""
        self._wake = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        idle_at, head_at = self._idle_at, self._head_at
        if idle_at is not None and now >= idle_at:  # nothing was sent since the response
            self._head_at = self._idle_at = None
            self.transport.close()
        elif head_at is not None and now >= head_at:
            self._head_at = None
            self._head_timed_out()
        elif idle_at is not None or head_at is not None:
            self._wake_by(min(at for at in (idle_at, head_at) if at is not None))

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _head_timed_out(self) -> None:
        if self._head_begun:  # a client mid-request is told why; an idle one just closed
            self._close_with_408("head", self.header_timeout_s)
        else:
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if not self._body_pending or cycle is None or self.transport.is_closing():
            return
        if self.pipeline:  # queued behind a response: reading is paused, not the client's fault
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_timed_out)
        elif cycle.response_started:  # answered without the rest of the body: end there
            cycle.keep_alive = False
            if cycle.response_complete:
                self.transport.close()
        else:
            # the app's pending receive() now returns http.disconnect and its answer is
            # dropped (uvicorn discards sends after a disconnect): the 408 is written here
            cycle.disconnected = True
            cycle.message_event.set()
            self._close_with_408("body", self.body_timeout_s)

    def _close_with_408(self, part: str, waited_s: float) -> None:
        body = (b'{"error":"Request Timeout","details":"request %s not received within '
                b'%d ms"}' % (part.encode(), round(waited_s * 1000)))
        self.transport.write(_TIMED_OUT % (len(body), body))
        self.transport.close()

    def _refuse(self, open_now: int) -> None:
        now = time.monotonic()
        if now - BoundedHttpProtocol._last_refusal >= _REFUSAL_LOG_EVERY_S:
            BoundedHttpProtocol._last_refusal = now
            log.warning("connection refused: %d connections open, the cap is %d (the "
                        "open-file limit less %d kept for upstreams and files)",
                        open_now, self.max_connections, RESERVED_FILES)
        self.transport.abort()


def set_lane(lane: Lane | None) -> None:
    """The app whose requests may be answered from the connection in this process (set at
    its start, cleared at its shutdown)."""
    BoundedHttpProtocol.lane = lane


def configure_connections(limits: Limits) -> None:
    """Apply `headerTimeoutMs`, `bodyTimeoutMs` and `keepAliveMs` to the connections this
    process accepts from now on, and cap them below its open-file limit."""
    BoundedHttpProtocol.header_timeout_s = limits.header_timeout_ms / 1000
    BoundedHttpProtocol.body_timeout_s = limits.body_timeout_ms / 1000
    BoundedHttpProtocol.keep_alive_s = limits.keep_alive_ms / 1000
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    BoundedHttpProtocol.max_connections = (
        None if soft == resource.RLIM_INFINITY else max(1, soft - RESERVED_FILES))


def raise_file_limit() -> tuple[int, int]:
    """Raise this process's soft open-file limit to its hard limit (workers inherit it);
    the (before, after) soft limits. Many idle sockets then cost memory, not service."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target == soft:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # e.g. beyond the kernel's nr_open: keep what we have
        return soft, soft
    return soft, target
