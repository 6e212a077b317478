"""The parser: our driver over the tables Lark's standalone tool generated (driver.py,
lark_tables.py), Lark itself as the fallback, and the conversion of Lark's syntax errors
into `WpSyntaxError`.

The grammar lives in the top-level `grammar/webpipe.lark`; the wheel ships it as
`webpipe/grammar/webpipe.lark` (hatch `force-include`). `grammar_path()` looks in the
installed package first, then in the source checkout. Lark is imported only inside
`webpipe.syntax`; callers see `nodes.Program` or `WpSyntaxError`.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from webpipe.errors import WpSyntaxError
from webpipe.source import Source
from webpipe.syntax import lark_tables
from webpipe.syntax import nodes as n
from webpipe.syntax.driver import Driver
from webpipe.syntax.errors import describe_unexpected_char, describe_unexpected_token
from webpipe.syntax.nesting import MAX_NESTING, check_nesting
from webpipe.syntax.transform import ToAst

_PACKAGE_GRAMMAR = Path(__file__).resolve().parent.parent / "grammar" / "webpipe.lark"
_CHECKOUT_GRAMMAR = Path(__file__).resolve().parents[2] / "grammar" / "webpipe.lark"


def grammar_path() -> Path:
    """Where the grammar is: inside the installed package, else in the source tree."""
    for path in (_PACKAGE_GRAMMAR, _CHECKOUT_GRAMMAR):
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"webpipe grammar not found at {_PACKAGE_GRAMMAR} or {_CHECKOUT_GRAMMAR}")


class _CommentSink:
    """Collects COMMENT tokens during one parse (the Lark instance is shared)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: list[Token] = []

    def __call__(self, token: Token) -> Token:
        self.tokens.append(token)
        return token


_COMMENTS = _CommentSink()


@cache
def _lark() -> Lark:
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        regex=True,
        propagate_positions=True,
        maybe_placeholders=False,
        lexer_callbacks={"COMMENT": _COMMENTS},
        cache=True,
    )


@cache
def _driver() -> Driver:
    return Driver(lark_tables)


def parse(source: Source, *, lark_only: bool = False, read: Source | None = None,
          ) -> n.Program:
    """Parse one file into a `Program`, or raise `WpSyntaxError` pointing at the mistake.

    The driver (webpipe/syntax/driver.py) parses every file and reports syntax errors as
    Lark would; with `lark_only`, or when a rule method raises, Lark's parser and `ToAst`'s
    walk run instead. `read` is a stand-in text at the same offsets (one item of the file,
    or the file with its broken items blanked: recover.py): it is parsed, and every span
    and error is placed in `source`."""
    read = read or source
    if not lark_only:
        try:
            done = _driver().parse(read.text, ToAst(source, extents=True))
        except UnexpectedInput as exc:
            raise _syntax_error(read, exc, source) from None
        if done is not None:
            return _program(source, *done)
    with _COMMENTS.lock:
        _COMMENTS.tokens = []
        try:
            tree = _lark().parse(read.text)
        except UnexpectedInput as exc:
            raise _syntax_error(read, exc, source) from None
        comments = _COMMENTS.tokens
    try:
        program = ToAst(source).transform(tree)  # a WpSyntaxError from it propagates as is
    except RecursionError:  # Lark's tree walk recurses; the driver does not
        raise WpSyntaxError(f"nested too deeply (more than {MAX_NESTING} levels)",
                            span=source.span(0, 0)) from None
    return _program(source, program, comments)


def _program(source: Source, program: n.Program, comments: list[Token]) -> n.Program:
    check_nesting(program)
    spans = (source.span(t.start_pos or 0, t.end_pos or 0) for t in comments)
    notes = tuple(n.Comment(text=str(t), span=s) for t, s in zip(comments, spans, strict=True))
    return n.Program(items=program.items, comments=notes, span=program.span)


def _syntax_error(source: Source, exc: UnexpectedInput, placed: Source) -> WpSyntaxError:
    """Worded from the text read (`source`), placed in the file's `Source`."""
    if isinstance(exc, UnexpectedCharacters):
        message, start, end = describe_unexpected_char(source, exc.pos_in_stream or 0, exc.allowed)
    elif isinstance(exc, UnexpectedToken):
        message, start, end = describe_unexpected_token(source, exc)
    else:
        pos = getattr(exc, "pos_in_stream", None) or len(source.text)
        message, start, end = "unexpected end of file", pos, pos
    return WpSyntaxError(message, span=placed.span(start, end))
