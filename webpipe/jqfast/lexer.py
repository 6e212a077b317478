"""Tokens of jq 1.8 source, for the fast-path subset.

Mirrors jq's flex lexer where the subset needs it: `.name` is one FIELD token, `$name` one
VAR token, keywords are reserved, strings carry their interpolations as nested token lists.
Syntax the subset never supports (`..`, `@format`, `?//`, `$__loc__`, `a::b`, comments
continued with a backslash) raises `Unsupported` right here; malformed input raises
`JqSyntaxError` (libjq then reports the real error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from webpipe.jqfast.errors import JqSyntaxError, Unsupported

KEYWORDS = frozenset((
    "as", "def", "module", "import", "include", "if", "then", "else", "elif", "reduce",
    "foreach", "end", "and", "or", "try", "catch", "label", "break", "__loc__",
))
_OPERATORS = ("?//", "//=", "|=", "+=", "-=", "*=", "/=", "%=", "//", "==", "!=", "<=", ">=",
              *".[]{}()|,:;=<>+-*/%?")
_DIGITS = "0123456789"
_SPACE = re.compile(r"[ \t\r\n]+")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_IDENT = re.compile(r"[a-zA-Z_][a-zA-Z_0-9]*")
_FIELD = re.compile(r"\.([a-zA-Z_][a-zA-Z_0-9]*)")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}


@dataclass(frozen=True, slots=True)
class Token:
    """kind: num, str, field, ident, kw, var, op, eof. `value` of a str is a tuple of parts
    (text, or a tuple of tokens for an interpolation)."""

    kind: str
    value: Any
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens, pos = _lex(text, 0, nested=False)
    tokens.append(Token("eof", None, pos))
    return tokens


def _lex(text: str, pos: int, *, nested: bool) -> tuple[list[Token], int]:
    """Tokens from `pos`; when `nested`, stop after the `)` closing an interpolation."""
    tokens: list[Token] = []
    depth = 0
    while True:
        pos = _skip_space(text, pos)
        if pos >= len(text):
            if nested:
                raise JqSyntaxError("unterminated string interpolation")
            return tokens, pos
        token, pos = _next_token(text, pos)
        if token.kind == "op" and token.value in "()":
            depth += 1 if token.value == "(" else -1
            if depth < 0 and nested:
                return tokens, pos
        tokens.append(token)


def _skip_space(text: str, pos: int) -> int:
    while True:
        m = _SPACE.match(text, pos)
        if m:
            pos = m.end()
        if pos < len(text) and text[pos] == "#":
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            if text[pos:end].rstrip("\r").endswith("\\"):
                raise Unsupported("comment continued by a backslash")
            pos = end
            continue
        return pos


def _next_token(text: str, pos: int) -> tuple[Token, int]:
    ch = text[pos]
    nxt = text[pos + 1] if pos + 1 < len(text) else ""
    if ch == '"':
        parts, end = _lex_string(text, pos + 1)
        return Token("str", parts, pos), end
    if ch in _DIGITS or (ch == "." and nxt != "" and nxt in _DIGITS):
        m = _NUMBER.match(text, pos)
        assert m is not None
        return Token("num", m.group(), pos), m.end()
    if ch == "." and (m := _FIELD.match(text, pos)):
        return Token("field", m.group(1), pos), m.end()
    if ch == "$":
        return _lex_variable(text, pos)
    if m := _IDENT.match(text, pos):
        if text.startswith("::", m.end()):
            raise Unsupported("module-qualified name")
        word = m.group()
        return Token("kw" if word in KEYWORDS else "ident", word, pos), m.end()
    if ch == "@" or text.startswith("..", pos) or text.startswith("?//", pos):
        raise Unsupported(f"{text[pos:pos + 3]!r} is outside the fast-path subset")
    for op in _OPERATORS:
        if text.startswith(op, pos):
            return Token("op", op, pos), pos + len(op)
    raise JqSyntaxError(f"unexpected character {ch!r}")


def _lex_variable(text: str, pos: int) -> tuple[Token, int]:
    m = _IDENT.match(text, pos + 1)
    if m is None:
        raise JqSyntaxError("expected a variable name after $")
    if m.group() == "__loc__" or text.startswith("::", m.end()):
        raise Unsupported("$__loc__ / module variables")
    return Token("var", m.group(), pos), m.end()


def _lex_string(text: str, pos: int) -> tuple[tuple[str | tuple[Token, ...], ...], int]:
    """Parts of a string literal starting after its opening quote."""
    parts: list[str | tuple[Token, ...]] = []
    chunk: list[str] = []
    while pos < len(text):
        ch = text[pos]
        if ch == '"':
            parts.append("".join(chunk))
            return tuple(parts), pos + 1
        if ch != "\\":
            chunk.append(ch)
            pos += 1
            continue
        esc = text[pos + 1:pos + 2]
        if esc == "(":
            parts.append("".join(chunk))
            chunk = []
            inner, pos = _lex(text, pos + 2, nested=True)
            parts.append((*inner, Token("eof", None, pos)))
        elif esc == "u":
            char, pos = _unicode_escape(text, pos)
            chunk.append(char)
        elif esc in _ESCAPES:
            chunk.append(_ESCAPES[esc])
            pos += 2
        else:
            raise JqSyntaxError("invalid escape")
    raise JqSyntaxError("unterminated string")


def _unicode_escape(text: str, pos: int) -> tuple[str, int]:
    code = _hex4(text, pos + 2)
    if 0xD800 <= code < 0xDC00 and text.startswith("\\u", pos + 6):
        low = _hex4(text, pos + 8)
        if 0xDC00 <= low < 0xE000:
            return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), pos + 12
    if 0xD800 <= code < 0xE000:
        raise Unsupported("lone surrogate escape")
    return chr(code), pos + 6


def _hex4(text: str, pos: int) -> int:
    digits = text[pos:pos + 4]
    if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise JqSyntaxError("invalid \\u escape")
    return int(digits, 16)
