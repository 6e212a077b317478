"""Prepare and execute GraphQL documents against the app's schema (graphql.md §2, §6.2, §9).

`GraphqlRuntime.document(text)` parses and validates an operation once and caches the
result by text (a bounded LRU, since the automatic endpoint accepts client documents);
a document that does not parse or validate is kept as its errors, because the reference
answers it with `{"data": null, "errors": [...]}` rather than failing the step.
`GraphqlRuntime.execute()` runs one operation with a fresh `ExecutionRun` and returns the
standard response object.

Output values are not coerced (§2 [Decide], parity): the five built-in scalars and `JSON`
pass whatever the resolver produced, so an `ID` field may emit the number 7. This uses a
graphql-core `Executor` subclass (its documented customisation point); `strictScalars:
true` in `config graphql` restores standard GraphQL result coercion.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    Executor,
    GraphQLError,
    GraphQLLeafType,
    GraphQLSchema,
    execute,
    parse,
    validate,
)

from webpipe.graphql.loaders import Batcher
from webpipe.graphql.resolvers import ExecutionRun, default_resolver
from webpipe.graphql.validation import RULES

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env

JSON = Any
PASS_THROUGH_SCALARS = frozenset({"ID", "String", "Int", "Float", "Boolean", "JSON"})
DOCUMENT_CACHE_SIZE = 256


class PassThroughExecutor(Executor[Any]):
    """Leaves built-in scalar and `JSON` values exactly as the resolver produced them."""

    @staticmethod
    def complete_leaf_value(return_type: GraphQLLeafType, result: Any) -> Any:
        if return_type.name in PASS_THROUGH_SCALARS:
            return result
        return Executor.complete_leaf_value(return_type, result)


@dataclass(frozen=True, eq=False)
class PreparedDocument:
    """A parsed and validated operation, or the errors that stop it from running."""

    document: DocumentNode | None
    errors: tuple[dict[str, JSON], ...] = ()


@dataclass(eq=False)
class GraphqlRuntime:
    """The app's executable schema plus its document cache."""

    schema: GraphQLSchema
    strict_scalars: bool = False
    documents: OrderedDict[str, PreparedDocument] = field(default_factory=OrderedDict)

    def document(self, text: str) -> PreparedDocument:
        """`text` parsed and validated against the schema, cached by text."""
        found = self.documents.get(text)
        if found is not None:
            self.documents.move_to_end(text)
            return found
        prepared = self._prepare(text)
        self.documents[text] = prepared
        if len(self.documents) > DOCUMENT_CACHE_SIZE:
            self.documents.popitem(last=False)
        return prepared

    def _prepare(self, text: str) -> PreparedDocument:
        try:
            document = parse(text)
        except GraphQLError as exc:
            return PreparedDocument(None, (format_error(exc),))
        errors = validate(self.schema, document, RULES)
        if errors:
            return PreparedDocument(None, tuple(format_error(e) for e in errors))
        return PreparedDocument(document)

    async def execute(self, prepared: PreparedDocument, variables: dict[str, JSON],
                      state: JSON, env: Env, ctx: RequestContext) -> dict[str, JSON]:
        """Run one operation; resolvers see `state` as `.context` and share `ctx` (§3)."""
        if prepared.document is None:
            return {"data": None, "errors": list(prepared.errors)}
        run = ExecutionRun(env=env, ctx=ctx, context=state, variables=variables)
        try:
            result = execute(self.schema, prepared.document, context_value=run,
                             variable_values=variables, field_resolver=default_resolver,
                             executor_class=None if self.strict_scalars else PassThroughExecutor)
            if isawaitable(result):
                result = await result
        finally:
            if isinstance(run.batcher, Batcher):
                await run.batcher.aclose()
        assert isinstance(result, ExecutionResult)
        return response_json(result)


def response_json(result: ExecutionResult) -> dict[str, JSON]:
    """§6.2: `data` always present, `errors` only when non-empty, no `extensions`."""
    out: dict[str, JSON] = {"data": result.data}
    if result.errors:
        out["errors"] = [format_error(error) for error in result.errors]
    return out


def format_error(error: GraphQLError) -> dict[str, JSON]:
    out: dict[str, JSON] = {"message": error.message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    return out
