"""The typed AST of a `.wp` file.

Nodes are frozen, slotted, keyword-only dataclasses with tuple fields. Every node carries a
`span` that is excluded from equality and repr, so golden tests compare structure while a
separate check covers positions. Nodes hold no runtime artefacts: compiled programs live in
the executor's prepared tables, keyed by node identity.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from webpipe.source import Span


class ConfigKind(enum.Enum):
    """How a step's config was written."""

    NONE = "none"
    BACKTICK = "backtick"
    QUOTED = "quoted"
    IDENT = "ident"
    LIST = "list"  # `join: a, b` written without backticks


# ---- tags -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Tag:
    name: str
    negated: bool = False
    args: tuple[str, ...] = ()
    has_parens: bool = False
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TagAnd:
    items: tuple[TagExpr, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TagOr:
    items: tuple[TagExpr, ...]
    span: Span = field(compare=False, repr=False)


TagExpr = Tag | TagAnd | TagOr


# ---- steps ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Pipeline:
    steps: tuple[Step, ...] = ()
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class MiddlewareStep:
    """`|> name(args): config @tags` — a middleware call or a named-pipeline call."""

    name: str
    config: str | None = None
    config_kind: ConfigKind = ConfigKind.NONE
    args: tuple[str, ...] = ()
    arg_form: Literal["", "(", "["] = ""
    tags: TagExpr | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultBranch:
    name: str
    status: int
    pipeline: Pipeline
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultStep:
    branches: tuple[ResultBranch, ...] = ()
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class IfStep:
    condition: Pipeline
    then: Pipeline
    else_: Pipeline | None = None
    has_end: bool = False
    span: Span = field(compare=False, repr=False)
    # offsets of the `then:` and `else:` keywords, so `fmt` keeps comments before them
    then_at: int = field(default=-1, compare=False, repr=False)
    else_at: int = field(default=-1, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchCase:
    condition: TagExpr
    pipeline: Pipeline
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchStep:
    cases: tuple[DispatchCase, ...] = ()
    default: Pipeline | None = None
    has_end: bool = False
    span: Span = field(compare=False, repr=False)
    default_at: int = field(default=-1, compare=False, repr=False)  # offset of `default:`


@dataclass(frozen=True, slots=True, kw_only=True)
class ForeachStep:
    selector: str
    pipeline: Pipeline
    span: Span = field(compare=False, repr=False)


Step = MiddlewareStep | ResultStep | IfStep | DispatchStep | ForeachStep


# ---- top-level declarations -------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvRef:
    """`$NAME` or `$NAME || default` in a config block."""

    var: str
    default: str | int | bool | None = None
    has_default: bool = False
    span: Span = field(compare=False, repr=False)


ConfigValue = str | int | bool | EnvRef


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigProp:
    key: str
    value: ConfigValue
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigBlock:
    name: str
    props: tuple[ConfigProp, ...] = ()
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Import:
    path: str
    alias: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureFlags:
    pipeline: Pipeline
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphqlSchema:
    sdl: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolver:
    """`query NAME =`, `mutation NAME =` or `resolver Type.field =`."""

    kind: Literal["query", "mutation", "resolver"]
    type_name: str  # "Query", "Mutation" or the object type
    field_name: str
    pipeline: Pipeline
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class NamedPipeline:
    name: str
    pipeline: Pipeline
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Variable:
    kind: str
    name: str
    body: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    method: str
    path: str
    pipeline: Pipeline
    span: Span = field(compare=False, repr=False)


# ---- tests ------------------------------------------------------------------------

ValueKind = Literal["backtick", "quoted", "rest", "number", "true", "false", "null"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Value:
    """A literal in a test: its raw text (delimiters removed) and how it was written."""

    text: str
    kind: ValueKind
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Let:
    name: str
    value: Value
    span: Span = field(compare=False, repr=False)


MockKind = Literal["middleware", "named", "pipeline", "query", "mutation"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Mock:
    """`with|and mock TARGET returning `jq``. `target` is the text as written."""

    target: str
    kind: MockKind
    middleware: str  # middleware, pipeline/query/mutation, or GraphQL type for Type.field
    name: str | None
    returning: str
    keyword: Literal["with", "and"] = "with"
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTrigger:
    method: str
    path: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineTrigger:
    name: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class VariableTrigger:
    kind: str
    name: str
    span: Span = field(compare=False, repr=False)


Trigger = CallTrigger | PipelineTrigger | VariableTrigger

ClauseKind = Literal["input", "body", "headers", "cookies", "stdin", "args", "options"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestClause:
    kind: ClauseKind
    value: Value
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldAssertion:
    """`then status is 200`, ``and output `.a` equals 1``, `and header "X" contains v`."""

    subject: str
    path: Value | None = None
    op: str
    value: Value | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectorAssertion:
    selector: Value
    check: Literal["exists", "not_exists", "text", "count", "attribute"]
    attribute: Value | None = None
    op: str = ""
    value: Value | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAssertion:
    kind: Literal["query", "mutation", "pipeline"]
    name: str
    value: Value
    span: Span = field(compare=False, repr=False)


Assertion = FieldAssertion | SelectorAssertion | CallAssertion


@dataclass(frozen=True, slots=True, kw_only=True)
class It:
    name: str
    mocks: tuple[Mock, ...] = ()
    lets: tuple[Let, ...] = ()
    trigger: Trigger
    clauses: tuple[RequestClause, ...] = ()
    assertions: tuple[Assertion, ...] = ()
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Describe:
    """A describe block; `items` keeps `let`, mocks and `it`s in source order."""

    name: str
    items: tuple[Let | Mock | It, ...] = ()
    span: Span = field(compare=False, repr=False)

    @property
    def lets(self) -> tuple[Let, ...]:
        return tuple(i for i in self.items if isinstance(i, Let))

    @property
    def mocks(self) -> tuple[Mock, ...]:
        return tuple(i for i in self.items if isinstance(i, Mock))

    @property
    def tests(self) -> tuple[It, ...]:
        return tuple(i for i in self.items if isinstance(i, It))


Item = (
    ConfigBlock
    | Import
    | FeatureFlags
    | GraphqlSchema
    | Resolver
    | NamedPipeline
    | Variable
    | Route
    | Describe
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Comment:
    text: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Program:
    """One parsed file: items in source order, and its comments (for `fmt`)."""

    items: tuple[Item, ...] = ()
    comments: tuple[Comment, ...] = field(default=(), compare=False, repr=False)
    span: Span = field(compare=False, repr=False)
