"""`@background` steps: run after the response, in order, with timeout and retry.

Each step runs on the state snapshot from where it stood (concurrency.md, issue: background
work). Output is ignored; failures are logged with the step's `file:line:col` and never
reach the client. `@retry(n)` retries with exponential backoff; `@timeout(ms)` bounds each
attempt.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from webpipe.executor.state import error_type

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env
    from webpipe.executor.plan import StepPlan

log = logging.getLogger("webpipe.background")
BACKOFF_BASE_S = 0.1


async def run_background(steps: list[tuple[StepPlan, Any]], env: Env,
                         ctx: RequestContext) -> None:
    for plan, state in steps:
        await _run_one(plan, state, env, ctx.fork())


async def _run_one(plan: StepPlan, state: Any, env: Env, ctx: RequestContext) -> None:
    from webpipe.executor.steps import run_task_step

    attempts = 1 + (plan.tags.retry or 0)
    limit = plan.tags.timeout_ms / 1000 if plan.tags.timeout_ms is not None else None
    problem = ""
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(BACKOFF_BASE_S * 2 ** (attempt - 1))
        try:
            value = await asyncio.wait_for(run_task_step(plan, state, env, ctx), limit)
        except TimeoutError:
            problem = f"timeout after {plan.tags.timeout_ms} ms"
            continue
        problem = _failure(value)
        if not problem:
            return
    span = plan.step.span
    log.error("%s:%d:%d: background step %s failed after %d attempt(s): %s",
              span.source.name, span.line, span.column, plan.name, attempts, problem)


def _failure(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return str(value["error"])
    kind = error_type(value)
    return f"{kind}: {value['errors'][0].get('message', '')}" if kind else ""
