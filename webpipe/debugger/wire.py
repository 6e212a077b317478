"""DAP's base protocol: `Content-Length` framed JSON messages over a byte stream.

The Debug Adapter Protocol frames each message as LSP does: header lines ending in
`\\r\\n`, a blank line, then exactly `Content-Length` bytes of UTF-8 JSON. asyncio's
`StreamReader` reads a header block and a body in two calls, so the framing is written
here rather than taken from a library (spec/debugger.md says why). Every message is
bounded (`MAX_HEADER`, `MAX_BODY`): a client that sends more is disconnected.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

MAX_HEADER = 4096  # bytes of header lines before the blank line
MAX_BODY = 16 * 1024 * 1024  # a setVariable value or an evaluate expression fits easily


class WireError(Exception):
    """The peer broke the framing (no Content-Length, oversized, not a JSON object)."""


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None when the peer closed the stream between messages."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise WireError("connection closed inside a message header") from None
        return None
    except asyncio.LimitOverrunError:
        raise WireError("message header too long") from None
    if len(head) > MAX_HEADER:
        raise WireError("message header too long")
    length = _content_length(head)
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise WireError("connection closed inside a message body") from None
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"message body is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise WireError("message body is not a JSON object")
    return message


class DapError(Exception):
    """A request that cannot be answered: the message goes back with `success: false`."""


def _content_length(head: bytes) -> int:
    for line in head.decode("ascii", "replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                break
            if not 0 <= length <= MAX_BODY:
                raise WireError(f"Content-Length {length} is out of bounds")
            return length
    raise WireError("message header without a valid Content-Length")


def encode(message: dict[str, Any]) -> bytes:
    """One framed message."""
    body = orjson.dumps(message)
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
