"""`@async` tasks, `join`, and `@background` steps of one request.

`TaskRegistry` is per request: `@async(name)` spawns the step on a snapshot of the state
and stores the handle under its name; `join` awaits the listed names in order and merges
their values under `.async`. Spawning waits for a slot under the per-request and
process-wide caps (back-pressure); every task is owned by `process_tasks.PROCESS_TASKS`, which
counts outcomes, logs failures and drains or cancels tasks at shutdown. A task's lifetime is
bounded by its `@timeout(ms)` or, when it has none, by `config async { lifetimeMs }`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from webpipe.errors import HardError
from webpipe.executor.process_tasks import PROCESS_TASKS
from webpipe.executor.state import envelope
from webpipe.middleware.base import StepResult

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env
    from webpipe.executor.plan import StepPlan

log = logging.getLogger("webpipe.tasks")


def timeout_value(ms: int) -> dict[str, str]:
    return {"error": f"timeout after {ms} ms", "type": "timeout"}


@dataclass(eq=False)
class TaskRegistry:
    """The `@async` handles and deferred `@background` steps of one request."""

    handles: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    background: list[tuple[StepPlan, Any]] = field(default_factory=list)
    slots: asyncio.Semaphore | None = None

    async def defer_or_spawn(self, plan: StepPlan, state: Any, env: Env,
                             ctx: RequestContext) -> None:
        if plan.tags.background and plan.tags.async_name is None:
            self.background.append((plan, state))
            return
        name = plan.tags.async_name or "task"
        await self._acquire()
        coro = self._owned(plan, state, env, ctx.fork())
        self.handles[name] = PROCESS_TASKS.start(coro, _task_name(plan, name, ctx))

    async def _acquire(self) -> None:
        cap = PROCESS_TASKS.limits.max_per_request
        if cap > 0:
            if self.slots is None:
                self.slots = asyncio.Semaphore(cap)
            await self.slots.acquire()
        await PROCESS_TASKS.acquire()

    async def _owned(self, plan: StepPlan, state: Any, env: Env, ctx: RequestContext) -> Any:
        """The task's body: the step within its deadline, then the slots given back."""
        try:
            return await _bounded(plan, state, env, ctx)
        finally:
            PROCESS_TASKS.release()
            if self.slots is not None:
                self.slots.release()

    async def join(self, plan: StepPlan, state: Any, env: Env, ctx: RequestContext,
                   ) -> StepResult:
        if plan.missing:
            raise HardError(plan.missing, span=plan.step.span)
        wanted = [(name, self.handles.pop(name)) for name in plan.join_names
                  if name in self.handles]
        results = await _await_all(wanted, plan)
        failed = _first_failure(results) if plan.tags.failfast else None
        if failed is not None:
            error = envelope("asyncError", f"task {failed!r} failed: "
                             f"{_failure_text(results[failed])}", "join", plan.location)
            error["errors"][0]["task"] = failed
            return StepResult(error)
        previous = state.get("async") if isinstance(state, dict) else None
        merged = {**previous, **results} if isinstance(previous, dict) else results
        return StepResult({"async": merged})


def _task_name(plan: StepPlan, name: str, ctx: RequestContext) -> str:
    request = ctx.request if isinstance(ctx.request, dict) else {}
    route = f"{request.get('method', '')} {request.get('path', '')}".strip() or "script"
    return f"{route} @async({name}) at {plan.location}"


async def _bounded(plan: StepPlan, state: Any, env: Env, ctx: RequestContext) -> Any:
    from webpipe.executor.steps import run_task_step

    limit_ms = plan.tags.timeout_ms
    if limit_ms is None:
        limit_ms = PROCESS_TASKS.limits.lifetime_ms
    try:
        # asyncio.timeout rather than wait_for, which would run the step in a second task
        async with asyncio.timeout(limit_ms / 1000):
            return await run_task_step(plan, state, env, ctx)
    except TimeoutError:
        return timeout_value(limit_ms)


async def _await_all(wanted: list[tuple[str, asyncio.Task[Any]]], plan: StepPlan,
                     ) -> dict[str, Any]:
    """Await tasks in list order within the join's deadline; failfast cancels the rest."""
    tasks = [task for _, task in wanted]
    deadline = plan.tags.timeout_ms
    if plan.tags.failfast:
        await _wait_failfast(tasks, deadline)
    elif tasks:
        await asyncio.wait(tasks, timeout=deadline / 1000 if deadline is not None else None)
    results: dict[str, Any] = {}
    for name, task in wanted:
        if not task.done():
            task.cancel()
            results[name] = timeout_value(deadline or 0)
        elif task.cancelled():
            results[name] = {"error": "cancelled", "type": "cancelled"}
        elif task.exception() is not None:
            results[name] = {"error": f"Task failed: {task.exception()}"}
        else:
            results[name] = task.result()
    return results


async def _wait_failfast(tasks: list[asyncio.Task[Any]], deadline: int | None) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline / 1000 if deadline is not None else None
    pending = set(tasks)
    while pending:
        timeout = None if end is None else max(0.0, end - loop.time())
        done, pending = await asyncio.wait(pending, timeout=timeout,
                                           return_when=asyncio.FIRST_COMPLETED)
        if not done or any(_is_failure(t.result()) for t in done
                           if not t.cancelled() and t.exception() is None):
            break
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def _is_failure(value: Any) -> bool:
    from webpipe.executor.state import error_type

    return (isinstance(value, dict) and "error" in value) or error_type(value) is not None


def _first_failure(results: dict[str, Any]) -> str | None:
    return next((name for name, value in results.items() if _is_failure(value)), None)


def _failure_text(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return str(value["error"])
    errors = value.get("errors") if isinstance(value, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message", errors[0].get("type")))
    return "failed"
