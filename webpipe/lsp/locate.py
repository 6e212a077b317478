"""Where things are in the text: nodes under a cursor, and the parts of a step or declaration.

The AST keeps one span per node; editors need finer positions (a step's name, its config,
a declaration's name). These helpers recover them from the source text with small scanners
that follow grammar/webpipe.lark, so the parser and the nodes stay free of editor concerns.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass

from webpipe.source import Source, Span
from webpipe.syntax import nodes as n

NAME = r"[A-Za-z0-9_][A-Za-z0-9_-]*"
_WORD = re.compile(rf"{NAME}(?:::{NAME})?")
_HEAD = re.compile(rf"\|>\s*({NAME}(?:::{NAME})?)")
_COLON = re.compile(r"\s*:\s*")


def nodes_at(program: n.Program, offset: int) -> list[object]:
    """Nodes whose span contains `offset`, outermost first."""
    chain: list[object] = []
    for item in program.items:
        if _contains(item.span, offset):
            chain.append(item)
            chain.extend(_descend(item, offset))
            break
    return chain


def _descend(node: object, offset: int) -> Iterator[object]:
    for child in _children(node):
        span = getattr(child, "span", None)
        if isinstance(span, Span) and _contains(span, offset):
            yield child
            yield from _descend(child, offset)
            return


def _children(node: object) -> Iterator[object]:
    if not dataclasses.is_dataclass(node):
        return
    for f in dataclasses.fields(node):
        if f.name == "span":
            continue
        value = getattr(node, f.name)
        yield from value if isinstance(value, tuple) else (value,)


def _contains(span: Span, offset: int) -> bool:
    return span.start <= offset <= span.end


def word_at(source: Source, offset: int, pattern: re.Pattern[str] = _WORD,
            ) -> tuple[int, int, str] | None:
    """The (start, end, text) of the `pattern` match around `offset` on its line."""
    text = source.text
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line_end = len(text) if line_end < 0 else line_end
    for m in pattern.finditer(text, line_start, line_end):
        if m.start() <= offset <= m.end():
            return m.start(), m.end(), m.group()
    return None


@dataclass(frozen=True, slots=True)
class StepLayout:
    """Offsets of a middleware step's name and of its config text (without delimiters)."""

    name: tuple[int, int]
    config: tuple[int, int] | None


def step_layout(step: n.MiddlewareStep) -> StepLayout:
    text = step.span.source.text
    head = _HEAD.match(text, step.span.start)
    if head is None:  # every regular step starts with `|> name`
        return StepLayout((step.span.start, step.span.start), None)
    pos = skip_args(text, head.end(1))
    colon = _COLON.match(text, pos)
    if step.config is None or colon is None or step.config_kind is n.ConfigKind.LIST:
        return StepLayout(head.span(1), None)
    quoted = step.config_kind in (n.ConfigKind.BACKTICK, n.ConfigKind.QUOTED)
    start = colon.end() + (1 if quoted else 0)
    return StepLayout(head.span(1), (start, start + len(step.config)))


def skip_args(text: str, pos: int) -> int:
    """The offset after inline arguments `(...)`/`[...]` at `pos` (nesting and "strings")."""
    if pos >= len(text) or text[pos] not in "([":
        return pos
    depth, i = 0, pos
    while i < len(text):
        ch = text[i]
        if ch == '"':
            close = text.find('"', i + 1)
            i = len(text) if close < 0 else close
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return pos


def name_span(item: n.Item | n.Describe | n.It) -> Span:
    """The span of a declaration's name (the whole item when it has none)."""
    match item:
        case n.Variable(kind=kind, name=name):
            return _find(item.span, name, len(kind))
        case n.NamedPipeline(name=name):
            return _find(item.span, name, len("pipeline"))
        case n.Resolver(kind="resolver", type_name=t, field_name=f):
            return _find(item.span, f"{t}.{f}", len("resolver"))
        case n.Resolver(kind=kind, field_name=f):
            return _find(item.span, f, len(kind))
        case n.Route(path=path):
            return item.span.source.span(item.span.start, _find(item.span, path, 0).end)
        case n.ConfigBlock(name=name):
            return _find(item.span, name, len("config"))
        case n.Import(path=path, alias=alias):
            return _find(item.span, alias, _find(item.span, f'"{path}"', 0).end - item.span.start)
        case n.Describe(name=name) | n.It(name=name):
            return _find(item.span, f'"{name}"', 0)
    return item.span


def _find(span: Span, needle: str, skip: int) -> Span:
    at = span.source.text.find(needle, span.start + skip, span.end)
    if at < 0:
        return span
    return span.source.span(at, at + len(needle))
