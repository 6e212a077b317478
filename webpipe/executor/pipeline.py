"""The interpreter: run one pipeline body (spec/reference/language.md §4-§5).

Every body (route, named pipeline, branch, `if` condition, `case`, `foreach` item, the body
of an `@async` task) runs here, and so does all the recursion between them: a named-pipeline
call, a branch and a task body come back to `run_body`. Before each step an error
envelope in the state skips everything but `result`; a `result` step ends the body. What a
regular step does once its work is chosen (the call, the state rules, the error envelope)
is in `steps.py`; the pure helpers of control flow are in `branches.py`. Nothing in the
executor imports this module back, so the recursion needs no import inside a function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, assert_never

from webpipe.errors import HardError, StepError
from webpipe.executor.branches import choose_branch, get_path, set_path, take_branch
from webpipe.executor.compiled import Body, Call, Compiled, Dispatch, Foreach, If, Result
from webpipe.executor.hooks import AFTER_PIPELINE, run_after_pipeline
from webpipe.executor.invoker import REAL_INVOKER
from webpipe.executor.jqrun import resolving
from webpipe.executor.plan import AsyncRun, StepPlan
from webpipe.executor.retry import bounded, guard_grace, is_failure, retrying, with_attempts
from webpipe.executor.state import (
    JSON_CT,
    Outcome,
    error_type,
    merge,
    transform_carried,
    without_restored,
)
from webpipe.executor.steps import (
    ControlFlowError,
    as_tagged,
    call_resolved,
    failure,
    invoke_middleware,
    invoke_sync,
    is_effectively_last,
    last_step,
    not_last_step,
    result_name,
    settle,
    step_call,
    sync_result,
    sync_run,
    with_auto_name,
)
from webpipe.executor.tags import gate
from webpipe.jqlib import NeedsWorker, truthy
from webpipe.middleware.base import RunAsync, StepResult
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env


async def run_body(body: Body, state: Any, env: Env, ctx: RequestContext,
                   handling: str | None = None) -> Outcome:
    """Run a compiled body on `state`. `handling` is the error type a `result` branch is
    handling. `after_pipeline` hooks registered while this body ran are awaited when it
    ends.

    A body compiled `plain` (untagged middleware calls only, chosen at load) runs here, in
    this coroutine: no step kinds, no tags, `run_sync` steps without any coroutine, and
    the first error envelope ends it (no `result` step can catch it)."""
    hooks = ctx.extras.get(AFTER_PIPELINE)
    mark = len(hooks) if hooks else 0
    plain = body.plain
    if plain is not None:
        out = Outcome(state, JSON_CT, None)
        index = run_plain_now(plain, out, ctx)
        while index is not None:  # step `index` awaits: it, then the rest, from here
            plan = plain[index]
            state, inserted = with_auto_name(plan, out.state)
            target = result_name(state)
            run = plan.run_async
            if run is not None and ctx.invoker is REAL_INVOKER:
                result = await run_awaited(plan, run, state, target, env, ctx)
            else:
                result = await invoke_step(plan, state, target, env, ctx)
            if _settle_plain(plain, index, result, state, target, inserted, out):
                break
            index = run_plain_now(plain, out, ctx, index + 1)
    elif env.debugger is None:
        out = await _run_steps(body, state, env, ctx, handling)
    else:  # --inspect: a route or named pipeline body is a frame (spec/debugger.md)
        out = await env.debugger.run_body(
            body.node, state, ctx, lambda s: _run_steps(body, s, env, ctx, handling))
    if ctx.extras.get(AFTER_PIPELINE):
        # a cache stores what the route answers, never the request keys it carried along
        await run_after_pipeline(ctx, without_restored(out.state, out.restored, ctx.request),
                                 out.content_type, out.status, since=mark)
    return out


def run_plain_now(plain: tuple[StepPlan, ...], out: Outcome, ctx: RequestContext,
                  start: int = 0) -> int | None:
    """Run a `plain` body's steps from `start` on `out` without awaiting; the index of the
    first step that must be awaited (its middleware has no `run_sync`, or handed the call
    to `run`), or None when the body is done (every step ran, or an error envelope or a
    cache hit ended it)."""
    for index in range(start, len(plain)):
        if error_type(out.state) is not None:
            return None
        plan = plain[index]
        pure = plan.run_pure
        if pure is not None and out.content_type == JSON_CT and ctx.invoker is REAL_INVOKER:
            state = out.state
            try:  # `settle` of a Transform value with nothing else, without the objects
                value = pure(state, plan.prepared, ctx)
            except (RunAsync, NeedsWorker):
                return index
            except Exception as exc:  # as `invoke_sync`: an envelope, or raised on
                value = failure(plan, exc).value
            last = index == len(plain) - 1
            new_state, carried_keys = transform_carried(state, value, last)
            if carried_keys:  # the request keys carried along (§6.3)
                out.restored.update(carried_keys)
            out.state = new_state
            if last:
                return None
            continue
        if sync_run(plan, ctx) is None:  # awaited (`run_body`), which makes its state
            return index
        state, inserted = with_auto_name(plan, out.state)
        target = result_name(state)
        result = invoke_sync(plan, state, target, ctx)
        if result is None:
            return index
        if _settle_plain(plain, index, result, state, target, inserted, out):
            return None
    return None


def _settle_plain(plain: tuple[StepPlan, ...], index: int, result: StepResult, state: Any,
                  target: str | None, inserted: bool, out: Outcome) -> bool:
    """`settle` for step `index` of a plain body: True when the body ends there."""
    return settle(plain[index], result, state, target, inserted, out,
                  last_step if index == len(plain) - 1 else not_last_step) \
        or index == len(plain) - 1


async def run_awaited(plan: StepPlan, run: AsyncRun, state: Any, target: str | None,
                      env: Env, ctx: RequestContext) -> StepResult:
    """`invoke_step` of a plain body's step whose middleware `run` was chosen at load
    (`StepPlan.run_async`), with the real invoker: the same call and the same envelope,
    without the coroutines of the invoker, the mock lookup and the argument resolution
    (tests/executor/test_awaited_choice.py)."""
    try:
        try:
            call = step_call(plan, state, target, ctx)
        except NeedsWorker:  # an inline argument needs a sandbox worker
            call = await resolving(lambda: step_call(plan, state, target, ctx), env, ctx)
        return await run(state, plan.prepared, call)
    except Exception as exc:
        return failure(plan, exc)


async def _run_steps(body: Body, state: Any, env: Env, ctx: RequestContext,
                     handling: str | None) -> Outcome:
    out = Outcome(state, JSON_CT, None)
    steps = body.steps
    tracer = ctx.tracer  # webpipe/tracing: None unless the app traces
    for index, step in enumerate(steps):
        kind = error_type(out.state)
        if kind is not None and kind != handling and not isinstance(step, Result):
            continue
        if env.debugger is not None:  # --inspect: may pause here, may edit the state
            await env.debugger.before_step(step.node, out, env, ctx)
        token = tracer.step_started(step) if tracer is not None else None
        try:
            match step:
                case Call():
                    if await run_regular_step(step, steps, index, out, env, ctx):
                        return out
                case Result():
                    return await run_result(step, out, env, ctx)
                case If():
                    await run_if(step, out, env, ctx)
                case Dispatch():
                    await run_dispatch(step, out, env, ctx)
                case Foreach():
                    await run_foreach(step, out, env, ctx)
                case _:
                    assert_never(step)
        finally:  # also when the step raised or was cancelled: the span still ends
            if tracer is not None:
                tracer.step_ended(token, out.state)
    return out


async def run_regular_step(step: Call, body: tuple[Compiled, ...], index: int,
                           out: Outcome, env: Env, ctx: RequestContext) -> bool:
    """Run one step, updating `out`; True when the body must end (a cache hit)."""
    expr = step.node.tags
    if expr is not None:  # `gate_step` without its coroutine (every tagged step)
        try:
            runs = gate(expr, out.state, env, ctx)
        except NeedsWorker:
            runs = await resolving(lambda: gate(expr, out.state, env, ctx), env, ctx)
        if not runs:
            return False
    plan = step.plan
    tags = plan.tags
    pre = out.state
    if tags.async_name is not None or tags.background:
        ctx.tasks().defer_or_spawn(plan, pre, env, ctx)
        return False
    state, inserted = with_auto_name(plan, pre)
    target = tags.result_name or result_name(state)
    result: StepResult | None
    if tags.retry or (tags.timeout_ms is not None and plan.kind != "join"):
        result = await guarded(plan, state, target, env, ctx)
    else:
        result = invoke_sync(plan, state, target, ctx)
        if result is None:
            result = await invoke_step(plan, state, target, env, ctx)

    def settled() -> bool:
        return settle(plan, result, state, target, inserted, out,
                      lambda: is_effectively_last(body, index, pre, env, ctx))

    try:
        return settled()
    except NeedsWorker:  # a later step's @guard: `settle` changes nothing before asking
        return await resolving(settled, env, ctx)


async def gate_step(expr: n.TagExpr, state: Any, env: Env, ctx: RequestContext) -> bool:
    try:
        return gate(expr, state, env, ctx)
    except NeedsWorker:
        return await resolving(lambda: gate(expr, state, env, ctx), env, ctx)


async def guarded(plan: StepPlan, state: Any, target: str | None, env: Env,
                   ctx: RequestContext) -> StepResult:
    """A synchronous step with `@retry(n)` and/or `@timeout(ms)` (each attempt bounded)."""
    ms = plan.tags.timeout_ms if plan.kind != "join" else None

    async def attempt() -> StepResult:
        out = await bounded(invoke_step(plan, state, target, env, ctx), ms, plan.name,
                            plan.location, guard_grace(plan))
        return out if isinstance(out, StepResult) else StepResult(out)  # the envelope

    retries = plan.tags.retry or 0
    result: StepResult
    result, tries = await retrying(attempt, retries, lambda r: r.value)
    if retries and is_failure(result.value):
        result = StepResult(with_attempts(result.value, tries), result.content_type,
                            status=result.status)
    return result


async def invoke_step(plan: StepPlan, state: Any, target: str | None, env: Env,
                      ctx: RequestContext) -> StepResult:
    """Run the step's work and turn a middleware failure into a `<name>Error` envelope."""
    try:
        match plan.kind:
            case "middleware":
                mocked = ctx.invoker.step_mock(plan, state)
                if mocked is not None:  # the reference's order: mocks before arguments
                    return StepResult(mocked[0])
                call = await call_resolved(plan, state, target, env, ctx)
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
            case _:
                assert_never(plan.kind)
    except Exception as exc:
        return failure(plan, exc)


async def callee_input(plan: StepPlan, state: Any, env: Env, ctx: RequestContext) -> Any:
    """A pipeline call's input: the state, merged with the first inline argument (§4.1)."""
    if plan.args or plan.arg_error:
        return merge(state, (await call_resolved(plan, state, None, env, ctx)).args[0])
    return state


def callee_body(plan: StepPlan) -> Body:
    """A pipeline call's callee, linked when the call was planned (`Env.link`)."""
    assert plan.callee_body is not None
    return plan.callee_body


async def call_pipeline(plan: StepPlan, state: Any, env: Env, ctx: RequestContext,
                        ) -> StepResult:
    """A named-pipeline call: run the callee on the (argument-merged) state, Merge back."""
    assert plan.callee is not None
    if ctx.call_log is not None:
        ctx.call_log.setdefault(f"pipeline.{plan.callee.name}", []).append(state)
    mocked = ctx.invoker.pipeline_mock(plan.callee.name)
    if mocked is not None:
        return StepResult(mocked[0])
    try:
        outcome = await run_body(callee_body(plan),
                                 await callee_input(plan, state, env, ctx), env, ctx)
    except ControlFlowError as exc:
        raise StepError(exc.message) from None
    return StepResult(outcome.state, outcome.content_type, status=outcome.status,
                      restored=frozenset(outcome.restored))


async def run_task_step(plan: StepPlan, state: Any, env: Env, ctx: RequestContext) -> Any:
    """The body of an `@async` task (concurrency.md §2): one raw middleware call on the
    snapshot, or a full named-pipeline run; failures become `{"error": ...}`."""
    state, _ = with_auto_name(plan, state)
    try:
        if plan.kind == "pipeline" and plan.callee is not None:
            given = await callee_input(plan, state, env, ctx)
            if ctx.call_log is not None:  # `call pipeline` assertions see task calls too
                ctx.call_log.setdefault(f"pipeline.{plan.callee.name}", []).append(state)
            final = (await run_body(callee_body(plan), given, env, ctx)).state
            return as_tagged(plan, state, None, final)
        if plan.kind in ("missing", "join"):
            raise HardError(plan.missing or "join cannot run as an async task",
                            span=plan.step.span)
        target = plan.tags.result_name
        try:  # `call_resolved`, without its coroutine (this runs once per `@async` branch)
            call = step_call(plan, state, target, ctx)
        except NeedsWorker:
            call = await resolving(lambda: step_call(plan, state, target, ctx), env, ctx)
        result = sync_result(plan, state, call, ctx)
        if result is None:
            result = await invoke_middleware(plan, state, call, ctx)
        return as_tagged(plan, state, target, result.value)
    except StepError as exc:  # concurrency.md §5 flavour 2
        return {"error": f"At {plan.location}: Middleware execution failed: {exc.message}"}
    except HardError as exc:
        return {"error": f"At {plan.location}: {exc.message}"}


async def run_result(step: Result, out: Outcome, env: Env, ctx: RequestContext,
                     ) -> Outcome:
    index = choose_branch(step.node, out.state)
    if index is None:
        return out
    branch = step.node.branches[index]
    before = out.state
    inner = await run_body(step.branches[index], before, env, ctx, handling=error_type(before))
    state = inner.state
    if isinstance(before, dict) and "setCookies" in before and isinstance(state, dict) \
            and "setCookies" not in state:
        state = {**state, "setCookies": before["setCookies"]}
    out.state = state
    out.status = branch.status
    if inner.content_type != JSON_CT:
        out.content_type = inner.content_type
    return out


async def run_if(step: If, out: Outcome, env: Env, ctx: RequestContext) -> None:
    condition = await run_body(step.condition, out.state, env, ctx)
    branch = step.then if truthy(condition.state) else step.else_
    if branch is not None:
        take_branch(out, await run_body(branch, out.state, env, ctx))


async def run_dispatch(step: Dispatch, out: Outcome, env: Env, ctx: RequestContext,
                       ) -> None:
    state = out.state

    def choose() -> Body | None:
        for condition, body in step.cases:
            if gate(condition, state, env, ctx):
                return body
        return step.default

    try:
        chosen = choose()
    except NeedsWorker:  # a `@guard` condition needs a sandbox worker
        chosen = await resolving(choose, env, ctx)
    if chosen is not None:
        take_branch(out, await run_body(chosen, out.state, env, ctx))


async def run_foreach(step: Foreach, out: Outcome, env: Env, ctx: RequestContext,
                      ) -> None:
    path = list(step.path)
    items = get_path(out.state, path)
    if not isinstance(items, list):
        what = "missing" if items is None else f"not an array ({type(items).__name__})"
        raise ControlFlowError(f"foreach {step.node.selector}: the value is {what}",
                               span=step.node.span)
    results = [(await run_body(step.body, item, env, ctx)).state for item in items]
    out.state = set_path(out.state, path, results)
