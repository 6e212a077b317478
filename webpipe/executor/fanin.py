"""First-wins joins (`join: a, b @first`) and the completeness status of a join (issue 25).

`first_join` waits until one listed task succeeds, cancels the others (their upstream calls
are dropped with them) and answers the winner under `.async.<name>` and its name under
`.asyncStatus.winner`; when every task fails (or the join's `@timeout` expires first) the
state becomes an `asyncError` (`timeout`) envelope listing each failure. `status_of` is the
`.asyncStatus` object a collecting join adds (`complete`, `failed`, `timedOut`), and
`note_join` remembers on the request whether every join was complete, for the
`X-Webpipe-Completed` header (`config server { completenessHeader: true }`). The rules are
spec/tasks.md §3.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from webpipe.executor.process_tasks import PROCESS_TASKS
from webpipe.executor.retry import is_failure
from webpipe.executor.state import envelope, error_type, failure_text, timeout_value
from webpipe.middleware.base import StepResult

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.plan import StepPlan

COMPLETED = "joins_complete"  # ctx.extras key: every join of the request was complete
Wanted = list[tuple[str, "asyncio.Task[Any]"]]


def note_join(ctx: RequestContext, complete: bool) -> None:
    ctx.extras[COMPLETED] = ctx.extras.get(COMPLETED, True) and complete


def status_of(results: dict[str, Any]) -> dict[str, Any]:
    """`{complete, failed, timedOut}` of a collecting join's results (names in list order).
    A value that is not an object is neither (one look at each value: this runs per branch)."""
    timed_out: list[str] = []
    failed: list[str] = []
    for name, value in results.items():
        if not isinstance(value, dict):
            continue
        kind = error_type(value)
        if value.get("type") == "timeout" or kind == "timeout":
            timed_out.append(name)
        elif kind is not None or "error" in value:  # `is_failure`
            failed.append(name)
    return {"complete": not failed and not timed_out, "failed": failed,
            "timedOut": timed_out}


def _kind(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("type") == "timeout":
        return "timeout"
    return error_type(value)


def task_value(task: asyncio.Task[Any]) -> Any:
    """A finished task's value (a crash or a cancellation as a failure value)."""
    if task.cancelled():
        return {"error": "cancelled", "type": "cancelled"}
    if task.exception() is not None:
        return {"error": f"Task failed: {task.exception()}"}
    return task.result()


async def first_join(plan: StepPlan, state: Any, wanted: Wanted, ctx: RequestContext,
                     ) -> StepResult:
    """`join: … @first`: the first task to succeed wins; the others are cancelled."""
    winner, failures, late = await _race(wanted, plan.tags.timeout_ms)
    previous = state.get("async") if isinstance(state, dict) else None
    merged = dict(previous) if isinstance(previous, dict) else {}
    note_join(ctx, winner is not None)
    if winner is not None:
        name, value = winner
        merged[name] = value
        status = {"complete": True, "failed": list(failures), "timedOut": [],
                  "winner": name}
        return StepResult({"async": merged, "asyncStatus": status})
    return StepResult(_all_failed(plan, failures, late, merged))


async def _race(wanted: Wanted, deadline_ms: int | None,
                ) -> tuple[tuple[str, Any] | None, dict[str, Any], list[str]]:
    """(winner name and value, failures by name, names the deadline cut)."""
    loop = asyncio.get_running_loop()
    end = None if deadline_ms is None else loop.time() + deadline_ms / 1000
    names = {task: name for name, task in wanted}
    pending = set(names)
    failures: dict[str, Any] = {}
    winner = None
    while pending and winner is None:
        timeout = None if end is None else max(0.0, end - loop.time())
        done, pending = await asyncio.wait(pending, timeout=timeout,
                                           return_when=asyncio.FIRST_COMPLETED)
        if not done:
            break
        for name, task in wanted:  # several may end together: the list order decides
            if task not in done:
                continue
            value = task_value(task)
            if winner is None and not is_failure(value):
                winner = name, value
            elif is_failure(value):
                failures[name] = value
    late = [] if winner is not None else [names[t] for t in pending]
    for task in pending:
        PROCESS_TASKS.mark(task, "cancelled" if winner is not None else "timeout")
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    ordered = {name: failures[name] for name, _ in wanted if name in failures}
    return winner, ordered, [name for name, _ in wanted if name in late]


def _all_failed(plan: StepPlan, failures: dict[str, Any], late: list[str],
                merged: dict[str, Any]) -> dict[str, Any]:
    """No task succeeded: one error per task, the first naming the join's outcome."""
    for name in late:
        failures[name] = timeout_value(plan.tags.timeout_ms or 0)
    if late:
        head = envelope("timeout", f"join deadline of {plan.tags.timeout_ms} ms expired "
                        f"before any task succeeded (still running: {', '.join(late)})",
                        "join", plan.location)
    elif not failures:
        head = envelope("asyncError", "none of the listed tasks was started (a gate skipped "
                        "them): @first needs one success", "join", plan.location)
    else:
        head = envelope("asyncError", f"every task failed ({', '.join(failures)}); "
                        "@first needs one success", "join", plan.location)
    out: dict[str, Any] = {"errors": head["errors"] + [
        {"type": _kind(value) or "asyncError", "task": name,
         "message": failure_text(value), "step": "join", "location": plan.location}
        for name, value in failures.items()]}
    out["errors"][0]["failures"] = list(failures)
    out["async"] = {**merged, **failures}
    return out
