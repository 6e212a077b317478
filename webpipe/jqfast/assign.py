"""Assignment operators on constant paths: `.a.b = v`, `.a |= f`, `.trace += ["x"]`, `//=`.

libjq defines them with `path(...)`, `getpath`, `setpath` and `reduce` (`_assign`,
`_modify` in builtin.jq). The subset accepts only a left side made of constant keys
(`.a`, `.["a"]`, `.[0]`, chained), which has exactly one path, so the definitions reduce to:
for each output `$x` of the right side (evaluated on `.`), set the path. `|=` uses the first
output of the update; an update with no output (a deletion) and paths through anything but
null, objects and arrays fall back to libjq.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from webpipe.jqfast import nodes as n
from webpipe.jqfast.code import Code, Env, each_value, first_output, single
from webpipe.jqfast.errors import Fallback, Unsupported
from webpipe.jqfast.ops import BINARY_OPS, getpath, setpath
from webpipe.jqfast.values import truthy

Path = tuple[str | int, ...]


def constant_path(node: n.Node) -> Path:
    """The keys of `.a.b[0]`, or `Unsupported` for anything that is not a constant path."""
    match node:
        case n.Identity():
            return ()
        case n.Index(term=term, key=n.Literal(value=key), opt=False) if (
                type(key) is str or (type(key) is int and key >= 0)):
            return (*constant_path(term), key)
        case _:
            raise Unsupported("assignment to a path that is not a constant path")


def compile_assign(node: n.Assign, compile_node: Callable[[n.Node], Code]) -> Code:
    path = constant_path(node.path)
    rhs = compile_node(node.rhs)
    if node.op == "|":
        return _compile_modify(path, rhs)
    update = _updater(node.op)

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for x in each_value(rhs, v, env):
            yield setpath(v, path, update(getpath(v, path), x))

    one = rhs.one
    if one is None:
        return Code(gen)

    def single_value(v: Any, env: Env) -> Any:
        x = one(v, env)  # the right side is the outer loop: evaluated before the path
        return setpath(v, path, update(getpath(v, path), x))

    return Code(gen, single_value)


def _updater(op: str) -> Callable[[Any, Any], Any]:
    if op == "":
        return lambda old, new: new
    if op == "//":
        return lambda old, new: old if truthy(old) else new
    return BINARY_OPS[op]


def _compile_modify(path: Path, update: Code) -> Code:
    def one(v: Any, env: Env) -> Any:
        found, new = first_output(update, getpath(v, path), env)
        if not found:
            raise Fallback  # `|= empty` deletes the path: left to libjq
        return setpath(v, path, new)

    return single(one)
