"""Text arriving from outside, read the same way everywhere: HTTP header values and JSON text.

Used by the server's request object (`http.py`) and by middleware reading upstream answers
(`fetch`, `pg`); it imports no server code.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_VISIBLE_ASCII = re.compile(rb"[\t\x20-\x7e]*")
_LONG_DIGITS = re.compile(r"[0-9]{20}")


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
