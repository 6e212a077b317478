"""One regular step: gate, async/background hand-off, invoke, and the state rules.

This is spec/language.md §4.2 in order. Middleware calls go through the request's
`Invoker` (the test runner swaps in one that applies mocks); middleware failures become
`<step>Error` envelopes carrying the step's `file:line`; hard errors propagate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from webpipe.errors import HardError, StepError, WebpipeError
from webpipe.executor.compiled import Call, Compiled
from webpipe.executor.hedge import hedged
from webpipe.executor.invoker import REAL_INVOKER
from webpipe.executor.jqrun import first_sync, resolving
from webpipe.executor.plan import StepPlan, SyncRun
from webpipe.executor.process_tasks import TaskInfo
from webpipe.executor.singleflight import dedup_key, single_flight
from webpipe.executor.state import (
    JSON_CT,
    Outcome,
    apply_value,
    carried,
    envelope,
    error_type,
    rename_error,
)
from webpipe.executor.tags import gate
from webpipe.jqlib import JqError, JqLimitError, NeedsWorker
from webpipe.middleware.base import Behavior, RunAsync, StepCall, StepResult

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env


log = logging.getLogger("webpipe.executor")


class ControlFlowError(HardError):
    """A control-flow failure (foreach on a non-array): hard at route level, an envelope
    at the call site of a named pipeline (spec/language.md §4.5)."""


def settle(plan: StepPlan, result: StepResult, state: Any, target: str | None, inserted: bool,
           out: Outcome, last_of: Callable[[], bool]) -> bool:
    """Apply a step's result to `out` (the state rules, content type and status of §4.2);
    True when the body must end (a cache hit). `last_of()` tells whether no later step of
    the body will run; it is only asked when that matters."""
    if result.cache_hit:  # spec/language.md §4.2-10: the body ends with the cached response
        out.state, out.content_type = result.value, result.content_type
        if result.status is not None:
            out.status = result.status
        return True
    value = result.value
    if plan.tags.error_name:
        value = rename_error(value, plan.tags.error_name)
    behavior, wraps = rules(plan)
    last: bool | None = None
    wrapped = wraps and target is not None and error_type(value) is None
    if behavior is Behavior.TRANSFORM and isinstance(value, dict) and not wrapped:
        last = last_of()
    new_state = apply_value(behavior, wraps, target, state, value, bool(last))
    if new_state is not value:  # the state rules carried keys along (spec/server.md §6)
        out.restored.update(carried(value, new_state))
    if result.restored:
        out.restored.update(result.restored)
    if inserted and isinstance(new_state, dict) and "resultName" in new_state:
        new_state = {k: v for k, v in new_state.items() if k != "resultName"}
    out.state = new_state
    if result.content_type != out.content_type:
        if last is None:
            last = last_of()
        if last or (result.content_type != JSON_CT and (
                behavior is Behavior.RENDER or plan.kind == "pipeline")):
            out.content_type = result.content_type
    if result.status is not None:
        out.status = result.status
    return False


def last_step() -> bool:
    return True


def not_last_step() -> bool:
    return False


def is_effectively_last(body: tuple[Compiled, ...], index: int, state: Any, env: Env,
                        ctx: RequestContext) -> bool:
    """No later step of this body will run (judged on the pre-step state, §4.2-2)."""
    for later in body[index + 1:]:
        if not isinstance(later, Call):
            return False
        if later.plan.tags.background:
            continue  # @background work never shapes the response
        if gate(later.node.tags, state, env, ctx):
            return False
    return True


def rules(plan: StepPlan) -> tuple[Behavior, bool]:
    if plan.middleware is None:  # pipeline calls and join merge
        return Behavior.MERGE, False
    return plan.middleware.behavior, plan.middleware.wraps_data


def with_auto_name(plan: StepPlan, state: Any) -> tuple[Any, bool]:
    if plan.auto_name and isinstance(state, dict) and "resultName" not in state:
        return {**state, "resultName": plan.auto_name}, True
    return state, False


def result_name(state: Any) -> str | None:
    if isinstance(state, dict):
        name = state.get("resultName")
        if isinstance(name, str):
            return name
    return None


def sync_run(plan: StepPlan, ctx: RequestContext) -> SyncRun | None:
    """The step's `run_sync`, when its plan chose it at load and the invoker is the real one
    (the test runner's answers mocks in `invoke`, which only `run` goes through)."""
    return plan.run_sync if ctx.invoker is REAL_INVOKER else None


def invoke_sync(plan: StepPlan, state: Any, target: str | None, ctx: RequestContext,
                ) -> StepResult | None:
    """`invoke_step` without a coroutine, when `sync_run` allows it. None: the caller goes
    through `invoke_step` (no `run_sync`, a mock layer, or the middleware handed the call
    over to its `run`)."""
    run = sync_run(plan, ctx)
    if run is None:
        return None
    try:
        return run(state, plan.prepared, step_call(plan, state, target, ctx))
    except (RunAsync, NeedsWorker):
        return None
    except Exception as exc:
        return failure(plan, exc)


def sync_result(plan: StepPlan, state: Any, call: StepCall, ctx: RequestContext,
                ) -> StepResult | None:
    """`run_sync` on a resolved `call` when `sync_run` allows it; None: the caller goes
    through `run` (the same choice as `invoke_sync`; the middleware's errors propagate)."""
    run = sync_run(plan, ctx)
    if run is None:
        return None
    try:
        return run(state, plan.prepared, call)
    except RunAsync:
        return None


def failure(plan: StepPlan, exc: Exception) -> StepResult:
    """Called in an `except` block: a `StepError` becomes the `<name>Error` envelope, other
    webpipe errors propagate, anything else is a middleware bug (logged, a generic 500)."""
    if isinstance(exc, StepError):
        kind = exc.error_type or f"{plan.name}Error"
        return StepResult(envelope(kind, exc.message, plan.name, plan.location))
    if isinstance(exc, WebpipeError):
        raise exc
    span = plan.step.span
    log.exception("%s: middleware %r crashed", span.label, plan.name)
    raise HardError(f"internal error in middleware {plan.name!r} "
                    f"({type(exc).__name__})", span=span) from exc


async def invoke_middleware(plan: StepPlan, state: Any, call: StepCall, ctx: RequestContext,
                            ) -> StepResult:
    """Call the middleware through the request's invoker; `@hedge` races copies of the
    call, `@dedup` shares identical calls (a shared call is hedged once)."""
    if plan.tags.hedge is None and not plan.tags.dedup:  # the plain call: no closures
        return await ctx.invoker.invoke(plan, state, call)

    async def once() -> StepResult:
        return await ctx.invoker.invoke(plan, state, call)

    async def hedging() -> StepResult:
        return await hedged(plan, state, call, ctx, once)

    work = once if plan.tags.hedge is None else hedging
    if not plan.tags.dedup:
        return await work()
    info = TaskInfo(ctx.route_label, "", "dedup", plan.location)
    result: StepResult = await single_flight(dedup_key(plan, state, call), info, work)
    return result


def step_call(plan: StepPlan, state: Any, target: str | None, ctx: RequestContext) -> StepCall:
    """The `StepCall` of a middleware step on `state`: its inline arguments evaluated."""
    if plan.arg_error:
        raise StepError(plan.arg_error)
    args: tuple[Any, ...] = ()
    if plan.args:
        try:
            args = tuple(first_sync(program, state, ctx) for program in plan.args)
        except JqLimitError as exc:
            raise StepError(str(exc), error_type=exc.error_type) from None
        except JqError as exc:
            raise StepError(str(exc)) from None
    return StepCall(plan.name, plan.config, args, target, plan.step.span, ctx,
                    plan.tags.timeout_ms)


async def call_resolved(plan: StepPlan, state: Any, target: str | None, env: Env,
                         ctx: RequestContext) -> StepCall:
    """`step_call`, running on a sandbox worker the inline arguments that need one."""
    try:
        return step_call(plan, state, target, ctx)
    except NeedsWorker:
        return await resolving(lambda: step_call(plan, state, target, ctx), env, ctx)


def as_tagged(plan: StepPlan, state: Any, target: str | None, value: Any) -> Any:
    """A task's value with `@error(type)` and `@result(name)` applied as a synchronous step
    applies them (spec/tasks.md): renamed envelope; the result wrapped under `.data.<name>`
    of the snapshot."""
    if plan.tags.error_name:
        value = rename_error(value, plan.tags.error_name)
    if target is not None and error_type(value) is None:
        behavior, wraps = rules(plan)
        if wraps:
            return apply_value(behavior, wraps, target, state, value, True)
    return value
