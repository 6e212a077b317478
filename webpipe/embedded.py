"""Positions inside embedded code: a jq, Lua, Handlebars or GraphQL error at its own line.

A step's config is written verbatim between delimiters in the `.wp` file, so a (line,
column) that the embedded language reports inside the config maps onto the file by finding
the config text in the node that holds it (the step, or the variable it names) and counting
from there. Each middleware reads its library's position (`ConfigError(at=...)`); this
module only turns it into a `Span`, and the readers of library messages that need one.
"""

from __future__ import annotations

import re

from webpipe.source import Span

_DELIMITERS = ('"""', "`", '"', "")
_JQ_AT = re.compile(r" at <top-level>, line (\d+), column (\d+):\n[^\n]*\n( *)(\^+)(?:\n.*)?$",
                    re.S)
_LUA_AT = re.compile(r"^[^:\n]*:(\d+): (.*)$", re.S)
_LUA_NEAR = re.compile(r"near '([^'\n]+)'")

At = tuple[int, int, int]  # 1-based line and column inside the config, and a width


def body_span(within: Span, body: str, at: At) -> Span | None:
    """The span of `at` inside `body`, where `body` is written verbatim in `within`."""
    text = within.source.text
    start = -1
    for mark in _DELIMITERS:
        start = text.find(mark + body + mark, within.start, within.end + len(mark))
        if start >= 0:
            start += len(mark)
            break
    if start < 0:
        return None
    line, column, width = at
    lines = body.split("\n")
    if not 1 <= line <= len(lines):
        return None
    column = max(1, min(column, len(lines[line - 1]) + 1))
    offset = start + sum(len(x) + 1 for x in lines[:line - 1]) + column - 1
    end = min(offset + max(1, width), start + len(body))
    return within.source.span(offset, max(end, offset))


def jq_position(message: str) -> tuple[str, At] | None:
    """libjq's `… at <top-level>, line L, column C:` with its excerpt, as the message without
    them and the position (the caret line gives the width)."""
    m = _JQ_AT.search(message)
    if m is None:
        return None
    return message[:m.start()], (int(m.group(1)), int(m.group(2)), len(m.group(4)))


def lua_position(message: str, body: str) -> tuple[str, At] | None:
    """Lua's `chunk:L: reason near 'token'`: the line, and the column of that token on it
    (Lua gives no column; `<eof>` is the end of the chunk)."""
    m = _LUA_AT.match(message)
    if m is None:
        return None
    line, reason = int(m.group(1)), m.group(2)
    lines = body.split("\n")
    if not 1 <= line <= len(lines):
        return None
    text = lines[line - 1]
    near = _LUA_NEAR.search(reason)
    column = len(text) - len(text.lstrip()) + 1
    width = len(text.strip()) or 1
    if near is not None and near.group(1) in text:
        column, width = text.index(near.group(1)) + 1, len(near.group(1))
    elif "<eof>" in reason:  # just after the last code, where the chunk stops short
        line = max((i for i, x in enumerate(lines, 1) if x.strip()), default=1)
        column, width = len(lines[line - 1].rstrip()) + 1, 1
    return reason, (line, column, width)
