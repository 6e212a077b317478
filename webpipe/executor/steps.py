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
from webpipe.executor.hedge import hedged
from webpipe.executor.hooks import AFTER_PIPELINE, run_after_pipeline
from webpipe.executor.invoker import REAL_INVOKER
from webpipe.executor.jqrun import first_sync, resolving
from webpipe.executor.plan import StepPlan, SyncRun
from webpipe.executor.process_tasks import TaskInfo
from webpipe.executor.retry import bounded, is_failure, retrying, with_attempts
from webpipe.executor.singleflight import dedup_key, single_flight
from webpipe.executor.state import (
    JSON_CT,
    Outcome,
    apply_value,
    carried,
    envelope,
    error_type,
    merge,
    rename_error,
    without_restored,
)
from webpipe.executor.tags import gate
from webpipe.jqlib import JqError, JqLimitError, NeedsWorker
from webpipe.middleware.base import Behavior, RunAsync, StepCall, StepResult
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env


log = logging.getLogger("webpipe.executor")


class ControlFlowError(HardError):
    """A control-flow failure (foreach on a non-array): hard at route level, an envelope
    at the call site of a named pipeline (spec/language.md §4.5)."""


async def run_regular_step(step: n.MiddlewareStep, body: tuple[n.Step, ...], index: int,
                           out: Outcome, env: Env, ctx: RequestContext) -> bool:
    """Run one step, updating `out`; True when the body must end (a cache hit)."""
    if step.tags is not None and not await _gate(step.tags, out.state, env, ctx):
        return False
    plan = env.plan(step)
    tags = plan.tags
    pre = out.state
    if tags.async_name is not None or tags.background:
        await ctx.tasks().defer_or_spawn(plan, pre, env, ctx)
        return False
    state, inserted = _with_auto_name(plan, pre)
    target = tags.result_name or _result_name(state)
    result: StepResult | None = None
    if tags.retry or (tags.timeout_ms is not None and plan.kind != "join"):
        result = await _guarded(plan, state, target, env, ctx)
    elif _sync_run(plan, ctx):
        result = _invoke_sync(plan, state, target, ctx)
    if result is None:
        result = await invoke_step(plan, state, target, env, ctx)
    def settled() -> bool:
        return settle(plan, result, state, target, inserted, out,
                      lambda: is_effectively_last(body, index, pre, env, ctx))

    try:
        return settled()
    except NeedsWorker:  # a later step's @guard: `settle` changes nothing before asking
        return await resolving(settled, env, ctx)


async def _gate(expr: n.TagExpr, state: Any, env: Env, ctx: RequestContext) -> bool:
    try:
        return gate(expr, state, env, ctx)
    except NeedsWorker:
        return await resolving(lambda: gate(expr, state, env, ctx), env, ctx)


async def _guarded(plan: StepPlan, state: Any, target: str | None, env: Env,
                   ctx: RequestContext) -> StepResult:
    """A synchronous step with `@retry(n)` and/or `@timeout(ms)` (each attempt bounded)."""
    ms = plan.tags.timeout_ms if plan.kind != "join" else None

    async def attempt() -> StepResult:
        out = await bounded(invoke_step(plan, state, target, env, ctx), ms, plan.name,
                            plan.location)
        return out if isinstance(out, StepResult) else StepResult(out)  # the envelope

    retries = plan.tags.retry or 0
    result: StepResult
    result, tries = await retrying(attempt, retries, lambda r: r.value)
    if retries and is_failure(result.value):
        result = StepResult(with_attempts(result.value, tries), result.content_type,
                            status=result.status)
    return result


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
    behavior, wraps = _rules(plan)
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


async def run_plain(plans: tuple[StepPlan, ...], state: Any, env: Env, ctx: RequestContext,
                    ) -> Outcome:
    """`run_pipeline` for a body of untagged middleware steps (`plain_plans`), in one
    coroutine: the step loop without its per-step coroutine and tag handling; steps with
    `run_sync` run without any. The first error envelope ends it (there is no `result` step
    to catch it). After-pipeline hooks run as `run_pipeline` runs them."""
    hooks = ctx.extras.get(AFTER_PIPELINE)
    mark = len(hooks) if hooks else 0
    out = Outcome(state, JSON_CT, None)
    last_index = len(plans) - 1
    for index, plan in enumerate(plans):
        if error_type(out.state) is not None:
            break
        pre = out.state
        state, inserted = _with_auto_name(plan, pre)
        target = _result_name(state)
        result = _invoke_sync(plan, state, target, ctx) if _sync_run(plan, ctx) else None
        if result is None:
            result = await invoke_step(plan, state, target, env, ctx)
        if settle(plan, result, state, target, inserted, out,
                  _last if index == last_index else _not_last):
            break
    if ctx.extras.get(AFTER_PIPELINE):
        # a cache stores what the route answers, never the request keys it carried along
        await run_after_pipeline(ctx, without_restored(out.state, out.restored, ctx.request),
                                 out.content_type, out.status, since=mark)
    return out


def plain_plans(body: tuple[n.Step, ...], env: Env) -> tuple[StepPlan, ...] | None:
    """The plans for `run_plain` when every step of `body` is an untagged middleware
    step (no tags, no flow steps, no pipeline calls or `join`). None otherwise."""
    plans = []
    for step in body:
        if not isinstance(step, n.MiddlewareStep) or step.tags is not None:
            return None
        plan = env.plan(step)
        if plan.kind != "middleware":
            return None
        plans.append(plan)
    return tuple(plans) if plans else None


def _last() -> bool:
    return True


def _not_last() -> bool:
    return False


def is_effectively_last(body: tuple[n.Step, ...], index: int, state: Any, env: Env,
                        ctx: RequestContext) -> bool:
    """No later step of this body will run (judged on the pre-step state, §4.2-2)."""
    for later in body[index + 1:]:
        if not isinstance(later, n.MiddlewareStep):
            return False
        tags = env.plan(later).tags
        if tags.background:
            continue  # @background work never shapes the response
        if gate(later.tags, state, env, ctx):
            return False
    return True


def _rules(plan: StepPlan) -> tuple[Behavior, bool]:
    if plan.middleware is None:  # pipeline calls and join merge
        return Behavior.MERGE, False
    return plan.middleware.behavior, plan.middleware.wraps_data


def _with_auto_name(plan: StepPlan, state: Any) -> tuple[Any, bool]:
    if plan.auto_name and isinstance(state, dict) and "resultName" not in state:
        return {**state, "resultName": plan.auto_name}, True
    return state, False


def _result_name(state: Any) -> str | None:
    if isinstance(state, dict):
        name = state.get("resultName")
        if isinstance(name, str):
            return name
    return None


async def invoke_step(plan: StepPlan, state: Any, target: str | None, env: Env,
                      ctx: RequestContext) -> StepResult:
    """Run the step's work and turn a middleware failure into a `<name>Error` envelope."""
    try:
        match plan.kind:
            case "middleware":
                mocked = ctx.invoker.step_mock(plan, state)
                if mocked is not None:  # the reference's order: mocks before arguments
                    return StepResult(mocked[0])
                call = await _call_resolved(plan, state, target, env, ctx)
                return await invoke_middleware(plan, state, call, ctx)
            case "missing":
                raise HardError(plan.missing, span=plan.step.span)
            case "loader":
                raise HardError("a `loader` step only runs as part of a GraphQL field resolver",
                                span=plan.step.span)
            case "join":
                return await ctx.tasks().join(plan, state, env, ctx)
            case "pipeline":
                return await call_pipeline(plan, state, env, ctx)
        raise AssertionError(plan.kind)
    except Exception as exc:
        return _failure(plan, exc)


def _sync_run(plan: StepPlan, ctx: RequestContext) -> SyncRun | None:
    """The step's `run_sync` when it may be used: the invoker is the real one (the test
    runner's answers mocks in `invoke`) and `@dedup` does not share the call."""
    if ctx.invoker is REAL_INVOKER and not plan.tags.dedup and plan.tags.hedge is None:
        return plan.run_sync
    return None


def _invoke_sync(plan: StepPlan, state: Any, target: str | None, ctx: RequestContext,
                 ) -> StepResult | None:
    """`invoke_step` for a middleware with `run_sync` and the real invoker: no coroutine.
    None when the middleware hands the call over to its `run`."""
    assert plan.run_sync is not None
    try:
        return plan.run_sync(state, plan.prepared, step_call(plan, state, target, ctx))
    except (RunAsync, NeedsWorker):
        return None
    except Exception as exc:
        return _failure(plan, exc)


def _failure(plan: StepPlan, exc: Exception) -> StepResult:
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


async def _call_resolved(plan: StepPlan, state: Any, target: str | None, env: Env,
                         ctx: RequestContext) -> StepCall:
    """`step_call`, running on a sandbox worker the inline arguments that need one."""
    try:
        return step_call(plan, state, target, ctx)
    except NeedsWorker:
        return await resolving(lambda: step_call(plan, state, target, ctx), env, ctx)


async def _callee_input(plan: StepPlan, state: Any, env: Env, ctx: RequestContext) -> Any:
    """A pipeline call's input: the state, merged with the first inline argument (§4.1)."""
    if plan.args or plan.arg_error:
        return merge(state, (await _call_resolved(plan, state, None, env, ctx)).args[0])
    return state


async def call_pipeline(plan: StepPlan, state: Any, env: Env, ctx: RequestContext,
                        ) -> StepResult:
    """A named-pipeline call: run the callee on the (argument-merged) state, Merge back."""
    from webpipe.executor.pipeline import run_pipeline

    assert plan.callee is not None
    if ctx.call_log is not None:
        ctx.call_log.setdefault(f"pipeline.{plan.callee.name}", []).append(state)
    mocked = ctx.invoker.pipeline_mock(plan.callee.name)
    if mocked is not None:
        return StepResult(mocked[0])
    try:
        outcome = await run_pipeline(plan.callee.pipeline,
                                     await _callee_input(plan, state, env, ctx), env, ctx)
    except ControlFlowError as exc:
        raise StepError(exc.message) from None
    return StepResult(outcome.state, outcome.content_type, status=outcome.status,
                      restored=frozenset(outcome.restored))


async def run_task_step(plan: StepPlan, state: Any, env: Env, ctx: RequestContext) -> Any:
    """The body of an `@async` task (concurrency.md §2): one raw middleware call on the
    snapshot, or a full named-pipeline run; failures become `{"error": ...}`."""
    from webpipe.executor.pipeline import run_pipeline

    state, _ = _with_auto_name(plan, state)
    try:
        if plan.kind == "pipeline" and plan.callee is not None:
            callee_input = await _callee_input(plan, state, env, ctx)
            if ctx.call_log is not None:  # `call pipeline` assertions see task calls too
                ctx.call_log.setdefault(f"pipeline.{plan.callee.name}", []).append(state)
            final = (await run_pipeline(plan.callee.pipeline, callee_input, env, ctx)).state
            return _as_tagged(plan, state, None, final)
        if plan.kind in ("missing", "join"):
            raise HardError(plan.missing or "join cannot run as an async task",
                            span=plan.step.span)
        target = plan.tags.result_name
        call = await _call_resolved(plan, state, target, env, ctx)
        sync = _sync_run(plan, ctx)
        value = None
        if sync is not None:
            try:
                value = sync(state, plan.prepared, call).value
            except RunAsync:
                sync = None
        if sync is None:
            value = (await invoke_middleware(plan, state, call, ctx)).value
        return _as_tagged(plan, state, target, value)
    except StepError as exc:  # concurrency.md §5 flavour 2
        return {"error": f"At {plan.location}: Middleware execution failed: {exc.message}"}
    except HardError as exc:
        return {"error": f"At {plan.location}: {exc.message}"}



def _as_tagged(plan: StepPlan, state: Any, target: str | None, value: Any) -> Any:
    """A task's value with `@error(type)` and `@result(name)` applied as a synchronous step
    applies them (spec/tasks.md): renamed envelope; the result wrapped under `.data.<name>`
    of the snapshot."""
    if plan.tags.error_name:
        value = rename_error(value, plan.tags.error_name)
    if target is not None and error_type(value) is None:
        behavior, wraps = _rules(plan)
        if wraps:
            return apply_value(behavior, wraps, target, state, value, True)
    return value
