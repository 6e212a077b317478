"""`@hedge(n, ms)`: hedged calls, the "tail at scale" technique (issue 25, spec/tasks.md §1).

The step's call is sent once; when no answer came within `ms`, an identical copy is sent,
and so on up to `n` copies in flight. The first success is the step's result and the
copies still running are cancelled (their connections are dropped). A copy that fails
starts the next copy at once rather than after the delay; when every copy failed, the
last failure is the result, with `copies` (how many were sent) in its first error.

The seam is `hedge_method(state, prepared, call) -> str` on a middleware: the HTTP method
the call would send. Only middleware that define it can be hedged (`fetch` today; the remote
`graphql` step can define it the same way). A non-idempotent method (POST, PATCH, …) is
refused unless the step says `@hedge(n, ms, idempotent)`; `webpipe check` catches the
literal cases at load. Each copy is a task owned by `PROCESS_TASKS` (kind `hedge`), so the
shutdown drain sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from webpipe.errors import StepError
from webpipe.executor.process_tasks import PROCESS_TASKS, TaskInfo
from webpipe.executor.retry import is_failure
from webpipe.metrics import METRICS
from webpipe.middleware.base import StepCall, StepResult

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.plan import StepPlan

# RFC 9110 §9.2.2: methods whose repetition has the same effect as one request
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def refusal(plan: StepPlan, state: Any, call: StepCall) -> str | None:
    """Why this call must not be hedged, or None."""
    mw = plan.middleware
    if mw is None or not mw.hedgeable:
        return f"@hedge cannot hedge a {plan.name} step (only fetch can be hedged)"
    method = str(mw.hedge_method(state, plan.prepared, call))
    if method not in IDEMPOTENT and not plan.tags.hedge_unsafe:
        return (f"@hedge would send a {method} request up to "
                f"{plan.tags.hedge[0] if plan.tags.hedge else 1} times; {method} is not "
                "idempotent (write @hedge(n, ms, idempotent) if repeating it is safe)")
    return None


async def hedged(plan: StepPlan, state: Any, call: StepCall, ctx: RequestContext,
                 once: Callable[[], Coroutine[Any, Any, StepResult]]) -> StepResult:
    """Run `once` as `@hedge(n, ms)` says: the first success, the others cancelled."""
    assert plan.tags.hedge is not None
    why = refusal(plan, state, call)
    if why is not None:
        raise StepError(why)
    copies, delay_ms = plan.tags.hedge
    info = TaskInfo(ctx.route_label, "", "hedge", plan.location)
    result, winner, sent = await _race(copies, delay_ms / 1000, info, once)
    METRICS.hedge(ctx.route_label, winner, sent - 1)
    if winner != "none":
        return result
    return StepResult(_with_copies(result.value, sent), result.content_type,
                      status=result.status)


async def _race(copies: int, delay_s: float, info: TaskInfo,
                once: Callable[[], Coroutine[Any, Any, StepResult]],
                ) -> tuple[StepResult, str, int]:
    """(the first success, else the last failure; which copy won: first, hedge or none;
    how many copies were sent)."""
    loop = asyncio.get_running_loop()
    order: dict[asyncio.Task[Any], int] = {}
    pending: set[asyncio.Task[Any]] = set()
    last: StepResult | None = None
    next_at = loop.time()
    try:
        while len(order) < copies or pending:
            if len(order) < copies and (not pending or loop.time() >= next_at):
                task = PROCESS_TASKS.start(once(), info)
                order[task] = len(order)
                pending.add(task)
                next_at = loop.time() + delay_s
            wait = max(0.0, next_at - loop.time()) if len(order) < copies else None
            done, pending = await asyncio.wait(pending, timeout=wait,
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=order.__getitem__):
                result: StepResult = task.result()
                if not is_failure(result.value):
                    return result, "first" if order[task] == 0 else "hedge", len(order)
                last = result
                next_at = loop.time()  # a failed copy: the next one need not wait
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    assert last is not None
    return last, "none", len(order)


def _with_copies(value: Any, copies: int) -> Any:
    errors = value.get("errors") if isinstance(value, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return {**value, "errors": [{**errors[0], "copies": copies}, *errors[1:]]}
    return value
