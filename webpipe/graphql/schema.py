"""Build the app's GraphQL schema once and bind its resolver pipelines (graphql.md §1-§5).

Each module's last `graphqlSchema` block is parsed on its own, so an error points into the
right `.wp` file; the definitions are then concatenated in module-path order. A later
definition of a type that is already defined replaces the earlier one wholesale (the
reference's rule, reported as a warning); `extend type` works as in standard GraphQL. The
full SDL is accepted, a harmless superset of the reference, and `scalar JSON` is declared
when the SDL does not declare it. `query`/`mutation`/`resolver` pipelines become field
resolvers (`resolvers.py`, `loaders.py`); fields without one read the parent's key (§4).
Problems that stop the build are `LoadError`s with a span; suspicious resolvers are
warnings in `env.diagnostics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    Source,
    TypeDefinitionNode,
    build_ast_schema,
    parse,
    validate_schema,
)
from graphql.language import DefinitionNode, Node
from graphql.validation.validate import validate_sdl

from webpipe.errors import Diagnostic, LoadError
from webpipe.graphql.loaders import LoaderResolver, find_loader, loader_spec
from webpipe.graphql.resolvers import Binding, FailingResolver, PipelineResolver
from webpipe.graphql.runtime import GraphqlRuntime
from webpipe.graphql.validation import with_builtin_id
from webpipe.source import Span
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.executor.env import Entry, Env

RESOURCE_KEY = "graphql"
JSON_SCALAR = "scalar JSON"
ROOT_LOADER_ERROR = "loader can only be used in type resolvers, not Query/Mutation"


def build_graphql(env: Env) -> GraphqlRuntime | None:
    """The app's GraphQL runtime (None when no module declares a schema), built once.

    Raises `LoadError` (with a span into the SDL) when the schema cannot be built."""
    if RESOURCE_KEY not in env.resources:
        env.resources[RESOURCE_KEY] = _build(env)
    runtime: GraphqlRuntime | None = env.resources[RESOURCE_KEY]
    return runtime


def _build(env: Env) -> GraphqlRuntime | None:
    blocks = _schema_blocks(env)
    if not blocks:
        for _module, item in env.index.all_items(n.Resolver):
            env.diagnostics.append(Diagnostic(
                "GraphQL resolver declared but the program has no graphqlSchema",
                item.span, "warning", "graphql-no-schema"))
        return None
    sdl = _SdlSet(blocks)
    document = sdl.document(env.diagnostics)
    errors = validate_sdl(document)
    if errors:
        raise sdl.load_error(errors)
    try:
        schema = with_builtin_id(build_ast_schema(document, assume_valid_sdl=True))
        errors = validate_schema(schema)
    except GraphQLError as exc:  # e.g. a directive argument of the wrong type
        errors = [exc]
    if errors:
        raise sdl.load_error(list(errors))
    # a `graphql` step builds the schema while the program is still being compiled; the
    # resolvers hold their bodies, so they are bound once every body exists
    env.when_loaded(lambda: _bind_resolvers(env, schema))
    config = env.config_block("graphql") or {}
    return GraphqlRuntime(schema, strict_scalars=config.get("strictScalars") is True)


def _schema_blocks(env: Env) -> list[n.GraphqlSchema]:
    """The last `graphqlSchema` of every module, in module-path order (§1)."""
    out: list[n.GraphqlSchema] = []
    for module in env.index.modules:
        blocks = [item for item in module.items(n.GraphqlSchema)
                  if isinstance(item, n.GraphqlSchema)]
        if blocks:
            out.append(blocks[-1])
    return out


@dataclass(eq=False)
class _Block:
    node: n.GraphqlSchema
    source: Source
    offset: int | None  # where the SDL text starts in the .wp file, when found


class _SdlSet:
    """The SDL blocks of a program and the mapping of GraphQL positions back to spans."""

    def __init__(self, nodes: list[n.GraphqlSchema]) -> None:
        self.blocks = [_Block(node, Source(node.sdl, node.span.source.name), _sdl_offset(node))
                       for node in nodes]

    def document(self, diagnostics: list[Diagnostic]) -> DocumentNode:
        """All definitions, a later type definition replacing an earlier one."""
        definitions: list[DefinitionNode] = []
        for block in self.blocks:
            try:
                definitions.extend(parse(block.source).definitions)
            except GraphQLError as exc:
                raise self.load_error([exc]) from None
        kept = self._last_wins(definitions, diagnostics)
        if not any(_type_name(d) == "JSON" for d in kept):
            kept.extend(parse(JSON_SCALAR).definitions)
        return DocumentNode(definitions=tuple(kept))

    def _last_wins(self, definitions: list[DefinitionNode],
                   diagnostics: list[Diagnostic]) -> list[DefinitionNode]:
        last = {_type_name(d): i for i, d in enumerate(definitions) if _type_name(d)}
        kept: list[DefinitionNode] = []
        for i, definition in enumerate(definitions):
            name = _type_name(definition)
            if name and last[name] != i:
                diagnostics.append(Diagnostic(
                    f"GraphQL type {name!r} is defined again later; the later definition "
                    "replaces this one", self.span_of_node(definition), "warning",
                    "graphql-duplicate-type"))
                continue
            kept.append(definition)
        return kept

    def load_error(self, errors: list[GraphQLError]) -> LoadError:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        message = first.message.partition("\n")[0]  # some carry their own printed excerpt
        return LoadError(f"GraphQL initialization failed: {message}{more}",
                         span=self.span_of_error(first))

    def span_of_error(self, error: GraphQLError) -> Span:
        if error.source is not None and error.positions:
            return self._span(error.source, next(iter(error.positions)))
        return self.blocks[0].node.span

    def span_of_node(self, node: Node) -> Span:
        if node.loc is not None:
            return self._span(node.loc.source, node.loc.start)
        return self.blocks[0].node.span

    def _span(self, source: Source, position: int) -> Span:
        for block in self.blocks:
            if block.source is source:
                if block.offset is None:
                    return block.node.span
                return block.node.span.source.span(block.offset + position)
        return self.blocks[0].node.span


def _sdl_offset(node: n.GraphqlSchema) -> int | None:
    text = node.span.source.text
    tick = text.find("`", node.span.start)
    if tick >= 0 and text.startswith(node.sdl, tick + 1):
        return tick + 1
    return None


def _type_name(definition: DefinitionNode) -> str | None:
    if isinstance(definition, TypeDefinitionNode):
        return definition.name.value
    return None


def _bind_resolvers(env: Env, schema: GraphQLSchema) -> None:
    """Attach each `TYPE.FIELD` pipeline to its field; the last definition of a key wins."""
    chosen: dict[tuple[str, str], tuple[Entry, n.Resolver]] = {}
    for entry in env.entries_of(n.Resolver):
        item = entry.item
        assert isinstance(item, n.Resolver)
        key = (_owner(schema, item), item.field_name)
        if key in chosen:
            _warn(env, chosen[key][1], f"GraphQL resolver {item.type_name}.{item.field_name} "
                  "is defined again later; the later definition wins", "graphql-duplicate")
        chosen[key] = (entry, item)
    for (type_name, field_name), (entry, item) in chosen.items():
        field = _field(schema, type_name, field_name)
        if field is None:
            _warn(env, item, f"GraphQL resolver {item.type_name}.{item.field_name} matches "
                  "no field of the schema and is ignored", "graphql-unmatched")
            continue
        _bind(env, entry, item, schema, field)


def _bind(env: Env, entry: Entry, item: n.Resolver, schema: GraphQLSchema,
          field: GraphQLField) -> None:
    binding = Binding(type_name=item.type_name, field_name=item.field_name,
                      body=entry.body, span=item.span)
    root = {schema.query_type, schema.mutation_type} - {None}
    loader_at = find_loader(item.pipeline)
    if loader_at is None:
        field.resolve = PipelineResolver(binding)
    elif schema.get_type(_owner(schema, item)) in root:
        _warn(env, item, f"GraphQL resolver {item.type_name}.{item.field_name}: "
              f"{ROOT_LOADER_ERROR}", "graphql-root-loader")
        field.resolve = FailingResolver(ROOT_LOADER_ERROR)
    else:
        spec = loader_spec(env, entry.module, entry.body, loader_at)
        if spec.pipeline is None:
            _warn(env, item, f"GraphQL loader pipeline {spec.pipeline_name!r} not found",
                  "graphql-loader")
        field.resolve = LoaderResolver(binding, spec)


def _owner(schema: GraphQLSchema, item: n.Resolver) -> str:
    """The object type a resolver belongs to (`query x` binds to the query root type)."""
    if item.kind == "query" and schema.query_type is not None:
        return schema.query_type.name
    if item.kind == "mutation" and schema.mutation_type is not None:
        return schema.mutation_type.name
    return item.type_name


def _field(schema: GraphQLSchema, type_name: str, field_name: str) -> GraphQLField | None:
    owner = schema.get_type(type_name)
    if isinstance(owner, GraphQLObjectType):
        found = owner.fields.get(field_name)
        return found if isinstance(found, GraphQLField) else None
    return None


def _warn(env: Env, item: n.Resolver, message: str, code: str) -> None:
    env.diagnostics.append(Diagnostic(message, item.span, "warning", code))
