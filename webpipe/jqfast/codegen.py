"""Code generation: a fast-path program's syntax tree → one Python function, compiled once.

`generate(tree, mode)` writes the source of `_run(v, env)` in continuation-passing style:
each node's emitter writes the statements that compute its outputs and calls the
continuation `k(expr, kind)` once per place an output is ready, so a generator (`.[]`,
`range`) becomes a Python `for` whose body is the rest of the program, and a single-output
node a local assignment. The final continuation is `return` (mode "first": the first
output, so later errors never surface, as with jq's lazy outputs) or `yield` (mode
"outputs"). Every emitter makes the calls the closures of `compile.py` make, in the same
order: the same `ops`/`values`/`numeric` helpers and the same `budget.spend` charges, so
results, error text, `Fallback` and budget exhaustion are the closures'. A node the
emitters do not cover (`try`, slices, some builtins, branches with several outputs) runs
through its closure, passed into the function's globals, so coverage grows
node by node. `outform.py` tracks which values are already in output form, where the final
copy (`to_output`) is skipped and only its budget charges are kept. The closures stay the
general path and the reference of the differential tests (tests/jqfast/test_codegen.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from webpipe.jqfast import nodes as n
from webpipe.jqfast import outform
from webpipe.jqfast.budget import spend, spend_each
from webpipe.jqfast.code import Code, lookup
from webpipe.jqfast.compile import compile_node, object_key
from webpipe.jqfast.emitters import HANDLERS
from webpipe.jqfast.errors import JqFastError
from webpipe.jqfast.generators import range_from
from webpipe.jqfast.numeric import FLOAT_TYPES, MAX_SAFE, CFloat, computed
from webpipe.jqfast.ops import (
    add,
    divide,
    getpath,
    index,
    iterate,
    modulo,
    multiply,
    negate,
    setpath,
    subtract,
)
from webpipe.jqfast.values import compare, equal, to_output

Kind = outform.Kind
Cont = Callable[[str, Kind], None]
Run = Callable[[Any, dict[str, Any]], Any]

_DISPLAY = re.compile(r"\s*(o\d+) = \{")  # emitters.emit_object's displays
MAX_LINES = 600  # continuations are copied into `,` branches: past this, closures only
_HELPERS: dict[str, Any] = {
    "spend": spend, "spend_each": spend_each, "lookup": lookup, "object_key": object_key,
    "JqFastError": JqFastError, "range_from": range_from, "index": index,
    "iterate": iterate, "negate": negate, "add": add, "subtract": subtract,
    "multiply": multiply, "divide": divide, "modulo": modulo, "compare": compare,
    "equal": equal, "to_output": to_output, "CFloat": CFloat, "computed": computed,
    "FLOAT_TYPES": FLOAT_TYPES, "getpath": getpath, "setpath": setpath,
}


class TooBig(Exception):
    """The generated source grew past MAX_LINES: the program keeps its closures."""


def generate(tree: n.Node, mode: str, name: str = "jq") -> Run | None:
    """The compiled `_run(v, env)` for `tree` (mode "first" returns the first output, as
    `to_output` converts it, or None; "outputs" yields every output), or None when the
    source would be too big or Python refuses it (blocks nested too deep)."""
    emitter = Emitter()
    try:
        emitter.emit(tree, "v", None, "env", emitter.sink(mode))
    except (TooBig, RecursionError):
        return None
    end = "return None" if mode == "first" else "yield from ()"
    lines = _without_unused_displays(emitter.lines)
    source = "\n".join(["def _run(v, env):", *lines, f"    {end}", ""])
    try:
        code = compile(source, f"<jq {name}>", "exec")
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None
    namespace = emitter.namespace
    exec(code, namespace)  # our own source, generated from the parse tree
    run: Run = namespace["_run"]
    run.source = source  # type: ignore[attr-defined]  # for tests and debugging
    return run


def _without_unused_displays(lines: list[str]) -> list[str]:
    """Drop object displays nothing reads (the output was rebuilt from their values by
    `outform.output_lines`): a display of locals has no effect of its own."""
    kept = list(lines)
    for i in range(len(kept) - 1, -1, -1):
        found = _DISPLAY.match(kept[i])
        if found and not any(re.search(rf"\b{found[1]}\b", text) for text in kept[i + 1:]):
            del kept[i]
    return kept


class Emitter:
    """Writes one function's statements; names are unique per site (no reuse, no clash)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 1
        self.count = 0
        self.namespace: dict[str, Any] = dict(_HELPERS)
        self.variables: dict[str, tuple[str, Kind]] = {}  # jq `$x` bound by generated code
        self.codes: dict[int, tuple[n.Node, Code]] = {}
        self.scope: tuple[int, ...] = ()  # the blocks the next line is in (ids, outermost first)
        self.blocks = 0
        # `.key` reads already made: (input local, key) -> (result local, scope it was in)
        self.reads: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = {}

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)
        if len(self.lines) > MAX_LINES:
            raise TooBig

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.line(header)
        self.depth += 1
        self.blocks += 1
        outer, self.scope = self.scope, (*self.scope, self.blocks)
        start = len(self.lines)
        yield
        if len(self.lines) == start:  # the continuation wrote nothing (`empty`)
            self.line("pass")
        self.depth -= 1
        self.scope = outer

    def read(self, t: str, key: str, expr: str) -> str:
        """The local holding `expr`, the read of constant `key` from local `t`: an earlier
        identical read is reused where its assignment has run (its block encloses this
        line). Reads are pure and locals are assigned once before their uses, and a read
        that raised would have ended the run, so reuse changes nothing but the time."""
        known = self.reads.get((t, key))
        if known is not None and self.scope[:len(known[1])] == known[1]:
            return known[0]
        name = self.assign(expr)
        self.reads[(t, key)] = (name, self.scope)
        return name

    def fresh(self, prefix: str = "t") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def assign(self, expr: str, prefix: str = "t") -> str:
        name = self.fresh(prefix)
        self.line(f"{name} = {expr}")
        return name

    def const(self, value: Any) -> str:
        if value is None or type(value) in (bool, str) or (
                type(value) is int and -MAX_SAFE <= value <= MAX_SAFE):
            return repr(value)
        return self.register(value, "k")

    def register(self, value: Any, prefix: str) -> str:
        name = self.fresh(f"_{prefix}")
        self.namespace[name] = value
        return name

    def code(self, node: n.Node) -> Code:
        """The node's closures (built once per node; they decide what is single-output)."""
        cached = self.codes.get(id(node))
        if cached is None:
            cached = self.codes[id(node)] = (node, compile_node(node))
        return cached[1]

    def name_of(self, expr: str) -> str:
        """`expr` as a local name (a literal gets one: `"a".get` and `1 is None` are not
        what generated code may write)."""
        return expr if expr.isidentifier() else self.assign(expr)

    def single(self, node: n.Node | None) -> bool:
        return node is None or self.code(node).one is not None

    def sink(self, mode: str) -> Cont:
        keyword = "return" if mode == "first" else "yield"

        def k(x: str, kind: Kind) -> None:
            lines, out = outform.output_lines(x, kind, lambda: self.fresh("c"))
            for text in lines:
                self.line(text)
            self.line(f"{keyword} {out}")

        return k

    def emit(self, node: n.Node, v: str, vk: Kind, env: str, k: Cont) -> None:
        """Write the statements for `node` on input `v`, calling `k` at each output."""
        handler = HANDLERS.get(type(node))
        if handler is None:
            self.closure(node, v, env, k)
        else:
            handler(self, node, v, vk, env, k)

    def closure(self, node: n.Node, v: str, env: str, k: Cont) -> None:
        """A node without an emitter: its closure, called as the closure tree would."""
        code = self.code(node)
        if code.one is not None:
            k(self.assign(f"{self.register(code.one, 'one')}({v}, {env})"), None)
            return
        item = self.fresh("x")
        with self.block(f"for {item} in {self.register(code.gen, 'gen')}({v}, {env}):"):
            k(item, None)
