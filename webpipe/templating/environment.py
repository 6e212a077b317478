"""Templates and the environment that compiles them and holds their partials.

`Environment(partials)` takes partial *sources* by name and compiles each one the first
time it is used (or checked), then keeps it. `compile(text)` caches by text, so the same
step template is compiled once however many steps use it. `check_partials()` compiles
every partial a template names statically, transitively, so a broken partial is reported at
load time rather than on the first request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from webpipe.templating.codegen import Leaf, is_leaf
from webpipe.templating.compiler import Compiler
from webpipe.templating.errors import TemplateRenderError, TemplateSyntaxError
from webpipe.templating.nodes import Program
from webpipe.templating.parser import parse
from webpipe.templating.runtime import JSON, Ctx, Render, Scope


class Template:
    """A compiled template; `render(data)` returns the text."""

    def __init__(self, env: Environment, name: str, source: str, nodes: Program,
                 compiler: Compiler, program: Render) -> None:
        self.env = env
        self.name = name
        self.source = source  # the text it was compiled from
        self.nodes = nodes  # its parse, kept for _generate
        # closures at load; the generated function from the first render on (_generate)
        self.program = self._generate if env.generate else program
        self.partial_names = frozenset(compiler.partial_names)
        self.may_read_context = compiler.may_read_context  # this template, not its partials
        self.heads = frozenset(compiler.heads)  # the first segments of its paths

    def render(self, data: JSON) -> str:
        """Render with `data` as the root context; raises TemplateRenderError."""
        ctx = Ctx(data, self.env.partial)
        out: list[str] = []
        try:
            self.render_into(ctx, Scope(data), out)
        except RecursionError:
            raise TemplateRenderError("template nesting too deep") from None
        return "".join(out)

    def render_into(self, ctx: Ctx, scope: Scope, out: list[str]) -> None:
        try:
            self.program(ctx, scope, out)
        except TemplateRenderError as exc:
            exc.name(self.name)
            raise

    def _generate(self, ctx: Ctx, scope: Scope, out: list[str]) -> None:
        """The first render generates the template's Python function (codegen.py) and keeps
        it: done here rather than at load, a load that never renders (`check`, the LSP) does
        not pay for compiling generated source (spec/handlebars.md "Compiled form")."""
        compiler = Compiler(self.source, self.name, self.env.leaf, generate=True)
        self.program = compiler.program(self.nodes, top=True)
        self.program(ctx, scope, out)

    def __repr__(self) -> str:
        return f"<Template {self.name}>"


class Environment:
    """Compiles templates and resolves partials by name."""

    def __init__(self, partials: Mapping[str, str] | None = None, *,
                 generate: bool = True) -> None:
        self.sources: Mapping[str, str] = dict(partials or {})
        # False: templates keep rendering through the compiler's closures (the reference
        # the differential tests compare generated code with)
        self.generate = generate
        self._partials: dict[str, Template | TemplateSyntaxError] = {}
        self._leaves: dict[str, Leaf | None] = {}
        self._cache: dict[str, Template] = {}

    def compile(self, source: str, name: str | None = None) -> Template:
        """Compile template text (cached by text); raises TemplateSyntaxError."""
        if name is None and source in self._cache:
            return self._cache[source]
        label = name or "tpl_" + hashlib.blake2b(source.encode(), digest_size=8).hexdigest()
        try:
            nodes = parse(source)
            compiler = Compiler(source, label, generate=False)
            program = compiler.program(nodes, top=True)
        except TemplateSyntaxError as exc:
            raise exc.locate(source, label) from None
        template = Template(self, label, source, nodes, compiler, program)
        if name is None:
            self._cache[source] = template
        return template

    def partial(self, name: str) -> Template | None:
        """The compiled partial `name`, None if there is none; a broken one fails to render."""
        try:
            return self._partial(name)
        except TemplateSyntaxError as exc:
            raise TemplateRenderError(f"Failed to parse template {name}: {exc}") from None

    def _partial(self, name: str) -> Template | None:
        if name not in self._partials:
            if name not in self.sources:
                return None
            try:
                self._partials[name] = self.compile(self.sources[name], name)
            except TemplateSyntaxError as exc:
                self._partials[name] = exc
        found = self._partials[name]
        if isinstance(found, TemplateSyntaxError):
            raise found
        return found

    def leaf(self, name: str) -> Leaf | None:
        """Partial `name` when it is a leaf (codegen.is_leaf) that compiles: its nodes can be
        inlined where it is called."""
        if name not in self._leaves:
            source, found = self.sources.get(name), None
            try:
                nodes = None if source is None else parse(source)
            except TemplateSyntaxError:
                nodes = None
            if source is not None and nodes is not None and is_leaf(nodes):
                found = (Compiler(source, name, generate=False), nodes)
            self._leaves[name] = found
        return self._leaves[name]

    def check_partials(self, template: Template) -> None:
        """Compile every partial `template` names, transitively; raise the first error."""
        self._reachable(template)

    def root_keys(self, template: Template) -> frozenset[str] | None:
        """The top-level keys of the data a render can read: the first segment of every path
        in it and its partials (cautious: paths inside blocks count too). None when a path
        may reach past them (`this`, `..`, `@root`, `context`, a computed partial name)."""
        keys: set[str] = set()
        for found in self._reachable(template):
            if found.may_read_context:
                return None
            keys |= found.heads
        return frozenset(keys)

    def _reachable(self, template: Template) -> list[Template]:
        found = [template]
        seen: set[str] = set()
        pending = list(template.partial_names)
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            partial = self._partial(name)
            if partial is not None:
                found.append(partial)
                pending.extend(partial.partial_names)
        return found
