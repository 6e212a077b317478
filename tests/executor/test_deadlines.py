"""`Deadline` (shared timers) against `asyncio.timeout`: the same scenarios, the same outcome.

Each scenario runs a body under a deadline inside a task, once with `asyncio.timeout` and
once with `Deadline`, on uvloop (where deadlines share a timer) and on the default loop
(one group each), and records what the task saw: the value or the exception that left the
block, the task's pending cancellations after it, and whether a later await is cancelled.
Many concurrent tasks with the same deadline run in one go, so the group's timer is shared
by tasks that finish before it, tasks it cuts and tasks cancelled by someone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop

from webpipe.executor import deadlines
from webpipe.executor.deadlines import Deadline

Body = Callable[[], Awaitable[Any]]


async def under(kind: str, delay: float, body: Body) -> Any:
    """The body under `asyncio.timeout(delay)` or `Deadline(delay)`, or (kinds ending in
    "_at") under `asyncio.timeout_at` or `Deadline(when=)` of the same loop time."""
    when = asyncio.get_running_loop().time() + delay
    if kind == "asyncio":
        async with asyncio.timeout(delay):
            return await body()
    if kind == "asyncio_at":
        async with asyncio.timeout_at(when):
            return await body()
    with Deadline(delay) if kind == "deadline" else Deadline(when=when):
        return await body()


async def observed(kind: str, delay: float, body: Body) -> tuple[Any, ...]:
    """What the task saw: the block's outcome, its cancellations left, a later await."""
    task = asyncio.current_task()
    assert task is not None
    try:
        outcome: tuple[Any, ...] = ("value", await under(kind, delay, body))
    except BaseException as exc:
        outcome = ("raised", type(exc).__name__)
    left = task.cancelling()
    try:
        await asyncio.sleep(0)
        later = "ran"
    except asyncio.CancelledError:
        later = "cancelled"
    return (*outcome, left, later)


async def quick() -> str:
    return "quick"


async def slow() -> str:
    await asyncio.sleep(0.6)
    return "slow"


async def failing() -> str:
    await asyncio.sleep(0)
    raise ValueError("boom")


async def swallowing() -> str:
    try:
        await asyncio.sleep(0.6)
    except asyncio.CancelledError:
        return "swallowed"
    return "not cut"


async def inner_shorter() -> str:
    try:
        async with asyncio.timeout(0.02):  # 80 ms before the outer 100 ms
            await asyncio.sleep(0.6)
    except TimeoutError:
        return "inner cut"
    return "not cut"


async def inner_longer() -> str:
    async with asyncio.timeout(2.0):
        await asyncio.sleep(0.6)
    return "not cut"


async def nested_deadline() -> str:
    with Deadline(0.01):
        await asyncio.sleep(0.6)
    return "not cut"


BODIES: dict[str, Body] = {"quick": quick, "slow": slow, "failing": failing,
                           "swallowing": swallowing, "inner_shorter": inner_shorter,
                           "inner_longer": inner_longer}


async def one(kind: str, body: Body, delay: float, cancel: int | float | None) -> Any:
    """The body in its own task; someone else cancels that task after `cancel` loop
    iterations (an int) or seconds (a float), unless it has ended by then."""
    task = asyncio.get_running_loop().create_task(observed(kind, delay, body))
    if isinstance(cancel, int):
        for _ in range(cancel):
            await asyncio.sleep(0)
        task.cancel()
    elif cancel is not None:
        await asyncio.wait([task], timeout=cancel)
        task.cancel()
    return await task


# Deadlines and cancellations far enough apart that a busy machine cannot reorder them:
# a deadline of 100 ms (the slow bodies take 600 ms) against no cancellation or one at 300
# ms; deadlines due now or already past (they fire in the next iteration) against
# cancellations after 1 or 3 iterations; a deadline of 5 s that only a cancellation beats.
TIMINGS: list[tuple[float, int | float | None]] = [
    (0.1, None), (0.1, 0.3), *((d, c) for d in (0.0, -1.0) for c in (None, 1, 3, 0.3)),
    (5.0, 1), (5.0, 3)]
CASES = [(name, delay, cancel) for name in BODIES for delay, cancel in TIMINGS]


async def run_all(kind: str) -> dict[str, Any]:
    """Every case concurrently (shared deadlines), then each alone: outcomes by case."""
    together = await asyncio.gather(*(one(kind, BODIES[name], delay, cancel)
                                      for name, delay, cancel in CASES))
    alone = [await one(kind, BODIES[name], delay, cancel) for name, delay, cancel in CASES]
    labels = [f"{name} delay={delay} cancel={cancel}" for name, delay, cancel in CASES]
    return {**{f"together {label}": o for label, o in zip(labels, together, strict=True)},
            **{f"alone {label}": o for label, o in zip(labels, alone, strict=True)}}


@pytest.mark.parametrize("runner", [uvloop.run, asyncio.run], ids=["uvloop", "asyncio"])
@pytest.mark.parametrize(("theirs", "ours"), [("asyncio", "deadline"),
                                              ("asyncio_at", "deadline_at")])
def test_deadline_does_what_asyncio_timeout_does(runner: Callable[[Any], Any], theirs: str,
                                                 ours: str) -> None:
    expected = runner(run_all(theirs))
    got = runner(run_all(ours))
    assert got == expected
    # the cases cover each outcome: a value, a timeout, a crash, someone else's cancel
    assert {tuple(outcome[:2]) for outcome in got.values()} >= {
        ("value", "quick"), ("raised", "TimeoutError"), ("raised", "ValueError"),
        ("raised", "CancelledError"), ("value", "swallowed"), ("value", "inner cut")}


def test_deadlines_of_one_millisecond_share_one_timer_and_close_it() -> None:
    async def main() -> tuple[int, int, bool, bool]:
        loop = asyncio.get_running_loop()
        groups: list[Any] = []

        async def branch() -> None:
            with Deadline(30) as deadline:
                groups.append(deadline.group)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(loop.create_task(branch()) for _ in range(200)))
        await asyncio.sleep(0)  # the emptied groups close in the next iteration
        shared = len(set(groups)) < len(groups) // 4  # uvloop's clock counts whole ms
        return (len(groups), shared, any(g in deadlines._GROUPS.values() for g in groups),
                all(g.handle.cancelled() for g in groups))

    assert uvloop.run(main()) == (200, True, False, True)


def test_a_nested_deadline_in_the_same_task_cuts_only_its_own_block() -> None:
    async def main() -> Any:
        with Deadline(5):
            return await observed("deadline", 0.5, nested_deadline)

    assert uvloop.run(main()) == ("raised", "TimeoutError", 0, "ran")
