"""A request the connection runs in a task of its own (spec/http.md "Answers from the
connection"): uvicorn's request cycle, less its ASGI messages.

When the app cannot answer a request without awaiting (`lane.answer_now` gave a `Later`:
a `pg` step, a `fetch`, a cache miss...), `BoundedHttpProtocol` starts a `LaneCycle` the way
uvicorn starts its own cycles (`_start_asgi_task`: the task is in uvicorn's
`server_state.tasks`, which its shutdown waits for, and the cycle is the connection's
`cycle`, so pipelined requests queue behind it and a shutdown or a lost connection marks
it). The app computes the whole response (`WebpipeApp.serve_later`) and `write` sends its
head and body in one `transport.write`, with the bytes uvicorn's `send` writes for the two
ASGI messages. Whatever that shortcut does not cover (a header to check, uvicorn's access
line when its logger is on, a status without a status line) goes through uvicorn's own `send`, and a
failure is handled as uvicorn's `run_asgi` handles it: this class is a subclass, so both
are uvicorn's code.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

from webpipe.http_response import BodyResponse, plain_headers

if TYPE_CHECKING:
    from webpipe.lane import Later
    from webpipe.protocol import BoundedHttpProtocol, Lane

_CLOSE = b"connection: close\r\n"


class _NoWaiting:
    """The cycle's `message_event`: the request body is all here, so nothing waits on it
    (uvicorn sets it when the body grows, the response ends or the connection is lost)."""

    @staticmethod
    def set() -> None:
        pass


_NO_WAITING = _NoWaiting()


class LaneCycle(RequestResponseCycle):
    """One request from the connection, run by `run_asgi` (see module docstring)."""

    def __init__(self, protocol: BoundedHttpProtocol, lane: Lane, later: Later) -> None:
        # uvicorn's __init__ without the event; keep-alive: the lane takes only such requests
        self.scope = later.scope  # type: ignore[assignment]
        self.transport = protocol.transport
        self.flow = protocol.flow
        self.logger = protocol.logger
        self.access_logger = protocol.access_logger
        self.access_log = protocol.access_log
        self.default_headers = protocol.server_state.default_headers
        self.message_event = _NO_WAITING  # type: ignore[assignment]
        self.on_response = protocol.on_response_complete
        self.disconnected = False
        self.keep_alive = True
        self.waiting_for_100_continue = False
        self.body = bytearray()
        self.more_body = False
        self.response_started = False
        self.response_complete = False
        self.chunked_encoding = None
        self.expected_content_length = 0
        self.lane = lane
        self.later = later

    async def run_asgi(self, app: Any) -> None:
        """uvicorn's `run_asgi`, on `serve_later` rather than the ASGI app (`app`, which
        uvicorn's `_start_asgi_task` passes, is not called)."""
        try:
            await self.lane.serve_later(self.later, self.write)
        except BaseException as exc:  # as uvicorn: logged, a 500 if nothing was sent
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self.send_500_response()
            else:
                self.transport.close()
        finally:
            self.on_response = _nothing

    async def write(self, response: Response) -> None:
        """Send `response` as uvicorn's `send` sends its start and body messages, in one
        `transport.write` when its headers need none of `send`'s checks."""
        status = response.status_code
        status_line = STATUS_LINE.get(status)
        headers = response.raw_headers
        if (status_line is None or response.background is not None
                or (self.access_log and self.access_logger.isEnabledFor(logging.INFO))
                or (type(response) is not BodyResponse and type(response) is not Response)
                or not _plain(headers)):
            await response(self.scope, self.later.receive, self.send)  # type: ignore[arg-type]
            return
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        self.response_started = True
        head: list[bytes | memoryview] = [status_line]
        for name, value in (*self.default_headers, *headers):
            head += (name, b": ", value, b"\r\n")
        keep_alive = self.keep_alive
        if not keep_alive:  # a shutdown began meanwhile
            head.append(_CLOSE)
        head.append(b"\r\n")
        if self.scope["method"] != "HEAD":
            head.append(response.body)
        self.transport.write(b"".join(head))
        self.response_complete = True
        if not keep_alive:
            self.transport.close()
        self.on_response()


def _plain(headers: list[tuple[bytes, bytes]]) -> bool:
    """Headers uvicorn's `send` writes as they are: valid values (`plain_headers`), names in
    lower case (the app's always are: Starlette's and `build_response`'s), a
    `content-length` (the app's is its body's) and no `connection` header (which `send`
    reads)."""
    length = False
    for name, _value in headers:
        if name == b"connection" or not name.islower():
            return False
        if name == b"content-length":
            length = True
    return length and plain_headers(headers)


def _nothing() -> None:
    pass
