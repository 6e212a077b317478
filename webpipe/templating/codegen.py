"""Code generation: a template's node sequences → Python functions, compiled once.

`Compiler.program` hands each sequence here when a template first renders (spec/handlebars.md
"Compiled form"), as Jinja turns a template into Python source. A run of text and `{{path}}`s
becomes one `out.append` of an f-string, each path an inline lookup and escape; `{{#if x}}`
/ `{{#unless x}}` a Python `if`; a partial of text and `{{path}}`s only (a *leaf*) is inlined
where it is called, and plain partial calls and partial blocks call `include_partial`
directly. `{{#each xs}}` whose body is of those kinds runs as a Python `for` over the list,
building no Scope per item, after one check that the helper would do the same: a non-empty
list, no block param of the names read on the stack, no inline partial registered and depth
left. Otherwise, and for every other node, the closure `Compiler.node` builds runs: the
closures stay the general path and the reference of the differential tests
(tests/templating/differential.py). Errors are located as the closures locate them: `at`
holds the element that last started something that can fail, and one handler records its
line and column (and the name of the inlined partial it belongs to).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from webpipe.templating.errors import TemplateRenderError
from webpipe.templating.helpers import HELPERS
from webpipe.templating.nodes import (
    Block,
    Decorator,
    Mustache,
    Node,
    PartialCall,
    PathExpr,
    Program,
    Text,
)
from webpipe.templating.runtime import (
    MAX_PARTIAL_DEPTH,
    MISSING,
    PARTIAL_BLOCK,
    Ctx,
    Fragment,
    Render,
    Scope,
    include_partial,
    lookup,
    walk,
)
from webpipe.templating.values import (
    ESCAPES,
    NEEDS_ESCAPE,
    escape_html,
    is_truthy,
    render_escaped,
    render_value,
)

if TYPE_CHECKING:
    from webpipe.templating.compiler import Compiler

Leaf = tuple["Compiler", Program]  # a leaf partial: its compiler (positions) and its nodes
_LOCALS = ("index", "first", "last")  # the `@` variables a generated loop provides
# Python refuses source nested 100 blocks deep: deeper template blocks run as closures
_MAX_LEVEL = 40
_MAX_LOOP_NESTING = 8
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # integers printed as they are (values.format_number)


@dataclass(slots=True)
class _Frame:
    """Where generated code renders: with the function's own `scope`, or as an item of a
    generated loop (`item` is the context value; no Scope exists)."""

    item: str | None = None
    index: str = ""
    last: str = ""
    names: set[str] = field(default_factory=set)  # block params that would shadow a read
    locals: set[str] = field(default_factory=set)  # the `@` variables read
    inlines: bool = False  # inlined a partial: needs no inline partial registered
    label: str | None = None  # the inlined partial whose elements these are


def generate(compiler: Compiler, nodes: Program, top: bool) -> Render:
    """The render function of `nodes` (a template's body or a block's)."""
    gen = _Generator(compiler)
    gen.sequence(compiler, nodes, _Frame(), top)
    return gen.build()


def is_leaf(nodes: Program) -> bool:
    """A partial that can be inlined: text and `{{path}}`s (no helpers, partials, blocks)."""
    return all(isinstance(n, Text) or (isinstance(n, Mustache) and _is_value(n)) for n in nodes)


class _Generator:
    def __init__(self, compiler: Compiler) -> None:
        self.compiler = compiler
        self.lines: list[str] = []
        self.level = 2
        self.names: dict[str, object] = {}
        self.positions: list[tuple[int, int, str | None]] = []
        self.counter = 0
        self.run: list[tuple[str, str]] = []  # (text, or a variable) to append as one

    def build(self) -> Render:
        head = ["def render(ctx, scope, out):", "    a = out.append", "    this = scope.this"]
        if not self.positions:
            body = [line[4:] for line in self.lines] or ["    pass"]
            source = "\n".join([*head, *body])
        else:
            source = "\n".join([*head, "    at = 0", "    try:", *(self.lines or ["        pass"]),
                                "    except TemplateRenderError as exc:",
                                "        _locate(exc, _POSITIONS[at])", "        raise"])
        namespace = {**_RUNTIME, **self.names, "_POSITIONS": tuple(self.positions)}
        code = compile(source, f"<template {self.compiler.name}>", "exec")
        exec(code, namespace)  # our own source, generated from the parse tree
        render: Render = namespace["render"]  # type: ignore[assignment]
        return render

    def emit(self, text: str) -> None:
        self.lines.append("    " * self.level + text)

    @contextmanager
    def indented(self) -> Iterator[None]:
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1

    def constant(self, value: object) -> str:
        name = f"_k{len(self.names)}"
        self.names[name] = value
        return name

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def at(self, compiler: Compiler, node: Node, frame: _Frame) -> None:
        """Mark `node` as the element whose failure the handler reports."""
        line, column = compiler.position(node.pos)
        self.positions.append((line, column, frame.label))
        self.emit(f"at = {len(self.positions) - 1}")

    def sequence(self, compiler: Compiler, nodes: Program, frame: _Frame, top: bool,
                 flush: bool = True) -> None:
        """Text and `{{path}}`s in a row become one append of their concatenation (`run`)."""
        after_block = False
        for node in nodes:
            if isinstance(node, Text):
                self.run.append((node.value, ""))
            elif isinstance(node, Mustache) and _is_value(node):
                assert isinstance(node.value, PathExpr)
                self.value(compiler, node, node.value, frame)
                self.run.append(("", self.text_of(node.escape, frame)))
            elif isinstance(node, PartialCall) and frame.item is not None:
                self.partial(compiler, node, frame)  # a leaf: joins the run
            else:
                self.flush()
                self.node(compiler, node, frame, top and not after_block)
            after_block = after_block or isinstance(node, Block)
        if flush:
            self.flush()

    def flush(self) -> None:
        """Append the run: one f-string of its text and variables."""
        if len(self.run) == 1:
            text, variable = self.run[0]
            self.emit(f"a({variable or repr(text)})")
        elif self.run:
            parts = ("{" + name + "}" if name else _brace(text) for text, name in self.run)
            self.emit(f"a(f{''.join(parts)!r})")
        self.run = []

    def node(self, compiler: Compiler, node: Node, frame: _Frame, top: bool) -> None:
        if isinstance(node, Block) and _condition(node) and (
                self.level < _MAX_LEVEL if frame.item is None else self.in_loop(compiler, node)):
            self.condition(compiler, node, frame)
        elif isinstance(node, Block) and frame.item is None and _loop(node) and (
                self.level < _MAX_LEVEL) and all(self.in_loop(compiler, n) for n in node.program):
            self.each(compiler, node, frame)
        elif isinstance(node, PartialCall) and _plain_partial(node, compiler, top):
            self.partial(compiler, node, frame)
        elif isinstance(node, PartialCall) and _plain_block(node, compiler, top):
            self.partial_block(compiler, node, frame)
        else:
            assert frame.item is None, "in_loop() keeps other nodes out of generated loops"
            self.at(compiler, node, frame)
            self.emit(f"{self.constant(compiler.node(node, top))}(ctx, scope, out)")

    def value(self, compiler: Compiler, node: Node, path: PathExpr, frame: _Frame) -> None:
        """Code leaving `path`'s value (None when missing) in `v`."""
        compiler.path(path)  # records what the template reads (Compiler.heads)
        if frame.item is not None:
            self.item_value(compiler, node, path, frame)
            return
        if _is_plain(path):
            self.plain_value(compiler, node, path, frame)
            return
        self.at(compiler, node, frame)
        self.emit(f"v = _read({self.constant(path)}, ctx, scope)")

    def plain_value(self, compiler: Compiler, node: Node, path: PathExpr,
                    frame: _Frame) -> None:
        """`{{name}}` outside loops: one call (code size: the first render compiles it)."""
        self.at(compiler, node, frame)
        self.emit(f"v = _plain(ctx, scope, this, {path.parts[0]!r}, {self.constant(path)})")

    def item_value(self, compiler: Compiler, node: Node, path: PathExpr,
                   frame: _Frame) -> None:
        """A path read inside a generated loop (see `_in_loop` for which ones)."""
        item = frame.item
        if path.local:
            local = path.parts[0]
            frame.locals.add(local)
            self.emit("v = " + {"index": frame.index, "first": f"{frame.index} == 0",
                                "last": f"{frame.index} == {frame.last}"}[local])
            return
        if not path.parts:
            self.emit(f"v = {item}")
            return
        frame.names.add(path.parts[0])
        if len(path.parts) == 1:
            self.emit(f"if type({item}) is dict:")
            self.emit(f"    v = {item}.get({path.parts[0]!r})")
            self.emit("else:")
            self.level += 1
        self.at(compiler, node, frame)
        self.emit(f"v = walk({item}, {path.parts!r})")
        self.emit("if v is MISSING:")
        self.emit("    v = None")
        if len(path.parts) == 1:
            self.level -= 1

    def text_of(self, escape: bool, frame: _Frame) -> str:
        """A variable holding `v` as `{{…}}` (escaped) or `{{{…}}}` prints it; inline code
        in loops, a call elsewhere."""
        text = self.fresh("s")
        if not escape:
            self.emit(f"{text} = '' if v is None else v if type(v) is str else render_value(v)")
        elif frame.item is None:
            self.emit(f"{text} = _show(v)")
        else:
            for line in ("if v is None:", "    {0} = ''", "elif type(v) is str:",
                         "    {0} = v if _needs_escape(v) is None else v.translate(_ESCAPES)",
                         f"elif type(v) is int and {_INT_MIN} <= v <= {_INT_MAX}:",
                         "    {0} = str(v)  # digits and '-' never need escaping",
                         "else:", "    {0} = render_escaped(v)"):
                self.emit(line.format(text))
        return text

    def condition(self, compiler: Compiler, node: Block, frame: _Frame) -> None:
        """`{{#if x}}` / `{{#unless x}}` without hash: the helpers' `is_truthy` test."""
        path = node.call.params[0]
        assert isinstance(path, PathExpr)
        self.value(compiler, node, path, frame)
        negate = "" if node.call.name == "if" else "not "
        self.emit(f"if {negate}is_truthy(v):")
        with self.indented():
            self.sequence(compiler, node.program, frame, False)
            self.emit("pass")
        if node.inverse:
            self.emit("else:")
            with self.indented():
                self.sequence(compiler, node.inverse, frame, False)

    def each(self, compiler: Compiler, node: Block, frame: _Frame) -> None:
        """`{{#each xs}}`: a Python loop when the body allows it, else the helper."""
        path = node.call.params[0]
        assert isinstance(path, PathExpr)
        self.value(compiler, node, path, frame)
        items = self.fresh("items")
        self.emit(f"{items} = v")
        loop = _Frame(self.fresh("item"), self.fresh("i"), self.fresh("last"), label=frame.label)
        start = len(self.lines)
        self.level += 2
        self.sequence(compiler, node.program, loop, False)
        self.emit("pass")
        self.level -= 2
        body = self.lines[start:]
        del self.lines[start:]
        self.emit(f"if {self.guard(items, loop)}:")
        with self.indented():
            if "last" in loop.locals:
                self.emit(f"{loop.last} = len({items}) - 1")
            if loop.locals:
                self.emit(f"for {loop.index}, {loop.item} in enumerate({items}):")
            else:
                self.emit(f"for {loop.item} in {items}:")
        self.lines.extend(body)
        self.emit("else:")
        with self.indented():
            self.at(compiler, node, frame)
            self.emit(f"{self.constant(compiler.node(node, False))}(ctx, scope, out)")

    def guard(self, items: str, loop: _Frame) -> str:
        """The check that the generated loop renders what the `each` helper would."""
        tests = [f"type({items}) is list", items]
        if loop.inlines:
            tests.append(f"not ctx.inline and ctx.depth < {MAX_PARTIAL_DEPTH}")
        if loop.names:
            tests.append(f"_params_free(scope, {self.constant(frozenset(loop.names))})")
        return " and ".join(tests)

    def partial(self, compiler: Compiler, node: PartialCall, frame: _Frame) -> None:
        """`{{> name}}`: a leaf inlined (behind its check), any other one included."""
        assert isinstance(node.name, str)
        compiler.partial_names.add(node.name)
        leaf = None if node.name == PARTIAL_BLOCK else compiler.leaf(node.name)
        if frame.item is not None:
            assert leaf is not None, "in_loop() admits only leaves in generated loops"
            frame.inlines = True
            self.inline(leaf, node.name, frame, flush=False)
            return
        self.at(compiler, node, frame)
        call = f"include_partial(ctx, scope, out, {node.name!r}, None, None)"
        if leaf is None:
            self.emit(call)
            return
        self.emit(f"if not ctx.inline and ctx.depth < {MAX_PARTIAL_DEPTH}:")
        with self.indented():
            self.inline(leaf, node.name, frame)
            self.emit("pass")
        self.emit("else:")
        self.emit(f"    {call}")

    def inline(self, leaf: Leaf, name: str, frame: _Frame, flush: bool = True) -> None:
        label, frame.label = frame.label, name
        try:
            self.sequence(leaf[0], leaf[1], frame, False, flush)
        finally:
            frame.label = label

    def partial_block(self, compiler: Compiler, node: PartialCall, frame: _Frame) -> None:
        """`{{#> layout}}body{{/layout}}` (no inline partial in the body): include it."""
        assert isinstance(node.name, str) and node.body is not None
        compiler.partial_names.add(node.name)
        body = self.constant(Fragment(compiler.program(node.body)))
        self.at(compiler, node, frame)
        self.emit(f"include_partial(ctx, scope, out, {node.name!r}, None, {body})")

    def in_loop(self, compiler: Compiler, node: Node, depth: int = 0) -> bool:
        """Whether `node` can be generated inside a loop, where no Scope exists."""
        if depth > _MAX_LOOP_NESTING:
            return False
        match node:
            case Text():
                return True
            case Mustache(value=PathExpr() as path):
                return _is_value(node) and _loop_path(path)
            case Block(call=call, program=program, inverse=inverse):
                return (_condition(node) and _loop_path(call.params[0])  # type: ignore[arg-type]
                        and all(self.in_loop(compiler, n, depth + 1)
                                for n in program + (inverse or ())))
            case PartialCall(name=str() as name) if _plain_partial(node, compiler, False) and (
                    name != PARTIAL_BLOCK):
                leaf = compiler.leaf(name)
                return leaf is not None and all(self.in_loop(leaf[0], n) for n in leaf[1])
            case _:
                return False


def _brace(text: str) -> str:
    """Text as the literal part of an f-string."""
    return text.replace("{", "{{").replace("}", "}}")


def _is_value(node: Mustache) -> bool:
    """`{{path}}` where the path is not a helper's name (a helper call otherwise)."""
    return isinstance(node.value, PathExpr) and node.value.raw not in HELPERS


def _is_plain(path: PathExpr) -> bool:
    return len(path.parts) == 1 and not (path.ups or path.root or path.local)


def _loop_path(path: PathExpr) -> bool:
    """Paths a generated loop reads without a Scope: `x.y`, `this`, `@index/@first/@last`."""
    if path.local:
        return not path.ups and len(path.parts) == 1 and path.parts[0] in _LOCALS
    return not (path.ups or path.root)


def _condition(node: Block) -> bool:
    call = node.call
    return (call.name in ("if", "unless") and len(call.params) == 1 and not call.hash
            and isinstance(call.params[0], PathExpr))


def _loop(node: Block) -> bool:
    call = node.call
    return (call.name == "each" and len(call.params) == 1 and not call.hash
            and not call.block_params and isinstance(call.params[0], PathExpr))


def _plain_partial(node: PartialCall, compiler: Compiler, top: bool) -> bool:
    """`{{> name}}` with a static name and nothing else (no context, hash, body, indent)."""
    return node.body is None and _static_call(node, compiler, top)


def _plain_block(node: PartialCall, compiler: Compiler, top: bool) -> bool:
    """`{{#> name}}body{{/name}}` whose body registers no inline partial."""
    return (node.body is not None and not any(isinstance(n, Decorator) for n in node.body)
            and node.name != PARTIAL_BLOCK and _static_call(node, compiler, top))


def _static_call(node: PartialCall, compiler: Compiler, top: bool) -> bool:
    return (isinstance(node.name, str) and node.context is None and not node.hash
            and not node.indent and not (top and node.name == compiler.name))


def _read(path: PathExpr, ctx: Ctx, scope: Scope) -> object:
    found = lookup(path, scope, ctx.root)
    return None if found is MISSING else found


def _plain(ctx: Ctx, scope: Scope, this: object, name: str, path: PathExpr) -> object:
    """`{{name}}`: the current object's key unless a block param of that name is set (the
    general lookup gives the same, slower)."""
    frame: Scope | None = scope
    while frame is not None:
        if name in frame.params:
            return _read(path, ctx, scope)
        frame = frame.parent
    return this.get(name) if type(this) is dict else _read(path, ctx, scope)


def _show(value: object) -> str:
    """`{{value}}`'s text, escaped."""
    if value is None:
        return ""
    return escape_html(value) if type(value) is str else render_escaped(value)


def _params_free(scope: Scope | None, names: frozenset[str]) -> bool:
    """No scope on the stack has a block param among `names`."""
    while scope is not None:
        if scope.params and not names.isdisjoint(scope.params):
            return False
        scope = scope.parent
    return True


def _locate(exc: TemplateRenderError, where: tuple[int, int, str | None]) -> None:
    line, column, name = where
    exc.locate(line, column)
    if name is not None:
        exc.name(name)


_RUNTIME: dict[str, object] = {
    "TemplateRenderError": TemplateRenderError, "MISSING": MISSING, "walk": walk,
    "include_partial": include_partial, "is_truthy": is_truthy, "render_value": render_value,
    "render_escaped": render_escaped, "_needs_escape": NEEDS_ESCAPE.search, "_ESCAPES": ESCAPES,
    "_read": _read, "_plain": _plain, "_show": _show, "_params_free": _params_free,
    "_locate": _locate,
}
LeafLookup = Callable[[str], Leaf | None]
