"""Template syntax tree: frozen, slotted dataclasses with character offsets.

A template is a `Program` (a tuple of nodes). Expressions inside tags are `Value`s: JSON
literals, paths (`a.b`, `../x`, `@index`, `@root/y`) and sub-expressions (`(eq a 1)`).
Names follow handlebars-rust's template elements: `Mustache` is `Expression` /
`HtmlExpression`, `Block` is `HelperBlock` (raw blocks too), `PartialCall` covers
`PartialExpression` and `PartialBlock`, `Decorator` is `{{#*inline}}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JSON = Any


@dataclass(frozen=True, slots=True)
class Literal:
    """A JSON literal written in a tag: `"s"`, `'s'`, `1`, `2.5`, `true`, `null`, `[..]`, `{..}`."""

    value: JSON


@dataclass(frozen=True, slots=True)
class PathExpr:
    """A reference into the data; `this` segments are dropped as handlebars-rust does."""

    raw: str
    parts: tuple[str, ...] = ()
    ups: int = 0
    root: bool = False  # @root/...
    local: bool = False  # @index, @../key: a block's local variable (parts[0] is its name)


@dataclass(frozen=True, slots=True)
class SubExpr:
    """`(name params… hash…)`; `(path)` with no arguments keeps the path for value lookup."""

    call: Call
    path: PathExpr | None = None


Value = Literal | PathExpr | SubExpr


@dataclass(frozen=True, slots=True)
class Call:
    """A helper invocation: name, positional params, `key=value` hash, `as |a b|` params."""

    name: str
    params: tuple[Value, ...] = ()
    hash: tuple[tuple[str, Value], ...] = ()
    block_params: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Text:
    value: str
    pos: int


@dataclass(frozen=True, slots=True)
class Mustache:
    """`{{x}}` (escaped), `{{{x}}}` / `{{&x}}` (raw), or an inline helper call."""

    value: Call | Value
    escape: bool
    pos: int


@dataclass(frozen=True, slots=True)
class Block:
    """`{{#name …}}program{{else}}inverse{{/name}}`; `{{else if}}` nests a Block in inverse."""

    call: Call
    program: Program
    inverse: Program | None
    pos: int


@dataclass(frozen=True, slots=True)
class PartialCall:
    """`{{> name ctx k=v}}`, or with a body `{{#> name}}body{{/name}}` (a partial block)."""

    name: str | SubExpr
    context: Value | None
    hash: tuple[tuple[str, Value], ...]
    indent: str | None
    body: Program | None
    pos: int


@dataclass(frozen=True, slots=True)
class Decorator:
    """`{{#*inline "name"}}body{{/inline}}` (the only decorator handlebars-rust ships)."""

    call: Call
    body: Program | None
    pos: int


Node = Text | Mustache | Block | PartialCall | Decorator
Program = tuple[Node, ...]
