"""Tokens of the compiled Lua subset (spec/lua.md "Compiled subset").

`tokens(source)` splits a chunk that Lua has already accepted into `Token`s, or returns
None when the text uses something the subset does not cover (hexadecimal numerals,
integer numerals past 64 bits, rare string escapes, strings that are not valid UTF-8,
bitwise operators, `goto` labels...). It never has to report an error: Lua checked the
syntax at load, so anything unexpected only means "not compiled", and the chunk runs in
Lua as before.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_INTEGER = 2**63 - 1

KEYWORDS = frozenset((
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"))

_SPACE = re.compile(r"(?:[ \t\r\n\v\f]+|--(?!\[=*\[)[^\n]*)+")
_LONG_OPEN = re.compile(r"(?:--)?\[(=*)\[")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
# longest first, so `..` is not read as two `.` and `==` not as `=`
_OPS = ("...", "..", "==", "~=", "<=", ">=", "//", "::", "<<", ">>",
        "+", "-", "*", "/", "%", "^", "#", "<", ">", "=", "(", ")", "{", "}", "[", "]",
        ";", ":", ",", ".", "&", "~", "|")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", '"': '"', "'": "'", "\n": "\n"}
_DECIMAL_ESCAPE = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True, slots=True)
class Token:
    """`kind` is "name", "keyword", "number", "string", "op" or "eof"; `value` the
    keyword's or operator's text, the name, the number (int or float) or the string."""

    kind: str
    value: object


class NotInSubset(Exception):
    """The chunk uses something the compiled subset leaves to Lua."""


def tokens(source: str) -> list[Token] | None:
    """The chunk's tokens, or None when it is not in the subset's lexical part."""
    try:
        return list(_scan(source))
    except NotInSubset:
        return None


def _scan(source: str) -> list[Token]:
    out: list[Token] = []
    pos, end = 0, len(source)
    if source.startswith("#"):  # Lua skips a first line starting with `#`
        pos = source.find("\n") if "\n" in source else end
    while True:
        space = _SPACE.match(source, pos)
        if space:
            pos = space.end()
        long = _LONG_OPEN.match(source, pos)
        if long:
            text, pos = _long_bracket(source, long.end(), len(long.group(1)))
            if not long.group(0).startswith("--"):
                out.append(Token("string", text))
            continue
        if pos >= end:
            out.append(Token("eof", None))
            return out
        token, pos = _one(source, pos)
        out.append(token)


def _one(source: str, pos: int) -> tuple[Token, int]:
    char = source[pos]
    name = _NAME.match(source, pos)
    if name:
        word = name.group(0)
        if word == "goto":
            raise NotInSubset
        return Token("keyword" if word in KEYWORDS else "name", word), name.end()
    if char.isdigit() or (char == "." and source[pos + 1:pos + 2].isdigit()):
        return _number(source, pos)
    if char in "\"'":
        return _short_string(source, pos)
    for op in _OPS:
        if source.startswith(op, pos):
            return Token("op", op), pos + len(op)
    raise NotInSubset


def _number(source: str, pos: int) -> tuple[Token, int]:
    match = _NUMBER.match(source, pos)
    following = source[match.end():match.end() + 1] if match else ""
    if match is None or following.isalnum() or following in ("_", "."):
        raise NotInSubset  # hexadecimal, or a numeral glued to a name: Lua's business
    text = match.group(0)
    if any(c in text for c in ".eE"):
        value = float(text)  # strtod and Python both round correctly
        if not math.isfinite(value):
            raise NotInSubset
        return Token("number", value), match.end()
    number = int(text)
    if number > MAX_INTEGER:  # Lua reads it as a float
        raise NotInSubset
    return Token("number", number), match.end()


def _long_bracket(source: str, pos: int, level: int) -> tuple[str, int]:
    close = "]" + "=" * level + "]"
    stop = source.find(close, pos)
    if stop < 0:
        raise NotInSubset
    text = source[pos:stop]
    if text.startswith("\r\n") or text.startswith("\n\r"):
        text = text[2:]
    elif text.startswith(("\n", "\r")):
        text = text[1:]
    if "\r" in text:  # Lua turns every line break sequence into "\n"
        raise NotInSubset
    return text, stop + len(close)


def _short_string(source: str, pos: int) -> tuple[Token, int]:
    quote, i = source[pos], pos + 1
    parts: list[str] = []
    while True:
        if i >= len(source) or source[i] in "\r\n":
            raise NotInSubset
        char = source[i]
        if char == quote:
            return Token("string", "".join(parts)), i + 1
        if char != "\\":
            parts.append(char)
            i += 1
            continue
        following = source[i + 1:i + 2]
        if following in _ESCAPES:
            parts.append(_ESCAPES[following])
            i += 2
            continue
        digits = _DECIMAL_ESCAPE.match(source, i + 1)
        if digits is None or int(digits.group(0)) > 127:
            raise NotInSubset  # \x, \z, \u{...}, or a byte that is not UTF-8 alone
        parts.append(chr(int(digits.group(0))))
        i = digits.end()
