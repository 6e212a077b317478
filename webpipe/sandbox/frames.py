"""Frames between the server and a sandbox worker: a 4-byte big-endian length, then the body.

The body is one codec byte and a JSON document: `o` for orjson (every frame in practice),
`j` for the standard library's json, used only when orjson refuses a value (an integer
beyond 64 bits, which jq can output) so that such a value still crosses intact. The same
functions serve both ends: the server reads with asyncio streams, the worker with `os.read`
on its pipe (it has nothing else to do while it waits).
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

import orjson

HEADER = struct.Struct(">I")


def encode(message: Any) -> bytes:
    """One frame holding `message` (a JSON-able value)."""
    try:
        body = b"o" + orjson.dumps(message)
    except TypeError:
        body = b"j" + json.dumps(message, ensure_ascii=False).encode()
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> Any:
    """The message of a frame body (the bytes after the length)."""
    if body[:1] == b"o":
        return orjson.loads(body[1:])
    return json.loads(body[1:])


def read_exact(fd: int, size: int) -> bytes | None:
    """`size` bytes from a blocking descriptor; None at end of file."""
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> Any | None:
    """The next message on a blocking descriptor; None when the other end closed it."""
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    body = read_exact(fd, HEADER.unpack(head)[0])
    return None if body is None else decode(body)


def write_frame(fd: int, message: Any) -> None:
    write_all(fd, encode(message))


def write_all(fd: int, frame: bytes) -> None:
    """Write an encoded frame to a blocking descriptor."""
    data = memoryview(frame)
    while data:
        data = data[os.write(fd, data):]
