"""HTTP/1.1 connections with bounded waits: uvicorn's httptools protocol plus a head timeout.

uvicorn bounds an idle keep-alive connection (`timeout_keep_alive`, our `keepAliveMs`) but
nothing else: a connection that sends no request, or a request head byte by byte, is held
forever, and about a thousand of them exhaust a 1,024-file limit. `BoundedHttpProtocol`
arms one more timer, from accept (and again from the end of each response) until a complete
request head: past `headerTimeoutMs` the connection is closed, after a 408 JSON answer when
part of a head had arrived. It also refuses connections beyond a cap derived from the
open-file limit, with a log line, so sockets never starve upstreams, Postgres and static
files of descriptors. The request body is bounded in the app instead (`http.read_body`,
`bodyTimeoutMs`), where a 408 can be answered in order. A protocol subclass, chosen
through uvicorn's `http=` option, is the one place that sees a connection before its first
request; an ASGI middleware only runs once a head is complete. Decisions: spec/http.md.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from webpipe.limits import Limits

log = logging.getLogger("webpipe.connections")

RESERVED_FILES = 128  # descriptors kept for upstreams, Postgres, static files and logs
PROTOCOL = "webpipe.protocol:BoundedHttpProtocol"  # uvicorn's `http=` import string
_REFUSAL_LOG_EVERY_S = 10.0
_HEAD_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                 b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


class BoundedHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with a head timeout, `keepAliveMs` and a connection cap (class
    attributes, set once per process by `configure_connections`)."""

    header_timeout_s: ClassVar[float] = Limits().header_timeout_ms / 1000
    keep_alive_s: ClassVar[float] = Limits().keep_alive_ms / 1000
    max_connections: ClassVar[int | None] = None
    _last_refusal: ClassVar[float] = 0.0

    _head_timer: asyncio.TimerHandle | None = None
    _head_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive = self.keep_alive_s  # type: ignore[assignment]
        cap = self.max_connections
        if cap is not None and len(self.connections) > cap:
            self._refuse(len(self.connections))
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self._head_begun = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next head is already complete
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_begun = False
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_begun:  # a client mid-request is told why; an idle one just closed
            waited = round(self.header_timeout_s * 1000)
            body = (b'{"error":"Request Timeout","details":"request head not received '
                    b'within %d ms"}' % waited)
            self.transport.write(_HEAD_TIMEOUT % (len(body), body))
        self.transport.close()

    def _refuse(self, open_now: int) -> None:
        now = time.monotonic()
        if now - BoundedHttpProtocol._last_refusal >= _REFUSAL_LOG_EVERY_S:
            BoundedHttpProtocol._last_refusal = now
            log.warning("connection refused: %d connections open, the cap is %d (the "
                        "open-file limit less %d kept for upstreams and files)",
                        open_now, self.max_connections, RESERVED_FILES)
        self.transport.abort()


def configure_connections(limits: Limits) -> None:
    """Apply `headerTimeoutMs` and `keepAliveMs` to the connections this process accepts
    from now on, and cap them below its open-file limit."""
    BoundedHttpProtocol.header_timeout_s = limits.header_timeout_ms / 1000
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
