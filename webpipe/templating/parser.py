"""Parser: lexer tokens → a `Program` tree (blocks, else chains, partial blocks).

Blocks nest with a stack discipline: `{{#if a}}…{{else if b}}…{{else}}…{{/if}}` becomes
`Block(if a, …, inverse=(Block(if b, …, inverse=…),))`, like Handlebars' chained inverse.
A closing tag must name the block it closes (`helper "if" was opened, but "each" is
closing`); a stray `{{else}}` or `{{/x}}` and an unclosed block are syntax errors.
"""

from __future__ import annotations

from typing import assert_never

from webpipe.templating.errors import TemplateSyntaxError
from webpipe.templating.exprs import MAX_NESTING, parse_call, parse_mustache, parse_partial
from webpipe.templating.lexer import Tag, TagKind, Text, Token, tokenize
from webpipe.templating.nodes import Block, Decorator, Mustache, Node, PartialCall, Program
from webpipe.templating.nodes import Text as TextNode

_STOPS = frozenset({TagKind.CLOSE, TagKind.ELSE, TagKind.ELSE_CHAIN})


def parse(source: str) -> Program:
    """Parse template text; raises TemplateSyntaxError with an offset."""
    parser = _Parser(tokenize(source))
    program, stop = parser.program()
    if stop is not None:
        raise _unexpected(stop)
    return program


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def next(self) -> Token | None:
        if self.index >= len(self.tokens):
            return None
        self.index += 1
        return self.tokens[self.index - 1]

    def program(self) -> tuple[Program, Tag | None]:
        """Nodes up to a closing/else tag (returned) or the end of input (None)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            opener = self.tokens[self.index - 1] if self.index else None
            raise TemplateSyntaxError(f"blocks nested more than {MAX_NESTING} levels deep",
                                      opener.start if isinstance(opener, Tag) else 0)
        try:
            return self._nodes()
        finally:
            self.depth -= 1

    def _nodes(self) -> tuple[Program, Tag | None]:
        nodes: list[Node] = []
        while (tok := self.next()) is not None:
            if isinstance(tok, Text):
                if tok.value:
                    nodes.append(TextNode(tok.value, tok.pos))
            elif tok.kind in _STOPS:
                return tuple(nodes), tok
            elif (node := self.tag(tok)) is not None:
                nodes.append(node)
        return tuple(nodes), None

    def tag(self, tok: Tag) -> Node | None:
        match tok.kind:
            case TagKind.COMMENT:
                return None
            case TagKind.EXPR | TagKind.RAW_EXPR:
                value = parse_mustache(tok.body, tok.body_pos)
                return Mustache(value, tok.kind is TagKind.EXPR, tok.start)
            case TagKind.OPEN:
                return self.block(tok)
            case TagKind.OPEN_INVERSE:
                return self.inverse_section(tok)
            case TagKind.OPEN_PARTIAL | TagKind.PARTIAL:
                return self.partial(tok)
            case TagKind.OPEN_DECORATOR | TagKind.DECORATOR:
                return self.decorator(tok)
            case TagKind.RAW_OPEN:
                return self.raw_block(tok)
            case TagKind.RAW_CLOSE | TagKind.CLOSE | TagKind.ELSE | TagKind.ELSE_CHAIN:
                raise _unexpected(tok)
            case _:
                assert_never(tok.kind)

    def block(self, tok: Tag) -> Block:
        node, stop = self._branches(tok)
        _expect_close(stop, tok, node.call.name, "helper")
        return node

    def inverse_section(self, tok: Tag) -> Block:
        """`{{^x}}…{{/x}}` renders when `x` is falsy or empty (Mustache/Handlebars.js), i.e.
        `{{#unless x}}…{{/unless}}` (spec/handlebars.md)."""
        call = parse_call(f"unless {tok.body}", tok.body_pos - len("unless "))
        program, stop = self.program()
        _expect_close(stop, tok, tok.body.split()[0], "section")
        return Block(call, program, None, tok.start)

    def _branches(self, tok: Tag, links: int = 0) -> tuple[Block, Tag | None]:
        """One block (or `else` link of a chain) up to the tag that ends it."""
        if self.depth + links > MAX_NESTING:
            raise TemplateSyntaxError(
                f"blocks nested more than {MAX_NESTING} levels deep", tok.start)
        call = parse_call(tok.body, tok.body_pos)
        program, stop = self.program()
        inverse: Program | None = None
        if stop is not None and stop.kind is TagKind.ELSE_CHAIN:
            chained, stop = self._branches(stop, links + 1)
            inverse = (chained,)
        elif stop is not None and stop.kind is TagKind.ELSE:
            inverse, stop = self.program()
        return Block(call, program, inverse, tok.start), stop

    def partial(self, tok: Tag) -> PartialCall:
        name, context, hashes = parse_partial(tok.body, tok.body_pos)
        body: Program | None = None
        if tok.kind is TagKind.OPEN_PARTIAL:
            body, stop = self.program()
            label = name if isinstance(name, str) else name.call.name
            _expect_close(stop, tok, label, "decorator")
        return PartialCall(name, context, hashes, tok.indent, body, tok.start)

    def decorator(self, tok: Tag) -> Decorator:
        call = parse_call(tok.body, tok.body_pos)
        body: Program | None = None
        if tok.kind is TagKind.OPEN_DECORATOR:
            body, stop = self.program()
            _expect_close(stop, tok, call.name, "decorator")
        return Decorator(call, body, tok.start)

    def raw_block(self, tok: Tag) -> Block:
        call = parse_call(tok.body, tok.body_pos)
        content, close = self.next(), self.next()
        assert isinstance(content, Text), "the lexer emits a raw block's text"
        assert isinstance(close, Tag) and close.kind is TagKind.RAW_CLOSE
        if close.body != call.name:
            raise _mismatch("helper", call.name, close)
        text = (TextNode(content.value, content.pos),) if content.value else ()
        return Block(call, text, None, tok.start)


def _expect_close(stop: Tag | None, opener: Tag, name: str, what: str) -> None:
    if stop is None:
        reason = f"invalid handlebars syntax: {what} {name!r} is never closed"
        raise TemplateSyntaxError(reason, opener.start)
    if stop.kind is not TagKind.CLOSE:
        raise _unexpected(stop)
    if stop.body != name:
        raise _mismatch(what, name, stop)


def _mismatch(what: str, name: str, close: Tag) -> TemplateSyntaxError:
    reason = f'{what} "{name}" was opened, but "{close.body}" is closing'
    return TemplateSyntaxError(reason, close.start)


def _unexpected(tok: Tag) -> TemplateSyntaxError:
    label = {TagKind.ELSE: "{{else}}", TagKind.ELSE_CHAIN: f"{{{{else {tok.body}}}}}"}.get(
        tok.kind, f"{{{{/{tok.body}}}}}"
    )
    return TemplateSyntaxError(f"invalid handlebars syntax: unexpected {label}", tok.start)
