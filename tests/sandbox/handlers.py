"""Handlers the pool tests register in their workers (`SandboxPool(handlers=HANDLERS)`)."""

from __future__ import annotations

import os
import time
from typing import Any

from webpipe.sandbox.channel import Channel, HandlerError

HANDLERS = {name: f"tests.sandbox.handlers:{name}"
            for name in ("echo", "spin", "hog", "crash", "fail", "ask", "pid", "sleep",
                         "deep")}


def echo(payload: Any, channel: Channel) -> Any:
    return payload


def pid(payload: Any, channel: Channel) -> int:
    return os.getpid()


def spin(payload: Any, channel: Channel) -> None:
    while True:  # never returns: only a kill stops it
        pass


def sleep(payload: float, channel: Channel) -> int:
    time.sleep(payload)
    return os.getpid()


def hog(payload: int, channel: Channel) -> int:
    """Hold `payload` MB at once."""
    block = bytearray(payload * 1024 * 1024)
    return len(block)


def crash(payload: Any, channel: Channel) -> None:
    os.abort()


def fail(payload: str, channel: Channel) -> None:
    raise HandlerError(payload)


def ask(payload: list[Any], channel: Channel) -> list[Any]:
    return [channel.call("double", x) for x in payload]


def deep(payload: int, channel: Channel) -> Any:
    value: Any = 1
    for _ in range(payload):
        value = [value]
    return value
