"""Expression parser: the inside of one tag → `Call`, `Value` or a partial's parts.

Grammar (handlebars-rust `grammar.pest`): a helper line is `identifier (hash|param)*
(as |a b|)?`; a param is a JSON literal (`"s"`, `'s'`, numbers, `true`/`false`/`null`,
`[..]`, `{..}`), a sub-expression `( … )` or a path; a hash is `identifier=param`. Literals
must end at a non-identifier character, so `nullable` and `trueValue` are paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import NoReturn

from webpipe.templating.errors import TemplateSyntaxError
from webpipe.templating.nodes import JSON, Call, Literal, PathExpr, SubExpr, Value

_NUMBER = re.compile(r"-?\d+\.?\d*(?:E-?\d+)?")
_BLOCK_PARAMS = re.compile(r"as\s*\|\s*([^\s|]+)(?:\s+([^\s|]+))?\s*\|")
_ESCAPES = {"\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_KEYWORDS = {"true": True, "false": False, "null": None}
Hash = tuple[tuple[str, Value], ...]


# Blocks and sub-expressions deeper than this are a syntax error: the parser, the compiler
# and the renderer recurse once per level, and Python's stack is finite.
MAX_NESTING = 100


def is_symbol(ch: str) -> bool:
    """handlebars-rust `symbol_char`: ASCII letters/digits, `-_$`, any non-ASCII."""
    return ch.isalnum() or ch in "-_$" if ch.isascii() else True


def parse_call(text: str, offset: int) -> Call:
    """A helper line: `{{#each items as |item|}}`, `{{else if x}}`, `{{#*inline "n"}}`."""
    cur = _Cursor(text, offset)
    name = cur.identifier()
    params, hashes, block_params = cur.arguments(block_params=True)
    cur.expect_end()
    return Call(name, params, hashes, block_params)


def parse_mustache(text: str, offset: int) -> Call | Value:
    """`{{path}}`, `{{(sub …)}}` or `{{helper params… hash…}}`."""
    cur = _Cursor(text, offset)
    if cur.peek() == "(":
        sub = cur.subexpression()
        cur.expect_end()
        return sub
    path = cur.reference()
    cur.skip_ws()
    if cur.at_end():
        return path
    if not all(is_symbol(ch) for ch in path.raw):
        cur.fail(f"invalid handlebars syntax: {path.raw!r} is not a helper name")
    params, hashes, _ = cur.arguments(block_params=False)
    cur.expect_end()
    return Call(path.raw, params, hashes)


def parse_partial(text: str, offset: int) -> tuple[str | SubExpr, Value | None, Hash]:
    """`{{> name ctx k=v}}`: the name (literal, or a sub-expression), context and hash."""
    cur = _Cursor(text, offset)
    name = cur.partial_name()
    params, hashes, _ = cur.arguments(block_params=False)
    cur.expect_end()
    return name, (params[0] if params else None), hashes


class _Cursor:
    def __init__(self, text: str, offset: int) -> None:
        self.text = text
        self.offset = offset
        self.pos = 0
        self.depth = 0  # open sub-expressions

    def fail(self, reason: str) -> NoReturn:
        raise TemplateSyntaxError(reason, self.offset + self.pos)

    def peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.text[i] if i < len(self.text) else ""

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip_ws(self) -> None:
        while self.peek().isspace():
            self.pos += 1

    def expect_end(self) -> None:
        self.skip_ws()
        if not self.at_end():
            self.fail(f"invalid handlebars syntax: unexpected {self.text[self.pos:]!r}")

    def take_while(self, pred: Callable[[str], bool]) -> str:
        start = self.pos
        while not self.at_end() and pred(self.peek()):
            self.pos += 1
        return self.text[start : self.pos]

    def identifier(self) -> str:
        self.skip_ws()
        name = self.take_while(is_symbol)
        if not name:
            self.fail("invalid handlebars syntax: expected a name")
        return name

    def arguments(self, *, block_params: bool) -> tuple[tuple[Value, ...], Hash, tuple[str, ...]]:
        params: list[Value] = []
        hashes: list[tuple[str, Value]] = []
        names: tuple[str, ...] = ()
        while True:
            self.skip_ws()
            if self.at_end() or self.peek() == ")":
                return tuple(params), tuple(hashes), names
            if names:
                self.fail("invalid handlebars syntax: block parameters must come last")
            if (found := _BLOCK_PARAMS.match(self.text, self.pos)) is not None:
                if not block_params:
                    self.fail("invalid handlebars syntax: block parameters are not allowed here")
                names = tuple(n for n in found.groups() if n)
                self.pos = found.end()
            elif (key := self._hash_key()) is not None:
                hashes.append((key, self.param()))
            else:
                params.append(self.param())

    def _hash_key(self) -> str | None:
        start = self.pos
        key = self.take_while(is_symbol)
        if key and self.peek() == "=":
            self.pos += 1
            self.skip_ws()
            return key
        self.pos = start
        return None

    def param(self) -> Value:
        ch = self.peek()
        if ch == "(":
            return self.subexpression()
        word = self.text[self.pos :].split(None, 1)[0] if not self.at_end() else ""
        if word in ("as", "else"):
            self.fail(f"invalid handlebars syntax: unexpected {word!r}")
        start = self.pos
        try:
            return Literal(self.literal())
        except _NotLiteral:
            self.pos = start
        return self.reference()

    def subexpression(self) -> SubExpr:
        if self.depth >= MAX_NESTING:
            self.fail(f"sub-expressions nested more than {MAX_NESTING} levels deep")
        self.pos += 1  # "("
        self.skip_ws()
        path = self.reference()
        self.depth += 1
        params, hashes, _ = self.arguments(block_params=False)
        self.depth -= 1
        if self.peek() != ")":
            self.fail("invalid handlebars syntax: unclosed sub-expression")
        self.pos += 1
        bare = not params and not hashes
        return SubExpr(Call(path.raw, params, hashes), path if bare else None)

    def literal(self) -> JSON:
        """A JSON literal at the cursor, or `_NotLiteral` (the caller tries a path)."""
        ch = self.peek()
        if ch in ("'", '"'):
            return self.string()
        if ch == "[":
            return self._sequence("[", "]", self.literal)
        if ch == "{":
            return dict(self._sequence("{", "}", self._member))
        if (match := _NUMBER.match(self.text, self.pos)) is not None and self._ends(match.end()):
            try:
                number: JSON = json.loads(match.group())
            except ValueError:
                self.fail(f"invalid parameter {match.group()!r}")
            self.pos = match.end()
            return number
        for word, value in _KEYWORDS.items():
            if self.text.startswith(word, self.pos) and self._ends(self.pos + len(word)):
                self.pos += len(word)
                return value
        raise _NotLiteral

    def _ends(self, i: int) -> bool:
        return i >= len(self.text) or not is_symbol(self.text[i])

    def _sequence(self, open_: str, close: str, item: Callable[[], JSON]) -> list[JSON]:
        self.pos += len(open_)
        items: list[JSON] = []
        self.skip_ws()
        while self.peek() != close:
            if items:
                if self.peek() != ",":
                    raise _NotLiteral
                self.pos += 1
                self.skip_ws()
            items.append(item())
            self.skip_ws()
        self.pos += 1
        return items

    def _member(self) -> tuple[str, JSON]:
        if self.peek() not in ("'", '"'):
            raise _NotLiteral
        key = self.string()
        self.skip_ws()
        if self.peek() != ":":
            raise _NotLiteral
        self.pos += 1
        self.skip_ws()
        return key, self.literal()

    def string(self) -> str:
        quote = self.peek()
        self.pos += 1
        out: list[str] = []
        while (ch := self.peek()) != quote:
            if not ch:
                self.fail("invalid handlebars syntax: unterminated string")
            self.pos += 1
            out.append(self._escape() if ch == "\\" else ch)
        self.pos += 1
        return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")

    def _escape(self) -> str:
        ch = self.peek()
        self.pos += 1
        if ch in ("'", '"') or ch in _ESCAPES:
            return _ESCAPES.get(ch, ch)
        digits = self.text[self.pos : self.pos + 4]
        if ch == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", digits):
            self.pos += 4
            return chr(int(digits, 16))
        self.fail(f"invalid parameter: bad escape \\{ch}")

    def reference(self) -> PathExpr:
        """A path: `a.b`, `a/[k]`, `this.x`, `./x`, `../x`, `@root/x`, `@index`, `@../key`."""
        start = self.pos
        root = local = False
        for prefix in ("this/", "this.", "./"):
            if self.text.startswith(prefix, self.pos):
                self.pos += len(prefix)
                break
        if self.text.startswith("@root", self.pos) and self._ends(self.pos + 5):
            root = True
            self.pos += 5
            self._separator()
        elif self.peek() == "@":
            local = True
            self.pos += 1
        ups = 0
        while self.text.startswith("..", self.pos):
            ups += 1
            self.pos += 2
            self._separator()
        parts = tuple(p for p in self._segments() if p is not None)
        raw = self.text[start : self.pos]
        if not raw or (local and not parts):
            self.fail("invalid handlebars syntax: expected a value")
        return PathExpr(raw, parts, ups, root, local)

    def _separator(self) -> bool:
        if self.peek() in ("/", ".") and self.peek(1) not in ("", " ", ")"):
            self.pos += 1
            return True
        return False

    def _segments(self) -> list[str | None]:
        parts: list[str | None] = []
        while True:
            if self.peek() == "[":
                end = self.text.find("]", self.pos)
                if end < 0:
                    self.fail("invalid handlebars syntax: unclosed [")
                parts.append(self.text[self.pos + 1 : end])
                self.pos = end + 1
            elif self.peek() == "." and not parts:  # `{{.}}`: the current context
                self.pos += 1
                return parts
            else:
                name = self.take_while(is_symbol)
                if not name:
                    return parts
                parts.append(None if name == "this" else name)
            if not self._separator():
                return parts

    def partial_name(self) -> str | SubExpr:
        self.skip_ws()
        ch = self.peek()
        if ch == "(":
            return self.subexpression()
        if ch in ("'", '"'):
            return self.string()
        if ch == "[":
            end = self.text.find("]", self.pos)
            if end < 0:
                self.fail("invalid handlebars syntax: unclosed [")
            start, self.pos = self.pos + 1, end + 1
            return self.text[start:end]
        if ch == "@":
            return self.reference().raw
        name = self.take_while(lambda c: is_symbol(c) or c in "/.")
        if not name:
            self.fail("invalid handlebars syntax: expected a partial name")
        return name


class _NotLiteral(Exception):
    """Raised inside literal parsing when the text is not a literal after all."""
