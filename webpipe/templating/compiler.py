"""Compiler: a `Program` tree → nested Python closures, built once per template.

Every node becomes a `Render` (`(ctx, scope, out) -> None`) and every expression an `Eval`
(`(ctx, scope) -> value`), so rendering never looks at syntax again. Helper names are bound
at compile time (handlebars-rust has no custom helpers here); an unknown helper compiles to
an element that fails at render time, as the reference reports it then. Each element of a
program records its line and column on errors passing through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, assert_never

from webpipe.templating.codegen import Leaf, LeafLookup, generate
from webpipe.templating.errors import TemplateRenderError
from webpipe.templating.helpers import HELPERS, HelperCall, evaluate, invoke
from webpipe.templating.nodes import (
    Block,
    Call,
    Decorator,
    Literal,
    Mustache,
    Node,
    PartialCall,
    PathExpr,
    Program,
    SubExpr,
    Text,
    Value,
)
from webpipe.templating.runtime import (
    MISSING,
    Ctx,
    Eval,
    Fragment,
    Render,
    Scope,
    include_partial,
    lookup,
)
from webpipe.templating.values import escape_html, render_value

Register = Callable[[Ctx, Scope], None]
Hash = tuple[tuple[str, Value], ...]


class Compiler:
    """Compiles the nodes of one template; `name` is the template's own name."""

    def __init__(self, source: str, name: str | None, leaf: LeafLookup | None = None,
                 generate: bool = False) -> None:
        self.source = source
        self.name = name
        # a leaf partial by name, for inlining (None: none is inlined)
        self.leaf: LeafLookup = leaf or _no_leaf
        self.generate = generate  # sequences become generated functions (codegen.py)
        self.partial_names: set[str] = set()  # statically named partials this template uses
        # whether a path may reach the root's `context` key (`context…`, `this`, `..`,
        # `@root`, a computed partial name); partials are judged on their own
        self.may_read_context = False
        self.heads: set[str] = set()  # first segments of every path (what a root may read)

    def program(self, nodes: Program | None, top: bool = False) -> Render:
        if self.generate and nodes:
            return generate(self, nodes, top)
        steps: list[tuple[Render, int, int]] = []
        after_block = False
        for node in nodes or ():
            line, column = self.position(node.pos)
            steps.append((self.node(node, top and not after_block), line, column))
            after_block = after_block or isinstance(node, Block)
        return _sequence(steps)

    def position(self, pos: int) -> tuple[int, int]:
        line = self.source.count("\n", 0, pos) + 1
        return line, pos - (self.source.rfind("\n", 0, pos) + 1) + 1

    def node(self, node: Node, top: bool) -> Render:
        match node:
            case Text(value=text):
                return lambda ctx, scope, out: out.append(text)
            case Mustache():
                return self.mustache(node)
            case Block(call=call, program=program, inverse=inverse):
                fn = self.program(program)
                alt = None if inverse is None else self.program(inverse)
                return self.call(call, fn=fn, inverse=alt, block=True)
            case PartialCall():
                return self.partial(node, top)
            case Decorator():
                register = self.decorator(node)
                return lambda ctx, scope, out: register(ctx, scope)
            case _:
                assert_never(node)

    def mustache(self, node: Mustache) -> Render:
        target = node.value
        if isinstance(target, Call):
            return self.call(target, escape=node.escape)
        if isinstance(target, PathExpr) and target.raw in HELPERS:
            return self.call(Call(target.raw), escape=node.escape)
        value, escape = self.value(target), node.escape
        if isinstance(target, PathExpr) and _is_plain_name(target):
            return _plain_mustache(target.parts[0], value, escape)

        def render(ctx: Ctx, scope: Scope, out: list[str]) -> None:
            result = value(ctx, scope)
            if result is not None:
                text = render_value(result)
                out.append(escape_html(text) if escape else text)

        return render

    def call(self, call: Call, *, fn: Render | None = None, inverse: Render | None = None,
             block: bool = False, escape: bool = True) -> Render:
        helper = HELPERS.get(call.name)
        if helper is None:
            return _fail(f"Helper not found {call.name}")
        arguments = self.arguments(call)

        def render(ctx: Ctx, scope: Scope, out: list[str]) -> None:
            h = arguments(ctx, scope, out)
            h.fn, h.inverse, h.block, h.escape = fn, inverse, block, escape
            invoke(helper, h)

        return render

    def arguments(self, call: Call) -> Callable[[Ctx, Scope, list[str]], HelperCall]:
        """A function evaluating `call`'s params and hash into a HelperCall."""
        name, block_params = call.name, call.block_params
        params = tuple(self.value(p) for p in call.params)
        hashes = tuple((key, self.value(v)) for key, v in call.hash)
        paths = tuple(p.raw if isinstance(p, PathExpr) else None for p in call.params)

        def build(ctx: Ctx, scope: Scope, out: list[str]) -> HelperCall:
            return HelperCall(
                name, ctx, scope, out,
                [param(ctx, scope) for param in params],
                {key: ev(ctx, scope) for key, ev in hashes},
                paths, block_params,
            )

        return build

    def value(self, value: Value) -> Eval:
        match value:
            case Literal(value=constant):
                return lambda ctx, scope: constant
            case PathExpr():
                return self.path(value)
            case SubExpr(call=call, path=path):
                if path is not None and call.name not in HELPERS:
                    return self.path(path)  # `(name)` without arguments reads a value
                return self.subexpression(call)
            case _:
                assert_never(value)

    def path(self, path: PathExpr) -> Eval:
        if path.parts and not path.local:
            self.heads.add(path.parts[0])
        if path.root or path.ups or not path.parts or (
                not path.local and path.parts[0] == "context"):
            self.may_read_context = True
        return _path_eval(path)

    def subexpression(self, call: Call) -> Eval:
        helper = HELPERS.get(call.name)
        if helper is None:
            reason = f"Helper not found {call.name}"
            return lambda ctx, scope: _raise(reason)
        arguments = self.arguments(call)
        return lambda ctx, scope: evaluate(helper, arguments(ctx, scope, []))

    def partial(self, node: PartialCall, top: bool) -> Render:
        name_of = self._partial_name(node.name)
        scope_of = self._partial_scope(node.context, node.hash)
        body = None if node.body is None else Fragment(self.program(node.body))
        registers = [self.decorator(n) for n in node.body or () if isinstance(n, Decorator)]
        indent = node.indent
        # handlebars-rust refuses `{{> x}}` at the top level of partial x itself
        self_include = top and node.name == self.name and self.name is not None

        def render(ctx: Ctx, scope: Scope, out: list[str]) -> None:
            name = name_of(ctx, scope)
            if self_include:
                raise TemplateRenderError("Can not include current template in partial")
            for register in registers:
                register(ctx, scope)
            include_partial(ctx, scope_of(ctx, scope), out, name, indent, body)

        return render

    def _partial_name(self, name: str | SubExpr) -> Callable[[Ctx, Scope], str]:
        if isinstance(name, str):
            self.partial_names.add(name)
            return lambda ctx, scope: name
        self.may_read_context = True  # a computed name: any partial may render
        value = self.value(name)
        return lambda ctx, scope: render_value(value(ctx, scope))

    def _partial_scope(self, context: Value | None, hashes: Hash) -> Callable[[Ctx, Scope], Scope]:
        """The scope a partial renders in: a path argument and/or hash push a new one."""
        path = context if isinstance(context, PathExpr) else None  # literals are ignored
        if path is not None:
            self.path(path)
        pairs = tuple((key, self.value(v)) for key, v in hashes)
        if path is None and not pairs:
            return lambda ctx, scope: scope

        def make(ctx: Ctx, scope: Scope) -> Scope:
            base = scope
            if path is not None and (found := lookup(path, scope, ctx.root)) is not MISSING:
                base = Scope(found, scope)
            if not pairs:
                return base
            values = {key: ev(ctx, scope) for key, ev in pairs}
            if base is scope:  # hash only: a copy of the current block plus hash params
                return Scope(scope.this, scope, {**scope.params, **values}, scope.data)
            return Scope(base.this, scope, values)

        return make

    def decorator(self, node: Decorator) -> Register:
        """`{{#*inline "name"}}…{{/inline}}` registers a partial for the rest of the render."""
        call = node.call
        if call.name != "inline":
            return _fail_register(f"Decorator not found {call.name}")
        if not call.params:
            return _fail_register("Helper/Decorator inline param at index 0 required but not found")
        if node.body is None:
            return _fail_register("Block content required")
        name_of, body = self.value(call.params[0]), Fragment(self.program(node.body))

        def register(ctx: Ctx, scope: Scope) -> None:
            name = name_of(ctx, scope)
            if not isinstance(name, str):
                raise TemplateRenderError("Invalid param type, String expected")
            ctx.inline[name] = body

        return register


def _sequence(steps: list[tuple[Render, int, int]]) -> Render:
    def render(ctx: Ctx, scope: Scope, out: list[str]) -> None:
        for step, line, column in steps:
            try:
                step(ctx, scope, out)
            except TemplateRenderError as exc:
                exc.locate(line, column)
                raise

    return render


def _is_plain_name(path: PathExpr) -> bool:
    """`{{name}}`: one segment, no `../`, `@root` or `@local`."""
    return len(path.parts) == 1 and not (path.ups or path.root or path.local)


def _plain_mustache(name: str, general: Eval, escape: bool) -> Render:
    """`{{name}}` with the common case inline: no block param on the stack of that name and
    an object as the current context (the general lookup gives the same, slower)."""

    def render(ctx: Ctx, scope: Scope, out: list[str]) -> None:
        frame: Scope | None = scope
        this = scope.this
        while frame is not None:
            if name in frame.params:
                result = general(ctx, scope)
                break
            frame = frame.parent
        else:
            result = this.get(name) if type(this) is dict else general(ctx, scope)
        if result is None:
            return
        text = result if type(result) is str else render_value(result)
        out.append(escape_html(text) if escape else text)

    return render


def _path_eval(path: PathExpr) -> Eval:
    def read(ctx: Ctx, scope: Scope) -> object:
        found = lookup(path, scope, ctx.root)
        return None if found is MISSING else found

    return read


def _raise(reason: str) -> NoReturn:
    raise TemplateRenderError(reason)


def _fail(reason: str) -> Render:
    return lambda ctx, scope, out: _raise(reason)


def _fail_register(reason: str) -> Register:
    return lambda ctx, scope: _raise(reason)


def _no_leaf(name: str) -> Leaf | None:
    return None
