"""Text arriving from outside, read the same way everywhere: HTTP header values and JSON text.

Used by the server's request object (`http.py`) and by middleware reading upstream answers
(`fetch`, `pg`); it imports no server code. JSON from outside is bounded in depth
(`maxJsonDepth`, spec/limits.md): every walker downstream may recurse once per level, and
Python's recursion limit (1000 frames) must stay out of reach.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_VISIBLE_ASCII = re.compile(rb"[\t\x20-\x7e]*")
_LONG_DIGITS = re.compile(r"[0-9]{20}")

MAX_JSON_DEPTH = 512  # the default `maxJsonDepth` and its ceiling (spec/limits.md)


class JsonTooDeep(ValueError):
    """JSON text (or a value) nested deeper than the configured bound."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels")
        self.limit = limit


def header_text(raw: bytes) -> str:
    """A header value as text: visible ASCII and tabs, else "" (the reference's `to_str`)."""
    if raw.isascii():
        text = raw.decode("ascii")
        if text.isprintable() or _VISIBLE_ASCII.fullmatch(raw):  # isprintable: no tab
            return text
    return ""


def loads_exact(text: str, **json_options: Any) -> Any:
    """JSON text as the json module reads it (integers of any size exact), via orjson when
    that gives the same: not when a run of 20 digits could be an integer beyond 64 bits
    (orjson makes it a float), nor for what orjson refuses (lone surrogates, numbers out of
    float range, non-JSON). `json_options` go to `json.loads` (e.g. `parse_constant`)."""
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text, **json_options)


def loads_bounded(data: bytes | str, max_depth: int) -> Any:
    """JSON text read with orjson, refused with `JsonTooDeep` when arrays and objects nest
    more than `max_depth` levels (`[]` is one level); other malformed text raises
    `orjson.JSONDecodeError`."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit"):  # orjson's own bound (1024 levels)
            raise JsonTooDeep(max_depth) from None
        raise
    check_depth(data, value, max_depth)
    return value


def check_depth(text: bytes | str, value: Any, max_depth: int) -> None:
    """Raise `JsonTooDeep` when `value` (parsed from `text`) nests deeper than `max_depth`.

    Text with no more opening brackets than the bound cannot nest deeper: two C-speed
    counts answer for almost every body, and only the rest is walked (level by level,
    without recursion)."""
    opening = (text.count(b"[") + text.count(b"{") if isinstance(text, bytes)
               else text.count("[") + text.count("{"))
    if opening > max_depth and depth_exceeds(value, max_depth):
        raise JsonTooDeep(max_depth)


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether lists and dicts in `value` nest more than `max_depth` levels (iterative)."""
    level = [value]
    depth = 0
    while True:
        containers = [item for item in level if isinstance(item, dict | list)]
        if not containers:
            return False
        depth += 1
        if depth > max_depth:
            return True
        level = []
        for container in containers:
            level.extend(container.values() if isinstance(container, dict) else container)
