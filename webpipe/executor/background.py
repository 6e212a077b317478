"""`@background` steps: run after a 2xx response, bounded, retried, failures handled.

Each step runs on the state snapshot from where it stood. Plain `@background` steps of one
request run one after another in declaration order; a step tagged `@background @async(name)`
runs concurrently with the request's other such steps. Every step is its own task owned by
the process (so shutdown names each one it abandons, queued or running), takes a slot under
`config async { maxBackground }` and is cut at `backgroundLifetimeMs`. `@retry(n)` retries
with backoff (`retry.py`) and `@timeout(ms)` bounds each attempt. A step that still fails is
logged with route, task name and `file:line:col`, counted as `error`, and, with
`@onError(pipeline)`, that pipeline is called with `{error, step, location, attempts, input}`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from webpipe.executor.pipeline import run_body, run_task_step
from webpipe.executor.process_tasks import PROCESS_TASKS, TaskInfo
from webpipe.executor.retry import bounded, guard_grace, is_failure, retrying
from webpipe.executor.slots import take_slots
from webpipe.executor.state import error_type

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env
    from webpipe.executor.plan import StepPlan

log = logging.getLogger("webpipe.background")


def end_request(ctx: RequestContext, env: Env, status: int) -> list[asyncio.Task[Any]]:
    """A request (or script run) has its answer: its un-joined tasks are watched for
    failures, and its background steps start when the status is 2xx; their tasks. A traced
    request's tracer hears the status (only a request's root tracer acts on it)."""
    if ctx.tracer is not None:
        ctx.tracer.request_ended(status)
    tasks = ctx.existing_tasks()
    if tasks is None:
        return []
    tasks.close()
    if tasks.background and 200 <= status < 300:
        from webpipe.jobs.enqueue import enqueue_later

        return enqueue_later(ctx, env) + start_background(tasks.background, env, ctx)
    return []


def start_background(steps: list[tuple[StepPlan, Any]], env: Env, ctx: RequestContext,
                     ) -> list[asyncio.Task[Any]]:
    """Start every deferred step of a request (or task) that answered 2xx; their tasks."""
    previous: asyncio.Task[Any] | None = None
    started = []
    for plan, state in steps:
        info = TaskInfo(ctx.route_label, plan.tags.async_name or "", "background",
                        plan.location)
        parallel = plan.tags.async_name is not None
        after = None if parallel else previous
        child = ctx.fork()
        if ctx.tracer is not None:
            child.tracer = ctx.tracer.task_forked("background", plan)
        task = PROCESS_TASKS.start(run_step(plan, state, env, child, info, after), info)
        started.append(task)
        if not parallel:
            previous = task
    steps.clear()
    return started


async def run_step(plan: StepPlan, state: Any, env: Env, ctx: RequestContext, info: TaskInfo,
                   after: asyncio.Task[Any] | None) -> Any:
    if after is not None:  # declaration order: the previous plain step ends first
        await asyncio.wait([after])
    held = await take_slots((PROCESS_TASKS.background_slots(),), 0)
    lifetime = PROCESS_TASKS.limits.background_lifetime_ms
    value = None  # stays None when the step is cancelled (shutdown)
    try:
        async with asyncio.timeout(lifetime / 1000):
            value, attempts = await _attempts(plan, state, env, ctx)
    except TimeoutError:
        value = {"error": f"cut at its background lifetime of {lifetime} ms", "type": "timeout"}
        attempts = 0  # unknown: the cut may fall in any attempt or pause
    finally:
        held.release()
        if ctx.tracer is not None:
            ctx.tracer.task_ended(value)
    if is_failure(value):
        await failed_step(plan, state, env, ctx, info, value, attempts)
    end_request(ctx, env, 500 if is_failure(value) else 200)  # tasks the step started
    return value


async def _attempts(plan: StepPlan, state: Any, env: Env, ctx: RequestContext,
                    ) -> tuple[Any, int]:
    tags = plan.tags
    return await retrying(lambda: bounded(run_task_step(plan, state, env, ctx),
                                          tags.timeout_ms, plan.name, plan.location,
                                          guard_grace(plan)),
                          tags.retry or 0)


async def failed_step(plan: StepPlan, state: Any, env: Env, ctx: RequestContext, info: TaskInfo,
                  value: Any, attempts: int) -> None:
    span = plan.step.span
    problem = failure_text(value)
    outcome = "timeout" if _kind(value) == "timeout" else "error"
    PROCESS_TASKS.mark_current(outcome)
    tried = f" after {attempts} attempt(s)" if attempts else ""
    log.error("%s:%d:%d: %s failed%s: %s", span.source.name, span.line, span.column,
              info.label, tried, problem)
    handler, body = plan.on_error, plan.on_error_body
    if handler is None or body is None:
        return
    report = {"error": problem, "step": plan.name, "location": span.label,
              "attempts": attempts, "input": state}
    if ctx.call_log is not None:  # the test runner's `call pipeline` assertions
        ctx.call_log.setdefault(f"pipeline.{handler.name}", []).append(report)
    try:
        outcome_state = (await run_body(body, report, env, ctx)).state
    except Exception as exc:  # the handler is user code: its failure is logged, not raised
        log.error("%s: @onError(%s) failed: %s", span.label, handler.name, exc)
        return
    if error_type(outcome_state) is not None:
        log.error("%s: @onError(%s) ended with %s", span.label, handler.name,
                  failure_text(outcome_state))


def _kind(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("type") == "timeout":
        return "timeout"
    return error_type(value)


def failure_text(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return str(value["error"])
    kind = error_type(value)
    return f"{kind}: {value['errors'][0].get('message', '')}" if kind else "failed"
