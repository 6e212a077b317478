"""Lexer: template text → `Text` and `Tag` tokens, then whitespace control.

Scanning follows handlebars-rust's grammar (`grammar.pest`): `\\{{` escapes a mustache,
`{{{{raw}}}}…{{{{/raw}}}}` keeps its body verbatim, `{{!-- --}}` / `{{! }}` are comments, a
tag's body is scanned with quotes and braces respected (`{{x "}}"}}`, `{{f {}}}`).

`apply_whitespace` then does what `Template::compile2` does while building elements:
`{{~` / `~}}` trim all whitespace on that side, and a *standalone* tag (block open/close,
`else`, partial, decorator, comment or raw-block tag alone on its line, followed by a
newline) removes its line: the indentation before it (kept for partials, where it becomes
the partial's indent) and the newline after it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from webpipe.templating.errors import TemplateSyntaxError


class TagKind(enum.Enum):
    EXPR = "expr"  # {{x}}
    RAW_EXPR = "raw_expr"  # {{{x}}} {{&x}}
    OPEN = "open"  # {{#x}}
    OPEN_INVERSE = "open_inverse"  # {{^x}} (a Mustache inverted section)
    OPEN_PARTIAL = "open_partial"  # {{#> x}}
    OPEN_DECORATOR = "open_decorator"  # {{#*inline}}
    CLOSE = "close"  # {{/x}}
    ELSE = "else"  # {{else}} {{^}}
    ELSE_CHAIN = "else_chain"  # {{else if y}}
    PARTIAL = "partial"  # {{> x}}
    DECORATOR = "decorator"  # {{*x}}
    COMMENT = "comment"  # {{! }} {{!-- --}}
    RAW_OPEN = "raw_open"  # {{{{raw}}}}
    RAW_CLOSE = "raw_close"  # {{{{/raw}}}}


STANDALONE = frozenset(TagKind) - {TagKind.EXPR, TagKind.RAW_EXPR}

# (sigil, kind), longest first; a body starting with a sigil is that kind of tag.
_SIGILS = (
    ("#>", TagKind.OPEN_PARTIAL),
    ("#*", TagKind.OPEN_DECORATOR),
    ("#", TagKind.OPEN),
    ("/", TagKind.CLOSE),
    (">", TagKind.PARTIAL),
    ("*", TagKind.DECORATOR),
    ("&", TagKind.RAW_EXPR),
)


@dataclass(frozen=True, slots=True)
class Text:
    value: str
    pos: int


@dataclass(frozen=True, slots=True)
class Tag:
    kind: TagKind
    body: str  # the tag's inside without braces, sigil and `~`
    body_pos: int  # offset of `body` in the source, for error positions
    start: int  # offset of the opening braces
    end: int  # offset just after the closing braces
    trim_before: bool = False
    trim_after: bool = False
    indent: str | None = None  # partials: whitespace before the tag on its line


Token = Text | Tag


def tokenize(source: str) -> list[Token]:
    """Split `source` into tokens and apply whitespace control."""
    return apply_whitespace(_Scanner(source).run(), source)


class _Scanner:
    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.tokens: list[Token] = []
        self.text: list[str] = []
        self.text_pos = 0

    def run(self) -> list[Token]:
        while (start := self._text_until_tag()) is not None:
            self._flush_text()
            self._tag(start)
            self.text_pos = self.pos
        self._flush_text()
        return self.tokens

    def _text_until_tag(self) -> int | None:
        """Consume text (resolving escapes) up to the next tag; its offset or None at EOF."""
        src = self.src
        while (j := src.find("{{", self.pos)) >= 0:
            backslashes = _backslashes_before(src, j, self.pos)
            if backslashes == 1:  # \{{ or \{{{{ is literal text
                width = 4 if src.startswith("{{{{", j) else 2
                self.text.append(src[self.pos : j - 1] + src[j : j + width])
                self.pos = j + width
                continue
            # a run of 2+ backslashes before {{ loses one backslash; the tag stays a tag
            self.text.append(src[self.pos : j - 1 if backslashes else j])
            self.pos = j
            return j
        self.text.append(src[self.pos :])
        self.pos = len(src)
        return None

    def _flush_text(self) -> None:
        if self.text:
            self.tokens.append(Text("".join(self.text), self.text_pos))
            self.text = []

    def _tag(self, start: int) -> None:
        src = self.src
        if src.startswith("{{{{", start):
            self._raw_block(start)
        elif src.startswith("{{!", start):
            self._comment(start)
        elif src.startswith("{{{", start):
            end = _find_close(src, start + 3, "}}}")
            self._emit(TagKind.RAW_EXPR, start + 3, end, start, end + 3)
        else:
            end = _find_close(src, start + 2, "}}")
            self._mustache(start, end)

    def _comment(self, start: int) -> None:
        src = self.src
        end = src.find("--}}", start + 5) if src.startswith("{{!--", start) else -1
        close = end + 4
        if end < 0:
            end = src.find("}}", start + 3)
            close = end + 2
        if end < 0:
            raise TemplateSyntaxError("invalid handlebars syntax: unclosed comment", start)
        self.tokens.append(Tag(TagKind.COMMENT, "", start, start, close))
        self.pos = close

    def _mustache(self, start: int, end: int) -> None:
        body_start, body_end, trim_before, trim_after = _trim_marks(self.src, start + 2, end)
        body = self.src[body_start:body_end]
        stripped = body.lstrip()
        offset = body_start + len(body) - len(stripped)
        stripped = stripped.rstrip()
        kind, skip = _classify(stripped, offset)
        inner = stripped[skip:-1] if stripped.startswith("{") else stripped[skip:]
        tag = Tag(kind, inner.strip(), offset + skip, start, end + 2, trim_before, trim_after)
        self.tokens.append(tag)
        self.pos = end + 2

    def _emit(self, kind: TagKind, body_start: int, body_end: int, start: int, end: int) -> None:
        b_start, b_end, trim_before, trim_after = _trim_marks(self.src, body_start, body_end)
        body = self.src[b_start:b_end]
        self.tokens.append(Tag(kind, body.strip(), b_start, start, end, trim_before, trim_after))
        self.pos = end

    def _raw_block(self, start: int) -> None:
        src = self.src
        end = _find_close(src, start + 4, "}}}}")
        self._emit(TagKind.RAW_OPEN, start + 4, end, start, end + 4)
        opener = self.tokens[-1]
        assert isinstance(opener, Tag)
        if opener.body.startswith("/"):
            raise TemplateSyntaxError("invalid handlebars syntax: unexpected raw block end", start)
        content, close = _raw_content(src, self.pos)
        self.tokens.append(Text(content, self.pos))
        close_end = _find_close(src, close + 4, "}}}}")
        self._emit(TagKind.RAW_CLOSE, close + 4, close_end, close, close_end + 4)
        closer = self.tokens[-1]
        assert isinstance(closer, Tag)
        if not closer.body.startswith("/"):
            raise TemplateSyntaxError("invalid handlebars syntax: raw block not closed", close)
        self.tokens[-1] = replace(closer, body=closer.body[1:].strip())


def _classify(body: str, pos: int) -> tuple[TagKind, int]:
    """The kind of a `{{…}}` tag from the start of its body, and the sigil's length."""
    for sigil, kind in _SIGILS:
        if body.startswith(sigil):
            return kind, len(sigil)
    if body.startswith("{") and body.endswith("}") and len(body) >= 2:
        return TagKind.RAW_EXPR, 1  # {{~{ x }~}}
    if body == "^":
        return TagKind.ELSE, 1
    if body.startswith("^") and len(body) > 1 and not body[1].isspace():
        return TagKind.OPEN_INVERSE, 1
    if body == "else":
        return TagKind.ELSE, 4
    if body.startswith("else") and body[4].isspace():
        return TagKind.ELSE_CHAIN, 4
    if not body or body[0] in "^!}":
        raise TemplateSyntaxError("invalid handlebars syntax: {{" + body + "}}", pos)
    return TagKind.EXPR, 0


def _trim_marks(src: str, start: int, end: int) -> tuple[int, int, bool, bool]:
    """Strip `~` whitespace-control marks from a tag body at [start, end)."""
    trim_before = src.startswith("~", start) and start < end
    trim_after = end - 1 > start and src[end - 1] == "~"
    return start + trim_before, end - trim_after, trim_before, trim_after


def _find_close(src: str, pos: int, close: str) -> int:
    """Offset of the `close` braces ending a tag body; quotes and `{}` pairs are skipped."""
    depth = 0
    i = pos
    while i < len(src):
        ch = src[i]
        if ch in "\"'":
            i = _skip_string(src, i)
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0 and src.startswith(close, i):
                return i
            depth = max(0, depth - 1)
        i += 1
    raise TemplateSyntaxError("invalid handlebars syntax: unclosed tag", pos - len(close))


def _skip_string(src: str, i: int) -> int:
    quote = src[i]
    i += 1
    while i < len(src) and src[i] != quote:
        i += 2 if src[i] == "\\" else 1
    return i + 1


def _raw_content(src: str, pos: int) -> tuple[str, int]:
    """A raw block's text (escapes resolved) and the offset of the `{{{{` that ends it."""
    parts: list[str] = []
    while (j := src.find("{{", pos)) >= 0:
        backslashes = _backslashes_before(src, j, pos)
        if backslashes == 1:
            width = 4 if src.startswith("{{{{", j) else 2
            parts.append(src[pos : j - 1] + src[j : j + width])
            pos = j + width
            continue
        parts.append(src[pos : j - 1 if backslashes else j])
        if src.startswith("{{{{", j):
            return "".join(parts), j
        parts.append("{")
        pos = j + 1
    raise TemplateSyntaxError("invalid handlebars syntax: raw block not closed", pos)


def _backslashes_before(src: str, j: int, floor: int) -> int:
    k = j
    while k > floor and src[k - 1] == "\\":
        k -= 1
    return j - k


def apply_whitespace(tokens: list[Token], source: str) -> list[Token]:
    """Apply `~` trimming and standalone-line removal (see module docstring)."""
    out: list[Token] = []
    trim_next = standalone_next = False
    for tok in tokens:
        if isinstance(tok, Text):
            value = tok.value
            if trim_next:
                value = value.lstrip()
            elif standalone_next:
                value = _strip_first_newline(value.lstrip(" \t"))
            out.append(replace(tok, value=value))
            trim_next = standalone_next = False
            continue
        standalone = tok.kind in STANDALONE and _is_standalone(source, tok.start, tok.end)
        _trim_previous(out, tok, standalone)
        if tok.kind is TagKind.PARTIAL and not tok.trim_before:
            tok = replace(tok, indent=_trailing_blanks(source, tok.start))
        out.append(tok)
        trim_next, standalone_next = tok.trim_after, standalone
    return out


def _trim_previous(out: list[Token], tok: Tag, standalone: bool) -> None:
    prev = out[-1] if out else None
    if not isinstance(prev, Text):
        return
    if tok.trim_before:
        out[-1] = replace(prev, value=prev.value.rstrip())
    elif standalone and tok.kind is not TagKind.PARTIAL:
        out[-1] = replace(prev, value=prev.value.rstrip(" \t"))


def _is_standalone(src: str, start: int, end: int) -> bool:
    """Only blanks before the tag on its line, and blanks then a line break after it."""
    after = end
    while after < len(src) and src[after] in " \t":
        after += 1
    if after >= len(src) or src[after] not in "\r\n":
        return False
    before = start
    while before > 0 and src[before - 1] in " \t":
        before -= 1
    return before == 0 or src[before - 1] in "\r\n"


def _trailing_blanks(src: str, pos: int) -> str | None:
    start = pos
    while start > 0 and src[start - 1] in " \t":
        start -= 1
    return src[start:pos] or None


def _strip_first_newline(text: str) -> str:
    if text.startswith("\r\n"):
        return text[2:]
    return text[1:] if text.startswith("\n") else text
