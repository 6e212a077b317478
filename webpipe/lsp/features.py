"""Editor features as plain functions of an analysed buffer and a cursor offset.

`symbols()` lists a file's declarations; `definitions()` finds what a name under the cursor
refers to (named pipelines, variables, `{{> partials}}`, imported files, GraphQL resolvers,
routes called by tests); `hover()` describes middleware and tags, or previews a declaration;
`completions()` offers middleware names after `|> `, tag names after `@` and variable names
after `|> kind: `; `format_text()` is `webpipe fmt` on a buffer. Nothing here imports pygls:
`server.py` converts these results to protocol types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, assert_never

from webpipe.check import KNOWN_TAGS
from webpipe.errors import WebpipeError
from webpipe.loader import Module, ProgramIndex
from webpipe.lsp.analysis import Document
from webpipe.lsp.docs import FLOW_DOCS, MIDDLEWARE_DOCS, TAG_DOCS
from webpipe.lsp.locate import NAME, name_span, nodes_at, step_layout, word_at
from webpipe.middleware import BUILTIN_MIDDLEWARE
from webpipe.routing import Router
from webpipe.source import Source, Span
from webpipe.syntax import nodes as n
from webpipe.syntax.fmt import format_source

SymbolKind = Literal["route", "pipeline", "variable", "describe", "test", "resolver", "config",
                     "import", "schema", "flags"]
CompletionKind = Literal["middleware", "flow", "pipeline", "tag", "variable"]
Declaration = n.NamedPipeline | n.Variable | n.Resolver | n.Route

_PARTIAL = re.compile(r"\{\{#?>\s*([A-Za-z0-9_/.-]+)")
_SDL_TYPE = re.compile(rf"\b(?:type|extend\s+type)\s+({NAME})")
_TAG_WORD = re.compile(rf"@!?{NAME}|{NAME}(?:::{NAME})?")
_AFTER_AT = re.compile(r"@!?[A-Za-z0-9_-]*$")
_AFTER_PIPE = re.compile(rf"\|>\s*(?:{NAME}::)?[A-Za-z0-9_-]*$")
_AFTER_COLON = re.compile(
    rf"\|>\s*({NAME})(?:[(\[].*[)\]])?\s*:\s*[A-Za-z0-9_-]*(?:::[A-Za-z0-9_-]*)?$")
_PREVIEW_LINES = 12


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    kind: SymbolKind
    span: Span
    selection: Span
    detail: str = ""
    children: tuple[Symbol, ...] = ()


@dataclass(frozen=True, slots=True)
class Target:
    """A definition: a file, and the declaration's name in it (None: the top of the file)."""

    path: Path
    span: Span | None = None
    item: Declaration | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Hover:
    markdown: str
    span: Span


@dataclass(frozen=True, slots=True)
class Completion:
    label: str
    kind: CompletionKind
    detail: str = ""


# ---- symbols ----------------------------------------------------------------------


def symbols(program: n.Program) -> list[Symbol]:
    """The file's declarations in source order; tests nest under their `describe`."""
    return [_symbol(item) for item in program.items]


def _symbol(item: n.Item) -> Symbol:
    span, sel = item.span, name_span(item)
    match item:
        case n.Route():
            return Symbol(f"{item.method} {item.path}", "route", span, sel)
        case n.NamedPipeline():
            return Symbol(item.name, "pipeline", span, sel, "pipeline")
        case n.Variable():
            return Symbol(item.name, "variable", span, sel, item.kind)
        case n.Describe():
            tests = tuple(Symbol(t.name, "test", t.span, name_span(t)) for t in item.tests)
            return Symbol(item.name, "describe", span, sel, "describe", tests)
        case n.Resolver():
            name = f"{item.type_name}.{item.field_name}" if item.kind == "resolver" \
                else item.field_name
            return Symbol(name, "resolver", span, sel, item.kind)
        case n.ConfigBlock():
            return Symbol(f"config {item.name}", "config", span, sel)
        case n.Import():
            return Symbol(item.alias, "import", span, sel, item.path)
        case n.GraphqlSchema():
            return Symbol("graphqlSchema", "schema", span, sel)
        case n.FeatureFlags():
            return Symbol("featureFlags", "flags", span, sel)
        case _:
            assert_never(item)


# ---- definitions ------------------------------------------------------------------


def definitions(doc: Document, offset: int) -> list[Target]:
    """Where the name at `offset` is declared (innermost node that names something)."""
    if doc.index is None:
        return []
    module = doc.index.main
    for node in reversed(nodes_at(module.program, offset)):
        found = _definition(doc.index, module, node, offset)
        if found:
            return found
    return []


def _definition(index: ProgramIndex, module: Module, node: object, offset: int,
                ) -> list[Target]:
    match node:
        case n.MiddlewareStep():
            return _step_definition(index, module, node, offset)
        case n.Import():
            target = (module.path.parent / node.path).resolve()
            return [Target(target)] if target.is_file() else []
        case n.Mock():
            return _mock_definition(index, module, node)
        case n.PipelineTrigger(name=name) | n.CallAssertion(kind="pipeline", name=name):
            return _target(index, index.pipeline(module, name))
        case n.VariableTrigger(kind=kind, name=name):
            return _target(index, index.variable(module, kind, name))
        case n.CallAssertion(kind=kind, name=name):
            return _target(index, _resolver(index, kind.capitalize(), name))
        case n.CallTrigger():
            return _target(index, _route(index, node))
        case n.Variable(kind="handlebars" | "mustache"):
            return _partial_at(index, module, node.body, _body_start(node.span, node.body),
                               offset)
        case n.GraphqlSchema():
            return _schema_definition(index, node, offset)
    return []


def _step_definition(index: ProgramIndex, module: Module, step: n.MiddlewareStep,
                     offset: int) -> list[Target]:
    layout = step_layout(step)
    if layout.name[0] <= offset <= layout.name[1]:
        if step.name == "pipeline" or step.name in BUILTIN_MIDDLEWARE:
            return []
        return _target(index, index.pipeline(module, step.name))
    if layout.config is None or not layout.config[0] <= offset <= layout.config[1]:
        return []
    config = step.config or ""
    if step.name == "pipeline":
        return _target(index, index.pipeline(module, config.strip()))
    if step.config_kind is n.ConfigKind.IDENT:
        return _target(index, index.variable(module, step.name, config))
    if step.name in ("handlebars", "mustache"):
        return _partial_at(index, module, config, layout.config[0], offset)
    if step.name == "graphql":
        word = word_at(step.span.source, offset)
        if word is not None:
            found = _resolver(index, "Query", word[2]) or _resolver(index, "Mutation", word[2])
            return _target(index, found)
    return []


def _mock_definition(index: ProgramIndex, module: Module, mock: n.Mock) -> list[Target]:
    name = mock.name or ""
    match mock.kind:
        case "pipeline":
            return _target(index, index.pipeline(module, name))
        case "query" | "mutation":
            return _target(index, _resolver(index, mock.kind.capitalize(), name))
        case "named":
            found = index.variable(module, mock.middleware, name)
            return _target(index, found or _resolver(index, mock.middleware, name))
    return []


def _partial_at(index: ProgramIndex, module: Module, template: str, start: int, offset: int,
                ) -> list[Target]:
    """The `handlebars`/`mustache` variable named by a `{{> partial}}` under the cursor."""
    for m in _PARTIAL.finditer(template):
        if start + m.start(1) <= offset <= start + m.end(1):
            return _target(index, _partial(index, module, m.group(1)))
    return []


def _partial(index: ProgramIndex, module: Module, name: str) -> n.Variable | None:
    alias, sep, bare = name.partition("/")
    target = module.aliases.get(alias) if sep else None
    for kind in ("handlebars", "mustache"):
        if target is not None:
            found = index.variables.get((target, kind, bare))
        else:
            found = index.variable(module, kind, name)
        if found is not None:
            return found
    return None


def _schema_definition(index: ProgramIndex, schema: n.GraphqlSchema, offset: int,
                       ) -> list[Target]:
    """A field of `type T` in the schema SDL → its `query`/`mutation`/`resolver T.f`."""
    word = word_at(schema.span.source, offset)
    if word is None:
        return []
    start = _body_start(schema.span, schema.sdl)
    types = list(_SDL_TYPE.finditer(schema.sdl, 0, max(0, word[0] - start)))
    if not types:
        return []
    return _target(index, _resolver(index, types[-1].group(1), word[2]))


def _resolver(index: ProgramIndex, type_name: str, field_name: str) -> n.Resolver | None:
    for _module, item in index.all_items(n.Resolver):
        assert isinstance(item, n.Resolver)
        if item.type_name == type_name and item.field_name == field_name:
            return item
    return None


def _route(index: ProgramIndex, trigger: n.CallTrigger) -> n.Route | None:
    router: Router[n.Route] = Router()
    for _module, route in index.routes():
        router.add(route.method, route.path, route)
    found = router.match(trigger.method, trigger.path.partition("?")[0])
    return found[0] if found else None


def _target(index: ProgramIndex, item: Declaration | None) -> list[Target]:
    if item is None:
        return []
    return [Target(index.module_of(item).path, name_span(item), item)]


def _body_start(span: Span, body: str) -> int:
    """Offset of a backtick or `\"\"\"` body that ends its node."""
    closing = 3 if span.source.text.endswith('"""', 0, span.end) else 1
    return span.end - closing - len(body)


# ---- hover ------------------------------------------------------------------------


def hover(doc: Document, offset: int) -> Hover | None:
    """Middleware and tag descriptions; a preview of the declaration a name refers to."""
    found = word_at(doc.source, offset, _TAG_WORD)
    if found is None:
        return None
    start, end, word = found
    span = doc.source.span(start, end)
    if word.startswith("@"):
        tag = word.lstrip("@!")
        return Hover(f"**@{tag}**: {TAG_DOCS[tag]}", span) if tag in TAG_DOCS else None
    line_start = doc.source.text.rfind("\n", 0, start) + 1
    if re.search(r"\|>\s*$", doc.source.text[line_start:start]):
        text = MIDDLEWARE_DOCS.get(word) or FLOW_DOCS.get(word)
        if text:
            return Hover(f"**{word}**: {text}", span)
    targets = definitions(doc, offset)
    if targets and targets[0].item is not None:
        return Hover(_preview(targets[0]), span)
    return None


def _preview(target: Target) -> str:
    assert target.item is not None
    item = target.item
    lines = item.span.source.text[item.span.start:item.span.end].split("\n")
    more = ["  …"] if len(lines) > _PREVIEW_LINES else []
    code = "\n".join(lines[:_PREVIEW_LINES] + more)
    return f"```webpipe\n{code}\n```\n{item.span.label}"


# ---- completion -------------------------------------------------------------------


def completions(doc: Document, offset: int) -> list[Completion]:
    """Names that fit at `offset`: tags after `@`, steps after `|>`, variables after `:`."""
    text = doc.source.text
    before = text[text.rfind("\n", 0, offset) + 1:offset]
    if _AFTER_AT.search(before):
        return [Completion(tag, "tag", TAG_DOCS.get(tag, "")) for tag in sorted(KNOWN_TAGS)]
    if _AFTER_PIPE.search(before):
        return [*(Completion(name, "middleware", MIDDLEWARE_DOCS.get(name, ""))
                  for name in sorted(BUILTIN_MIDDLEWARE)),
                *(Completion(name, "flow", doc) for name, doc in FLOW_DOCS.items()),
                *(Completion(name, "pipeline", "pipeline") for name in _declared(doc, None))]
    after_colon = _AFTER_COLON.search(before)
    if after_colon:
        kind = after_colon.group(1)
        if kind == "pipeline":
            return [Completion(name, "pipeline", "pipeline") for name in _declared(doc, None)]
        return [Completion(name, "variable", kind) for name in _declared(doc, kind)]
    return []


def _declared(doc: Document, kind: str | None) -> list[str]:
    """Pipeline (kind None) or `kind` variable names visible from the buffer.

    The buffer is scanned as text, since it rarely parses while a step is being typed;
    the index (possibly from the last text that parsed) adds imported names as `alias::name`.
    """
    keyword = "pipeline" if kind is None else re.escape(kind)
    pattern = re.compile(rf"^[ \t]*{keyword}[ \t]+({NAME})[ \t]*=", re.MULTILINE)
    names = {m.group(1) for m in pattern.finditer(doc.source.text)}
    if doc.index is not None:
        for alias, module in doc.index.main.aliases.items():
            for item in module.program.items:
                if _declares(item, kind):
                    names.add(f"{alias}::{getattr(item, 'name', '')}")
    return sorted(names)


def _declares(item: n.Item, kind: str | None) -> bool:
    if kind is None:
        return isinstance(item, n.NamedPipeline)
    return isinstance(item, n.Variable) and item.kind == kind


# ---- formatting -------------------------------------------------------------------


def format_text(text: str, name: str = "<buffer>") -> str | None:
    """The buffer in `webpipe fmt` layout, or None when it does not parse."""
    try:
        return format_source(Source.from_text(name, text))
    except WebpipeError:
        return None
