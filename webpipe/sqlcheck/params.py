"""What a `pg` step passes as parameters, as far as the program text tells at load.

A step's parameters are its inline argument (`pg([.a, .b])`) or the `sqlParams` of the state
it gets. Their number is known when the argument is an array literal whose elements each
yield exactly one value, or when the step right before is an untagged `jq` step whose
output's `sqlParams` is such an array (`{sqlParams: [...]}`, `. + {sqlParams: [...]}`,
`.sqlParams = [...]`). Both are read with the jq fast path's parser (webpipe/jqfast/);
anything outside what it parses, or any other construct, leaves the count unknown. An
element that is a route parameter (`.params.id`) no earlier step converts is remembered
for the route parameter warning (spec/sqlcheck.md).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from webpipe.executor.env import child_pipelines
from webpipe.jqfast import nodes as j
from webpipe.jqfast.errors import JqSyntaxError, Unsupported
from webpipe.jqfast.parser import parse as parse_jq
from webpipe.syntax import nodes as n

# builtins that turn one input into exactly one output (or an error)
SINGLE_CALLS = frozenset({
    "tonumber", "tostring", "length", "ascii_downcase", "ascii_upcase", "ltrimstr",
    "rtrimstr", "split", "join", "keys", "values", "type", "floor", "ceil", "round", "sqrt",
    "tojson", "fromjson", "not", "add", "abs", "trim", "ltrim", "rtrim", "utf8bytelength",
})
_ROUTE_PARAM = re.compile(r"[:*]([A-Za-z_][A-Za-z0-9_]*)")
_CONVERTS = re.compile(r"tonumber|tostring|\|=|\bparams\s*=[^=]|\bparams\.[A-Za-z0-9_]+\s*=[^=]")
_ABSENT = ()  # an output object known to have no `sqlParams`: no parameters


@dataclass(frozen=True, slots=True)
class ParamShape:
    """The parameters one `pg` step passes: each element's jq tree when the count is known
    (`elements` None otherwise), and the route parameters still as the request had them."""

    elements: tuple[j.Node, ...] | None = None
    raw_params: frozenset[str] = frozenset()

    def route_param(self, index: int) -> str | None:
        """The route parameter element `index` (0-based) passes unconverted, if any."""
        if self.elements is None or index >= len(self.elements):
            return None
        match self.elements[index]:
            case j.Index(term=j.Index(term=j.Identity(), key=j.Literal(value="params")),
                         key=j.Literal(value=str() as name), opt=False) \
                    if name in self.raw_params:
                return name
        return None


def step_params(pipeline: n.Pipeline, route: n.Route | None,
                ) -> Iterator[tuple[n.MiddlewareStep, ParamShape]]:
    """Every middleware step of `pipeline` (nested ones too) with its parameter shape."""
    raw = frozenset(_ROUTE_PARAM.findall(route.path)) if route is not None else frozenset()
    yield from _walk(pipeline, raw)


def _walk(pipeline: n.Pipeline, raw: frozenset[str],
          ) -> Iterator[tuple[n.MiddlewareStep, ParamShape]]:
    previous: n.Step | None = None
    for step in pipeline.steps:
        if isinstance(step, n.MiddlewareStep):
            yield step, ParamShape(_elements(step, previous), raw)
            if _converts(step):
                raw = frozenset()
        else:
            for child in child_pipelines(step):
                yield from _walk(child, raw)
        previous = step


def _converts(step: n.MiddlewareStep) -> bool:
    """Whether a step may rewrite the request's parameters (then none counts as raw)."""
    text = step.config or ""
    if step.name in ("lua", "js"):
        return "params" in text
    return step.name == "jq" and "params" in text and bool(_CONVERTS.search(text))


def _elements(step: n.MiddlewareStep, previous: n.Step | None) -> tuple[j.Node, ...] | None:
    if step.name != "pg":
        return None
    if step.args:
        if step.arg_form != "(":
            return None
        tree = _parse(step.args[0])
        return _array(tree) if tree is not None else None
    if not (isinstance(previous, n.MiddlewareStep) and previous.name == "jq"
            and previous.tags is None and previous.config_kind is n.ConfigKind.BACKTICK
            and previous.config is not None):
        return None
    tree = _parse(previous.config)
    return _sql_params(tree) if tree is not None else None


@functools.lru_cache(maxsize=1024)  # most steps pass the same few arrays; trees are frozen
def _parse(text: str) -> j.Node | None:
    try:
        return parse_jq(text)
    except (JqSyntaxError, Unsupported, RecursionError):
        return None


def _sql_params(node: j.Node) -> tuple[j.Node, ...] | None:
    """The `sqlParams` elements of the jq program's output object (`()` when it surely has
    none), or None when that is not visible."""
    match node:
        case j.MakeObject(entries=entries):
            for entry in entries:
                if entry.key == j.Literal("sqlParams"):
                    return _array(entry.value) if entry.value is not None else None
            literal = all(isinstance(e.key, j.Literal) and e.value is not None for e in entries)
            return _ABSENT if literal else None
        case j.BinOp(op="+", left=left, right=j.MakeObject() as right):
            found = _sql_params(right)
            return _sql_params(left) if found == _ABSENT else found
        case j.Pipe(right=right):
            return _sql_params(right) if isinstance(right, j.MakeObject) else None
        case j.Assign(op="", path=j.Index(term=j.Identity(), key=j.Literal(value="sqlParams")),
                      rhs=rhs):
            return _array(rhs)
    return None


def _array(node: j.Node) -> tuple[j.Node, ...] | None:
    """The elements of an array literal whose every element yields one value."""
    if not isinstance(node, j.Collect):
        return None
    items: list[j.Node] = []
    stack = [node.body] if node.body is not None else []
    while stack:
        part = stack.pop()
        if isinstance(part, j.Comma):
            stack += [part.right, part.left]
        elif single(part):
            items.append(part)
        else:
            return None
    return tuple(items)


def single(node: j.Node | None) -> bool:
    """Whether `node` yields exactly one value (or fails) on any input."""
    match node:
        case None | j.Identity() | j.Literal() | j.Var() | j.Collect():
            return True
        case j.Str(parts=parts):
            return all(isinstance(p, str) or single(p) for p in parts)
        case j.Index(term=a, key=b, opt=False):
            return single(a) and single(b)
        case j.Slice(term=a, start=b, end=c, opt=False):
            return single(a) and single(b) and single(c)
        case j.Pipe(left=a, right=b) | j.BinOp(left=a, right=b) | j.And(left=a, right=b) \
                | j.Or(left=a, right=b) | j.Alternative(left=a, right=b):
            return single(a) and single(b)
        case j.Neg(operand=a):
            return single(a)
        case j.If(cond=a, then=b, else_=c):
            return single(a) and single(b) and single(c)
        case j.MakeObject(entries=entries):
            return all(single(e.key) and single(e.value) for e in entries)
        case j.Call(name=name, args=args):
            return name in SINGLE_CALLS and all(single(a) for a in args)
    return False


def describe(node: j.Node) -> str:
    """`.params.id` for a path of literal keys (the only elements messages name)."""
    match node:
        case j.Index(term=j.Identity(), key=j.Literal(value=str() as key)):
            return f".{key}"
        case j.Index(term=term, key=j.Literal(value=str() as key)):
            return f"{describe(term)}.{key}"
    return "this parameter"
