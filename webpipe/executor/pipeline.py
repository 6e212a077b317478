"""The step loop: run one pipeline body (spec/language.md §4-§5).

Every body (route, named pipeline, branch, `if` condition, `case`, `foreach` item) runs
here. Before each step an error envelope in the state skips everything but `result`; a
`result` step ends the body. Regular steps go to `steps.run_regular_step`; control flow to
`branches`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webpipe.executor.hooks import AFTER_PIPELINE, run_after_pipeline
from webpipe.executor.state import JSON_CT, Outcome, error_type, without_restored
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env


async def run_pipeline(pipeline: n.Pipeline, state: Any, env: Env, ctx: RequestContext,
                       handling: str | None = None) -> Outcome:
    """Run a body on `state`. `handling` is the error type a `result` branch is handling.

    `after_pipeline` hooks registered while this body ran are awaited when it ends."""
    hooks = ctx.extras.get(AFTER_PIPELINE)
    mark = len(hooks) if hooks else 0
    if env.debugger is None:
        out = await _run_body(pipeline, state, env, ctx, handling)
    else:  # --inspect: a route or named pipeline body is a frame (spec/debugger.md)
        out = await env.debugger.run_body(
            pipeline, state, ctx, lambda s: _run_body(pipeline, s, env, ctx, handling))
    if ctx.extras.get(AFTER_PIPELINE):
        # a cache stores what the route answers, never the request keys it carried along
        await run_after_pipeline(ctx, without_restored(out.state, out.restored, ctx.request),
                                 out.content_type, out.status, since=mark)
    return out


async def _run_body(pipeline: n.Pipeline, state: Any, env: Env, ctx: RequestContext,
                    handling: str | None) -> Outcome:
    out = Outcome(state, JSON_CT, None)
    body = pipeline.steps
    tracer = ctx.tracer  # webpipe/tracing: None unless the app traces
    for index, step in enumerate(body):
        kind = error_type(out.state)
        if kind is not None and kind != handling and not isinstance(step, n.ResultStep):
            continue
        if env.debugger is not None:  # --inspect: may pause here, may edit the state
            await env.debugger.before_step(step, out, env, ctx)
        token = tracer.step_started(step) if tracer is not None else None
        try:
            match step:
                case n.MiddlewareStep():
                    if await steps.run_regular_step(step, body, index, out, env, ctx):
                        return out
                case n.ResultStep():
                    return await branches.run_result(step, out, env, ctx)
                case n.IfStep():
                    await branches.run_if(step, out, env, ctx)
                case n.DispatchStep():
                    await branches.run_dispatch(step, out, env, ctx)
                case n.ForeachStep():
                    await branches.run_foreach(step, out, env, ctx)
        finally:  # also when the step raised or was cancelled: the span still ends
            if tracer is not None:
                tracer.step_ended(token, out.state)
    return out


# imported last: both modules import run_pipeline from here
from webpipe.executor import branches, steps  # noqa: E402
