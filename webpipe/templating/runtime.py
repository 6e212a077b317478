"""Render-time state: scopes, path lookup and partial inclusion.

A `Scope` is one entry of handlebars-rust's block stack (`each`/`with` and partials with
arguments push one): its context value (`this`), block params (`as |x|`, and a partial's
hash) and local variables (`@index`, `@key`, `@first`, `@last`). Path lookup mirrors
`parse_json_visitor`: a first segment naming a block param anywhere on the stack wins;
otherwise `../` climbs that many scopes (falling back to the innermost one, as the
reference does) and the segments walk objects by key and arrays by index.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol

from webpipe.templating.errors import TemplateRenderError
from webpipe.templating.nodes import PathExpr

JSON = Any
EMPTY: Final[Mapping[str, JSON]] = MappingProxyType({})
PARTIAL_BLOCK: Final = "@partial-block"
MAX_PARTIAL_DEPTH: Final = 64
_INDEX = re.compile(r"\+?\d+")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()  # a path that does not resolve (distinct from null)


class Scope:
    """One block-stack entry. A plain slotted class, not a frozen dataclass: `#each` builds one
    per item and a frozen dataclass's `__init__` costs three times as much. Never mutated."""

    __slots__ = ("data", "params", "parent", "this")

    def __init__(self, this: JSON, parent: Scope | None = None,
                 params: Mapping[str, JSON] = EMPTY, data: Mapping[str, JSON] = EMPTY) -> None:
        self.this = this
        self.parent = parent
        self.params = params
        self.data = data

    def up(self, levels: int) -> Scope | None:
        scope: Scope | None = self
        for _ in range(levels):
            scope = scope.parent if scope is not None else None
        return scope


Render = Callable[["Ctx", Scope, list[str]], None]
Eval = Callable[["Ctx", Scope], JSON]


class Renderable(Protocol):
    """Something a partial call can render: a compiled template or a template fragment."""

    @property
    def name(self) -> str | None: ...

    def render_into(self, ctx: Ctx, scope: Scope, out: list[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class Fragment:
    """An unnamed piece of a template: an inline partial or a partial block's body."""

    render: Render
    name: str | None = None

    def render_into(self, ctx: Ctx, scope: Scope, out: list[str]) -> None:
        self.render(ctx, scope, out)


class PartialBlock:
    """The body of `{{#> layout}}body{{/layout}}`, seen as `@partial-block` inside layout
    (one per partial-block call: a plain slotted class, as Scope). Never mutated."""

    __slots__ = ("body", "outer")

    def __init__(self, body: Renderable, outer: PartialBlock | None) -> None:
        self.body = body
        self.outer = outer


@dataclass(slots=True)
class Ctx:
    """Per-render state shared by every element of one `render()` call."""

    root: JSON
    find_partial: Callable[[str], Renderable | None]
    inline: dict[str, Renderable] = field(default_factory=dict)
    partial_block: PartialBlock | None = None
    depth: int = 0


def lookup(path: PathExpr, scope: Scope, root: JSON) -> JSON:
    """The value at `path`; MISSING when it does not resolve."""
    if path.local:
        frame = scope.up(path.ups)
        start = MISSING if frame is None else frame.data.get(path.parts[0], MISSING)
        return walk(start, path.parts[1:])
    if path.root:
        return walk(root, path.parts)
    if path.parts:
        param = _block_param(scope, path.parts[0])
        if param is not MISSING:
            return walk(param, path.parts[1:])
    frame = scope.up(path.ups) or scope
    return walk(frame.this, path.parts)


def _block_param(scope: Scope | None, name: str) -> JSON:
    while scope is not None:
        if name in scope.params:
            return scope.params[name]
        scope = scope.parent
    return MISSING


def walk(value: JSON, parts: tuple[str, ...]) -> JSON:
    for part in parts:
        if isinstance(value, dict):
            value = value.get(part, MISSING)
        elif isinstance(value, list):
            if _INDEX.fullmatch(part) is None:
                raise TemplateRenderError(f"Cannot access array/vector with string index, {part}")
            index = int(part)
            value = value[index] if index < len(value) else MISSING
        else:
            return MISSING
    return value


def include_partial(ctx: Ctx, scope: Scope, out: list[str], name: str,
                    indent: str | None, body: Renderable | None) -> None:
    """Render partial `name` (or `@partial-block`) into `out`; `body` is a partial block's."""
    if name == PARTIAL_BLOCK:
        current = ctx.partial_block
        if current is not None:
            _render(ctx, scope, out, current.body, indent, current.outer)
        elif body is not None:
            _render(ctx, scope, out, body, indent, None)
        else:
            raise TemplateRenderError(f"Partial not found {name}")
        return
    target = ctx.inline.get(name) or ctx.find_partial(name) or body
    if target is None:
        raise TemplateRenderError(f"Partial not found {name}")
    block = ctx.partial_block if body is None else PartialBlock(body, ctx.partial_block)
    _render(ctx, scope, out, target, indent, block)


def _render(ctx: Ctx, scope: Scope, out: list[str], target: Renderable, indent: str | None,
            block: PartialBlock | None) -> None:
    if ctx.depth >= MAX_PARTIAL_DEPTH:
        raise TemplateRenderError(f"Partials nested deeper than {MAX_PARTIAL_DEPTH} levels")
    saved = ctx.partial_block
    ctx.partial_block = block
    ctx.depth += 1
    buffer: list[str] = [] if indent else out
    try:
        target.render_into(ctx, scope, buffer)
    finally:
        ctx.partial_block = saved
        ctx.depth -= 1
    if indent:
        out.append(indent_lines("".join(buffer), indent))


def indent_lines(text: str, indent: str) -> str:
    """Prefix every line after the first with `indent` (not an empty last line)."""
    lines = text.split("\n")
    last = len(lines) - 1
    return "\n".join(
        line if i == 0 or (i == last and not line) else indent + line
        for i, line in enumerate(lines)
    )
