"""`graphql`: run an operation against the program's schema (graphql.md §6, middleware.md §15).

The operation is the step's config (a stored `graphql NAME` operation is substituted by
the planner), else the string at `.query` in the state. A config operation is parsed and
validated once, at load time, against the schema; a document that fails is reported as a
warning and answered at run time with `{"data": null, "errors": [...]}` like the
reference. Variables, first match wins: the inline argument (must be an object, else a
`graphqlError` envelope), `.variables` (present and not null; a non-object means none),
`.graphqlParams` (an object), `{}`.

Placement (§6.3): the step is a Transform that wraps under `.data.<target>` when a target
exists. The smart unwrap is done here: with a target T and a response whose `data` is an
object with exactly the one key T, the step returns `data[T]` (dropping `errors`), which
the executor then stores at `.data.T`. Inside `@async` tasks there is no target, so no
unwrap happens (graphql.md §8). GraphQL `errors` carry no `type` and never trigger
`result` branches; `@error(NAME)` on the step types them when branching is wanted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from webpipe.errors import Diagnostic, HardError, StepError
from webpipe.executor.context import RequestContext
from webpipe.graphql.remote import is_remote_name, plan_remote
from webpipe.middleware.base import (
    JSON,
    BaseMiddleware,
    Behavior,
    PlannedStep,
    StepCall,
    StepResult,
)
from webpipe.source import Span
from webpipe.wire import json_type

if TYPE_CHECKING:
    from webpipe.executor.env import Env
    from webpipe.graphql.runtime import GraphqlRuntime

NO_SCHEMA = "No GraphQL schema defined in program"
NO_QUERY = "GraphQL middleware requires either a config string or 'query' in state"


@dataclass(frozen=True, slots=True)
class GraphqlOperation:
    """A step's operation text (its parsed document lives in the runtime's cache)."""

    text: str


class GraphqlMiddleware(BaseMiddleware):
    # `@timeout(ms)` is the remote call's own timeout: `timeoutError` (spec/graphql.md)
    times_itself: ClassVar[bool] = True
    behavior: ClassVar[Behavior] = Behavior.TRANSFORM
    wraps_data: ClassVar[bool] = True
    config_keys: ClassVar[frozenset[str] | None] = frozenset({"endpoint", "strictScalars"})

    def prepare(self, config: str, span: Span | None) -> GraphqlOperation | None:
        if not config.strip():
            return None  # dynamic: the operation comes from `.query`
        return GraphqlOperation(config)

    def plan_step(self, plan: PlannedStep) -> None:
        """At load: a remote step (`graphql(NAME)`) is checked against its snapshot, a
        local one against the program's schema (a warning, as the reference runs it)."""
        env = self._env()
        if env is None:
            return
        if plan.step.args and is_remote_name(plan.step.args[0]):
            plan_remote(plan, env)
            return
        if isinstance(plan.prepared, GraphqlOperation):
            runtime = self._runtime()  # without a schema, the syntax alone is checked
            text = plan.prepared.text
            errors = runtime.document(text).errors if runtime else _syntax_errors(text)
            if errors:
                env.diagnostics.append(Diagnostic(
                    f"graphql: {errors[0]['message']}", _error_span(plan, errors[0]),
                    "warning", "graphql-document"))

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        env = self._env()
        text = self._operation(state, prepared, call)
        if env is not None and call.args and isinstance(call.args[0], str):
            return await self._run_remote(env, call.args[0], text, state, call)
        runtime = self._runtime()
        if env is None or runtime is None:
            raise HardError(NO_SCHEMA, span=call.span)
        variables = operation_variables(state, call.args)
        # the executor passes its RequestContext; a bare call gets a blank one
        ctx = call.ctx if isinstance(call.ctx, RequestContext) else RequestContext()
        response = await runtime.execute(runtime.document(text), variables, state, env, ctx)
        return StepResult(smart_unwrap(response, call.target))

    @staticmethod
    def _operation(state: JSON, prepared: object, call: StepCall) -> str:
        if isinstance(prepared, GraphqlOperation):
            return prepared.text
        query = state.get("query") if isinstance(state, dict) else None
        if not isinstance(query, str):
            raise HardError(NO_QUERY, span=call.span)
        return query

    async def _run_remote(self, env: Env, name: str, text: str, state: JSON,
                          call: StepCall) -> StepResult:
        from webpipe.graphql.remote import execute_remote, remote_of

        remote = remote_of(env, name)
        if remote is None:
            raise StepError(f"graphql({name}): no remote named {name!r}")
        variables = operation_variables(state, call.args[1:])
        data = await execute_remote(env, remote, text, variables, call.timeout_ms,
                                    call.ctx.tracer if call.ctx is not None else None)
        if isinstance(data, dict) and "errors" in data and len(data) == 1:
            return StepResult(data)  # a fetch-style envelope
        return StepResult(smart_unwrap({"data": data}, call.target))

    def _env(self) -> Env | None:
        from webpipe.executor.env import Env

        return self.host if isinstance(self.host, Env) else None

    def _runtime(self) -> GraphqlRuntime | None:
        from webpipe.graphql.schema import build_graphql

        env = self._env()
        return build_graphql(env) if env is not None else None


def operation_variables(state: JSON, args: tuple[JSON, ...]) -> dict[str, JSON]:
    """§6.1 variable precedence: inline argument, `.variables`, `.graphqlParams`, `{}`."""
    if args:
        value = args[0]
        if not isinstance(value, dict):
            raise StepError(f"GraphQL variables must be an object, got {json_type(value)}")
        return value
    if not isinstance(state, dict):
        return {}
    variables = state.get("variables")
    if variables is not None:
        return variables if isinstance(variables, dict) else {}
    params = state.get("graphqlParams")
    return params if isinstance(params, dict) else {}


def smart_unwrap(response: dict[str, JSON], target: str | None) -> JSON:
    """§6.3: with target T, `data[T]` when `data` is an object whose only key is T."""
    if target is None:
        return response
    data = response.get("data")
    if isinstance(data, dict) and len(data) == 1 and target in data:
        return data[target]
    return response


def _syntax_errors(text: str) -> tuple[dict[str, Any], ...]:
    from graphql import GraphQLError, parse

    try:
        parse(text)
    except GraphQLError as exc:
        return (dict(exc.formatted),)
    return ()


def _error_span(plan: PlannedStep, error: dict[str, Any]) -> Span:
    """Where in the operation text the error is (its first location), else the step."""
    from webpipe.executor.plan import config_span

    locations = error.get("locations") or []
    if not locations:
        return plan.step.span
    where = config_span(plan, (locations[0]["line"], locations[0]["column"], 1))
    return where or plan.step.span
