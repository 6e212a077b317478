"""`@async` tasks and `join` of one request (the rules are spec/tasks.md).

`TaskRegistry` is per request: `@async(name)` spawns the step on a snapshot of the state and
stores the handle under its name; `join` awaits the listed names and merges their values
under `.async`. Spawning never blocks: the task takes its slots when it starts and gives
them back while it waits in a `join` of its own (`slots`), so caps cannot deadlock. Every
task is owned by `process_tasks.PROCESS_TASKS`. A task's deadline is its `@timeout(ms)`,
else `config async { lifetimeMs }`, and includes its wait for a slot. `@failfast` reports
the task that failed first, whatever its place in the list, keeps the values of tasks that
had finished, and reports an expired join deadline as `timeout`. Failures nobody joins and
lifetime cuts are logged with route, task name and `file:line`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from webpipe.errors import HardError
from webpipe.executor.background import end_request
from webpipe.executor.deadlines import Deadline
from webpipe.executor.fanin import first_join, note_join, status_of
from webpipe.executor.pipeline import run_task_step
from webpipe.executor.process_tasks import PROCESS_TASKS, TaskInfo
from webpipe.executor.retry import guard_grace, is_failure, retrying, with_attempts
from webpipe.executor.slots import CapacityError, given_back, take_slots
from webpipe.executor.state import envelope, error_type, failure_text, timeout_value
from webpipe.middleware.base import StepResult

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env
    from webpipe.executor.plan import StepPlan

log = logging.getLogger("webpipe.tasks")
CANCELLED = {"error": "cancelled", "type": "cancelled"}


@dataclass(eq=False)
class TaskRegistry:
    """The `@async` handles and deferred `@background` steps of one request (or task)."""

    handles: dict[str, tuple[asyncio.Task[Any], TaskInfo]] = field(default_factory=dict)
    background: list[tuple[StepPlan, Any]] = field(default_factory=list)
    # the request's maxPerRequest semaphore, shared with the tasks' own registries
    slots: asyncio.Semaphore | None = None
    closed: bool = False

    def request_slots(self) -> asyncio.Semaphore | None:
        cap = PROCESS_TASKS.limits.max_per_request
        if cap > 0 and self.slots is None:
            self.slots = asyncio.Semaphore(cap)
        return self.slots

    def defer_or_spawn(self, plan: StepPlan, state: Any, env: Env, ctx: RequestContext,
                       ) -> None:
        if plan.tags.background:
            self.background.append((plan, state))
            return
        child = ctx.fork()
        slots = self.request_slots()
        if slots is not None:  # else the task's own tasks make their registry when needed
            child.adopt(TaskRegistry(slots=slots))
        if ctx.tracer is not None:
            child.tracer = ctx.tracer.task_forked("async", plan)
        info = async_info(plan, ctx.route_label)
        task = PROCESS_TASKS.start(run_task(plan, state, env, child, info), info)
        replaced = self.handles.get(info.name)
        if replaced is not None:
            watch_unjoined(*replaced, "replaced by a later @async of the same name")
        self.handles[info.name] = task, info

    async def join(self, plan: StepPlan, state: Any, env: Env, ctx: RequestContext,
                   ) -> StepResult:
        if plan.missing:
            raise HardError(plan.missing, span=plan.step.span)
        wanted = [(name, self.handles.pop(name)[0]) for name in plan.join_names
                  if name in self.handles]
        try:
            if plan.tags.first:
                async with given_back():
                    return await first_join(plan, state, wanted, ctx)
            async with given_back():
                results, failed, late = await _await_all(wanted, plan)
        finally:
            if ctx.tracer is not None:
                ctx.tracer.joined(tuple(name for name, _ in wanted))
        previous = state.get("async") if isinstance(state, dict) else None
        merged = {**previous, **results} if isinstance(previous, dict) else results
        status = status_of(results)
        note_join(ctx, status["complete"])
        if failed is not None or late is not None:
            return StepResult(_failfast_envelope(plan, results, failed, late, merged))
        # a rejected task's value is a failure: a complete join has none to look for
        rejected = None if status["complete"] else next(
            (n for n, v in results.items() if error_type(v) == "capacityError"), None)
        if rejected is not None:  # the task never ran: the join cannot give its result
            return StepResult(_failfast_envelope(plan, results, rejected, None, merged))
        return StepResult({"async": merged, "asyncStatus": status})

    def close(self) -> None:
        """The request (or task) ended: tasks nobody joined have their failures logged."""
        if self.closed:
            return
        self.closed = True
        for task, info in self.handles.values():
            watch_unjoined(task, info, "never joined")
        self.handles.clear()


def async_info(plan: StepPlan, route: str) -> TaskInfo:
    """The labels of `plan`'s tasks spawned from `route`, made once (at the first spawn)."""
    info = plan.task_infos.get(route)
    if info is None:
        info = plan.task_infos[route] = TaskInfo(route, plan.tags.async_name or "task",
                                                 "async", plan.location)
    return info


def watch_unjoined(task: asyncio.Task[Any], info: TaskInfo, why: str) -> None:
    """Log the task's failure when it ends (or now, when it has ended)."""
    def report(done: asyncio.Task[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # cancellation is logged by whoever cancels; crashes by the owner
        value = done.result()
        if is_failure(value):
            log.error("%s failed (%s): %s", info.label, why, failure_text(value))

    if task.done():
        report(task)
    else:
        task.add_done_callback(report)


async def run_task(plan: StepPlan, state: Any, env: Env, ctx: RequestContext,
                   info: TaskInfo) -> Any:
    """The body of an `@async` task: slots, then the step (with its retries), all within
    the task's deadline; then the task's own `@background` steps and un-joined tasks."""
    limits = PROCESS_TASKS.limits
    limit_ms = plan.tags.timeout_ms if plan.tags.timeout_ms is not None else limits.lifetime_ms
    tasks = ctx.existing_tasks()
    held = None
    value = None  # stays None when the task is cancelled (a join's deadline, shutdown)
    # a step bounding itself by its `@timeout` reports its own error (`retry.guard_grace`)
    grace_ms = guard_grace(plan) if plan.tags.timeout_ms is not None else 0
    try:
        with Deadline((limit_ms + grace_ms) / 1000):
            own = tasks.slots if tasks is not None else None
            slots = (own, PROCESS_TASKS.global_slots())
            if slots != (None, None):  # no caps: no slots to take (HELD stays None)
                held = await take_slots(slots, limits.max_wait_ms)
            value = await (_attempts(plan, state, env, ctx) if plan.tags.retry else
                           run_task_step(plan, state, env, ctx))
    except TimeoutError:
        value = timeout_value(limit_ms)
        if plan.tags.timeout_ms is None:
            log.warning("%s cut at its lifetime of %d ms", info.label, limit_ms)
    except CapacityError:
        value = capacity_envelope(info, limits.max_wait_ms)
    finally:
        if held is not None:
            held.release()
        if ctx.tracer is not None:  # a cancelled task: why it was cancelled (a join deadline)
            ctx.tracer.task_ended(value if value is not None else
                                  {"error": "cancelled",
                                   "type": PROCESS_TASKS.current_outcome() or "cancelled"})
    if ctx.tracer is not None or ctx.existing_tasks() is not None:  # else nothing to end
        end_request(ctx, env, 500 if is_failure(value) else 200)  # the task's end: its answer
    return value


async def _attempts(plan: StepPlan, state: Any, env: Env, ctx: RequestContext) -> Any:
    """The step with its `@retry(n)` retries (a task without retries runs the step itself)."""
    retries = plan.tags.retry or 0
    value, tries = await retrying(lambda: run_task_step(plan, state, env, ctx), retries)
    return with_attempts(value, tries) if retries and is_failure(value) else value


def capacity_envelope(info: TaskInfo, max_wait_ms: int) -> dict[str, Any]:
    PROCESS_TASKS.mark_current("rejected")
    out = envelope("capacityError", f"no task slot became free within {max_wait_ms} ms "
                   f"(config async maxWaitMs)", "async", info.location)
    out["errors"][0]["task"] = info.name
    return out


async def _await_all(wanted: list[tuple[str, asyncio.Task[Any]]], plan: StepPlan,
                     ) -> tuple[dict[str, Any], str | None, str | None]:
    """Await the tasks within the join's deadline: their values, the task that failed
    first (`@failfast`), and the first one the deadline cut (`@failfast`)."""
    tasks = [task for _, task in wanted]
    deadline = plan.tags.timeout_ms
    failed = None
    if plan.tags.failfast:
        failed = await _wait_failfast(wanted, deadline)
    elif tasks:
        await asyncio.wait(tasks, timeout=deadline / 1000 if deadline is not None else None)
    results: dict[str, Any] = {}
    stopped: list[asyncio.Task[Any]] = []
    late = None
    for name, task in wanted:
        if not task.done():
            stopped.append(task)
            if failed is not None:  # a sibling failed first: this one is merely cancelled
                PROCESS_TASKS.mark(task, "cancelled")
                continue
            PROCESS_TASKS.mark(task, "timeout")
            late = late or name
            results[name] = timeout_value(deadline or 0)
        elif task.cancelled():
            results[name] = dict(CANCELLED)
        elif task.exception() is not None:
            results[name] = {"error": f"Task failed: {task.exception()}"}
        else:
            results[name] = task.result()
    for task in stopped:
        task.cancel()
    if stopped:
        await asyncio.gather(*stopped, return_exceptions=True)
    return results, failed, late if plan.tags.failfast else None


async def _wait_failfast(wanted: list[tuple[str, asyncio.Task[Any]]], deadline: int | None,
                         ) -> str | None:
    """Wait until every task ended, one failed (its name), or the deadline passed."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline / 1000 if deadline is not None else None
    pending = {task for _, task in wanted}
    while pending:
        timeout = None if end is None else max(0.0, end - loop.time())
        done, pending = await asyncio.wait(pending, timeout=timeout,
                                           return_when=asyncio.FIRST_COMPLETED)
        if not done:
            return None
        for name, task in wanted:  # several may end together: the list order decides
            if task in done and _task_failed(task):
                return name
    return None


def _task_failed(task: asyncio.Task[Any]) -> bool:
    if task.cancelled():
        return False  # cancelled by someone else: not this task's failure
    return task.exception() is not None or is_failure(task.result())


def _failfast_envelope(plan: StepPlan, results: dict[str, Any], failed: str | None,
                       late: str | None, merged: dict[str, Any]) -> dict[str, Any]:
    """The join's error envelope; tasks that had finished keep their values in `.async`."""
    if failed is not None:
        value = results[failed]
        cause = error_type(value) or value.get("type") if isinstance(value, dict) else None
        kind = cause if cause in ("timeout", "capacityError") else "asyncError"
        out = envelope(kind, f"task {failed!r} failed: {failure_text(value)}", "join",
                       plan.location)
        out["errors"][0]["task"] = failed
    else:
        assert late is not None
        out = envelope("timeout", f"join deadline of {plan.tags.timeout_ms} ms expired "
                       f"waiting for {late!r}", "join", plan.location)
        out["errors"][0]["task"] = late
    out["async"] = merged
    return out
