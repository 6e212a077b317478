"""Resolver pipelines as graphql-core field resolvers (graphql.md §3, §4, §9, §10).

One `ExecutionRun` is shared by every resolver of one GraphQL execution. It holds the
request context lent by the `graphql` step, the pipeline state that resolvers see as
`.context`, the caller's raw variables, the lock that serialises resolver pipelines
(§9, parity), and the DataLoader batcher (`loaders.py`). A resolver records its input in
the test call log before consulting resolver mocks (§3, testing.md §6.4), then runs its
pipeline with the executor and turns the result into a field value (§3.1).

Arguments reach resolvers as the caller wrote them: graphql-core still validates and
coerces them, but the value handed to the pipeline is the caller's JSON, so an `ID`
argument given as `42` stays a number (§3). Arguments the caller omitted get their SDL
default value (improvement; the reference drops defaults).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLResolveInfo, OperationDefinitionNode
from graphql.pyutils import Undefined
from graphql.utilities import value_from_ast_untyped

from webpipe.errors import WebpipeError
from webpipe.source import Span

if TYPE_CHECKING:
    from webpipe.executor.compiled import Body
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env

JSON = Any
UNKNOWN_ERROR = "Unknown pipeline error"


@dataclass(eq=False)
class ExecutionRun:
    """What every resolver of one execution shares (the `context_value` of graphql-core)."""

    env: Env
    ctx: RequestContext
    context: JSON  # the pipeline state at the `graphql` step
    variables: dict[str, JSON]  # the caller's variables, JSON types as given
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    batcher: object | None = None  # a loaders.Batcher, created by the first loader key
    _with_defaults: dict[str, JSON] | None = None

    def variables_for(self, operation: OperationDefinitionNode) -> dict[str, JSON]:
        """Caller variables plus the operation's variable defaults for missing ones."""
        if self._with_defaults is None:
            merged: dict[str, JSON] = {}
            for definition in operation.variable_definitions or ():
                if definition.default_value is not None:
                    name = definition.variable.name.value
                    merged[name] = value_from_ast_untyped(definition.default_value)
            merged.update(self.variables)
            self._with_defaults = merged
        return self._with_defaults


@dataclass(frozen=True, eq=False)
class Binding:
    """One `query`/`mutation`/`resolver` declaration bound to a field."""

    type_name: str  # as declared: "Query", "Mutation" or the object type
    field_name: str
    body: Body  # the declaration's body, compiled at load
    span: Span

    @property
    def key(self) -> str:
        """The call-log key: `Query.x`, `Mutation.y`, `Type.f`."""
        return f"{self.type_name}.{self.field_name}"


def run_of(info: GraphQLResolveInfo[ExecutionRun]) -> ExecutionRun:
    run = info.context
    assert isinstance(run, ExecutionRun), "resolvers only run inside GraphqlRuntime.execute"
    return run


def raw_arguments(info: GraphQLResolveInfo[ExecutionRun], coerced: dict[str, Any],
                  variables: dict[str, JSON]) -> dict[str, JSON]:
    """The field's arguments as JSON the caller wrote (see module docstring)."""
    written = {node.name.value: node.value for node in info.field_nodes[0].arguments or ()}
    out: dict[str, JSON] = {}
    for name, value in coerced.items():
        if name in written:
            raw = value_from_ast_untyped(written[name], variables)
            out[name] = value if raw is Undefined else raw
        else:
            out[name] = value  # an SDL default value
    return out


def resolver_input(parent: JSON, context: JSON, args: dict[str, JSON]) -> dict[str, JSON]:
    """§3: `parent`, `context`, the flattened arguments, then `args` (same overwrite order)."""
    payload: dict[str, JSON] = {"parent": parent, "context": context}
    payload.update(args)
    payload["args"] = args
    return payload


def record_and_mock(run: ExecutionRun, binding: Binding, payload: JSON) -> tuple[Any] | None:
    """Record the resolver call (tests only), then look up a resolver mock."""
    if run.ctx.call_log is not None:
        run.ctx.call_log.setdefault(binding.key, []).append(payload)
    return run.ctx.invoker.resolver_mock(binding.type_name, binding.field_name)


async def run_locked(run: ExecutionRun, body: Body, state: JSON) -> JSON:
    """Run a compiled body under the execution's lock; a hard error becomes a field error."""
    from webpipe.executor.pipeline import run_body

    async with run.lock:
        try:
            return (await run_body(body, state, run.env, run.ctx)).state
        except WebpipeError as exc:
            raise GraphQLError(exc.message) from None


def to_field_value(value: JSON) -> JSON:
    """§3.1: an object with a non-empty `errors` array is a field error; else the value."""
    if isinstance(value, dict):
        errors = value.get("errors")
        if isinstance(errors, list) and errors:
            raise GraphQLError(first_message(errors))
    return value


def first_message(errors: list[JSON]) -> str:
    first = errors[0]
    message = first.get("message") if isinstance(first, dict) else None
    return message if isinstance(message, str) else UNKNOWN_ERROR


def default_resolver(parent: JSON, info: GraphQLResolveInfo[Any], /, **_args: Any) -> JSON:
    """§4: read the parent's key of the field's name; a non-object parent gives null."""
    return parent.get(info.field_name) if isinstance(parent, dict) else None


class PipelineResolver:
    """A non-loader resolver: one pipeline run per field occurrence (§3, §5.1)."""

    def __init__(self, binding: Binding) -> None:
        self.binding = binding

    async def __call__(self, parent: JSON, info: GraphQLResolveInfo[ExecutionRun], /,
                       **coerced: Any) -> JSON:
        run = run_of(info)
        args = raw_arguments(info, coerced, run.variables_for(info.operation))
        payload = resolver_input(parent, run.context, args)
        mocked = record_and_mock(run, self.binding, payload)
        if mocked is not None:
            return to_field_value(mocked[0])
        return to_field_value(await run_locked(run, self.binding.body,
                                               payload))


class FailingResolver:
    """A resolver that always fails with one message (a `loader` in a root resolver)."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, parent: JSON, info: GraphQLResolveInfo[ExecutionRun], /,
                 **coerced: Any) -> JSON:
        raise GraphQLError(self.message)
