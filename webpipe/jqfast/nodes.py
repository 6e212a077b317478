"""The jq syntax tree of the fast-path subset: frozen, slotted dataclasses.

`parser.parse` builds these; `compile.compile_node` turns each into closures. String
interpolation keeps its parts (`Str`), `elif` chains become nested `If`, `.a` is
`Index(Identity(), Literal("a"))`, and `{a}` / `{"a"}` shorthands get `value=None`
(meaning "index the input by the key").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Identity:
    pass


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Str:
    """A string with interpolations: parts are text or expressions (rendered by tostring)."""

    parts: tuple[str | Node, ...]


@dataclass(frozen=True, slots=True)
class Index:
    term: Node
    key: Node
    opt: bool = False


@dataclass(frozen=True, slots=True)
class Slice:
    term: Node
    start: Node | None
    end: Node | None
    opt: bool = False


@dataclass(frozen=True, slots=True)
class Iterate:
    term: Node
    opt: bool = False


@dataclass(frozen=True, slots=True)
class Pipe:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Comma:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Node


@dataclass(frozen=True, slots=True)
class BinOp:
    """Arithmetic and comparison: `+ - * / % == != < <= > >=`."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Alternative:
    """`left // right`."""

    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Assign:
    """`path = rhs`, `path |= rhs`, `path += rhs`, ... (`op` without the `=`: "", "|", "+")."""

    op: str
    path: Node
    rhs: Node


@dataclass(frozen=True, slots=True)
class If:
    cond: Node
    then: Node
    else_: Node | None


@dataclass(frozen=True, slots=True)
class Try:
    body: Node
    catch: Node | None


@dataclass(frozen=True, slots=True)
class Collect:
    """`[body]`; `body` is None for `[]`."""

    body: Node | None


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    key: Node
    value: Node | None  # None: `{a}` / `{"a"}` / `{$x}` shorthand, value is `.[key]`


@dataclass(frozen=True, slots=True)
class MakeObject:
    entries: tuple[ObjectEntry, ...]


@dataclass(frozen=True, slots=True)
class Var:
    name: str


@dataclass(frozen=True, slots=True)
class Bind:
    """`source as $name | body`."""

    source: Node
    name: str
    body: Node


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...] = ()


Node = (Identity | Literal | Str | Index | Slice | Iterate | Pipe | Comma | Neg | BinOp | And
        | Or | Alternative | Assign | If | Try | Collect | MakeObject | Var | Bind | Call)
