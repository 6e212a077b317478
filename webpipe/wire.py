"""Text arriving from outside, read the same way everywhere: HTTP header values and JSON text.

Used by the server's request object (`http.py`) and by middleware reading upstream answers
(`fetch`, `pg`); it imports no server code. JSON from outside is bounded in depth
(`maxJsonDepth`, spec/limits.md): every walker downstream may recurse once per level, and
Python's recursion limit (1000 frames) must stay out of reach.
"""

from __future__ import annotations

import gc
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

_VISIBLE_ASCII = re.compile(rb"[\t\x20-\x7e]*")
_LONG_DIGITS = re.compile(r"[0-9]{20}")  # what `has_long_digits` finds, ~10x slower
# ASCII digits stay "0", every other byte becomes a space: a run of 20 digits is then a
# run of 20 "0" bytes, found by a substring search at C speed
_DIGIT_RUNS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_TWENTY_DIGITS = b"0" * 20

MAX_JSON_DEPTH = 512  # the default `maxJsonDepth` and its ceiling (spec/limits.md)
MAX_JSON_CONTAINERS = 200_000  # the default `maxJsonContainers`


class JsonOverLimit(ValueError):
    """JSON text past one of the bounds of spec/limits.md (depth, number of containers)."""


class JsonTooDeep(JsonOverLimit):
    """JSON text (or a value) nested deeper than the configured bound."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels")
        self.limit = limit


class JsonTooWide(JsonOverLimit):
    """JSON text with more arrays and objects than the configured bound: building millions
    of containers holds the GIL (and so the event loop) for up to seconds, whatever the
    byte size (a 6 MB body of two million `[]` parses in ~0.3-1 s)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON has more than {limit} arrays and objects")
        self.limit = limit


def header_text(raw: bytes) -> str:
    """A header value as text: visible ASCII and tabs, else "" (the reference's `to_str`)."""
    if raw.isascii():
        text = raw.decode("ascii")
        if text.isprintable() or _VISIBLE_ASCII.fullmatch(raw):  # isprintable: no tab
            return text
    return ""


def loads_bounded(data: bytes | str, max_depth: int,
                  max_containers: int = MAX_JSON_CONTAINERS) -> Any:
    """JSON text read with orjson, refused with `JsonTooDeep` when arrays and objects nest
    more than `max_depth` levels (`[]` is one level); other malformed text raises
    `orjson.JSONDecodeError` with the text's own positions.

    Text with no more `[`/`{` than the bound cannot nest deeper (two C-speed counts settle
    almost every body). Otherwise orjson's own depth limit does the check: the text is
    parsed inside `ORJSON_DEPTH - max_depth` extra arrays, which orjson refuses exactly when
    the text nests deeper than `max_depth`, and the value is unwrapped again. No Python
    walk over the value. Text with more `[`/`{` than `max_containers` (strings included,
    which only makes it cautious) is refused with `JsonTooWide` before any parse."""
    openings = _openings(data)
    if openings > max_containers:
        raise JsonTooWide(max_containers)
    return _loads_counted(data, max_depth, openings)


def _loads_counted(data: bytes | str, max_depth: int, openings: int) -> Any:
    """`loads_bounded` once the text's `[`/`{` are counted (within `max_containers`)."""
    if openings <= max_depth:
        return orjson.loads(data)
    extra = ORJSON_DEPTH - max_depth
    wrapped = ("[" * extra + data + "]" * extra if isinstance(data, str)
               else b"[" * extra + data + b"]" * extra)
    try:
        value = orjson.loads(wrapped)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit"):
            raise JsonTooDeep(max_depth) from None
        orjson.loads(data)  # the text's own error, positions unshifted
        raise  # pragma: no cover  (the text alone cannot parse either)
    for _ in range(extra):
        value = value[0]
    return value


def loads_exact_bounded(text: str, max_depth: int, max_containers: int = MAX_JSON_CONTAINERS,
                        **json_options: Any) -> Any:
    """JSON text as the json module reads it (integers of any size exact), via orjson when
    that gives the same: not when a run of 20 digits could be an integer beyond 64 bits
    (orjson makes it a float), nor for what orjson refuses (lone surrogates, numbers out of
    float range, non-JSON). `json_options` go to `json.loads` (e.g. `parse_constant`).
    Nested deeper than `max_depth` raises `JsonTooDeep`, whichever parser read it (the
    json module's own recursion limit also means too deep); more containers than
    `max_containers` raises `JsonTooWide`."""
    openings = _openings(text)
    if openings > max_containers:
        raise JsonTooWide(max_containers)
    if not has_long_digits(text):
        try:
            return _loads_counted(text, max_depth, openings)
        except orjson.JSONDecodeError:
            pass
    try:
        value = json.loads(text, **json_options)
    except RecursionError:
        raise JsonTooDeep(max_depth) from None
    if openings > max_depth and depth_exceeds(value, max_depth):
        raise JsonTooDeep(max_depth)
    return value


def has_long_digits(text: str) -> bool:
    """Whether `text` holds a run of 20 ASCII digits (`[0-9]{20}`): an integer orjson would
    turn into a float could be there. A byte translation and a substring search: the
    regular expression costs ~15 ns per character (~0.2 ms for 14 KB of JSON rows)."""
    return _TWENTY_DIGITS in text.encode("utf-8", "surrogatepass").translate(_DIGIT_RUNS)


ORJSON_DEPTH = 1024  # orjson refuses deeper text (tests/test_wire.py checks it)


def _openings(text: bytes | str) -> int:
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether lists and dicts in `value` nest more than `max_depth` levels (iterative;
    only for values the json module read, which orjson's bound cannot check)."""
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


_pauses = 0
_pauses_lock = threading.Lock()
_resume = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic GC while a large JSON text is parsed (on a worker thread): orjson holds the
    GIL for the whole parse, and the collector's passes over millions of new containers made
    it ~4x longer (a 7.6 MiB body of 2M small arrays: 1.2 s -> 0.3 s). Counted, so
    overlapping parses on several threads resume collection only when the last one ends."""
    global _pauses, _resume
    with _pauses_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()


def json_type(value: Any) -> str:
    """The JSON type name of a value (`null`, `boolean`, `number`, `string`, `array`,
    `object`), as error messages and the debugger name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
