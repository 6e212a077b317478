"""`@retry(n)` and `@timeout(ms)` for any step, the way a production client retries.

A failed attempt (an error envelope, or a task's `{"error": …}`) is tried again up to `n`
more times. The pause before retry k is drawn uniformly from 0 to
`min(retryMaxMs, retryBaseMs * 2^(k-1))` (exponential backoff with full jitter); a `fetch`
answer of 429 or 503 with `Retry-After` waits what the server asked, capped at `retryMaxMs`.
The last failure records how many attempts were made (`attempts`). `@timeout(ms)` bounds
each attempt of a synchronous or background step; an expired attempt is a `timeout`
envelope and counts as a failure.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from webpipe.executor.process_tasks import PROCESS_TASKS
from webpipe.executor.state import envelope, error_type

if TYPE_CHECKING:
    from webpipe.executor.plan import StepPlan


def is_failure(value: Any) -> bool:
    """An error envelope, or the `{"error": …}` value of a failed task."""
    return (isinstance(value, dict) and "error" in value) or error_type(value) is not None


def backoff_s(retry: int) -> float:
    """The pause before retry number `retry` (1-based): full jitter under the cap."""
    limits = PROCESS_TASKS.limits
    ceiling = min(limits.retry_max_ms, limits.retry_base_ms * 2 ** (retry - 1))
    return random.uniform(0, ceiling / 1000)


def retry_after_s(value: Any) -> float | None:
    """What a 429/503 answer asked for (`retryAfter` in its envelope), capped."""
    if not isinstance(value, dict):
        return None
    errors = value.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    wait = first.get("retryAfter") if isinstance(first, dict) else None
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait >= 0:
        return min(float(wait), PROCESS_TASKS.limits.retry_max_ms / 1000)
    return None


def with_attempts(value: Any, attempts: int) -> Any:
    """The failure with the number of attempts made recorded in it."""
    if isinstance(value, dict) and isinstance(value.get("errors"), list) and value["errors"] \
            and isinstance(value["errors"][0], dict):
        return {**value, "errors": [{**value["errors"][0], "attempts": attempts},
                                    *value["errors"][1:]]}
    if isinstance(value, dict) and "error" in value:
        return {**value, "attempts": attempts}
    return value


async def retrying(attempt: Callable[[], Awaitable[Any]], retries: int,
                   value_of: Callable[[Any], Any] = lambda v: v) -> tuple[Any, int]:
    """Run `attempt` until it succeeds or `retries` more tries failed; (its last result,
    attempts). `value_of` gives the step value of a result (a `StepResult`'s `.value`)."""
    value = await attempt()
    tries = 1
    while tries <= retries and is_failure(value_of(value)):
        wait = retry_after_s(value_of(value))
        await asyncio.sleep(backoff_s(tries) if wait is None else wait)
        value = await attempt()
        tries += 1
    return value, tries


def timeout_envelope(ms: int, step: str, location: str) -> dict[str, Any]:
    return envelope("timeout", f"step timed out after {ms} ms", step, location)


# how much longer the guard waits for a middleware that bounds its run by `@timeout` itself
# (`Middleware.times_itself`): its own error (graphql's `timeoutError`) is then reported,
# not a race between two timers due at the same moment
SELF_TIMED_GRACE_MS = 50


def guard_grace(plan: StepPlan) -> int:
    """The extra time the executor's `@timeout` guard gives `plan`'s step."""
    mw = plan.middleware
    return SELF_TIMED_GRACE_MS if mw is not None and mw.times_itself else 0


async def bounded(work: Awaitable[Any], ms: int | None, step: str, location: str,
                  grace_ms: int = 0) -> Any:
    """`work` within `ms` (None: unbounded) plus `grace_ms`; an expired attempt is a
    `timeout` envelope."""
    if ms is None:
        return await work
    try:
        async with asyncio.timeout((ms + grace_ms) / 1000):
            return await work
    except TimeoutError:
        return timeout_envelope(ms, step, location)
