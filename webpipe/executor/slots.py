"""Task slots under the caps, and the rule that keeps nested fork/join free of deadlock.

A task takes its slots (the request's `maxPerRequest` semaphore, then the process's
`maxGlobal` one) when it starts running, not when it is spawned, so spawning never blocks
the spawner. A task that waits in `join` for its own children gives its slots back for the
wait and takes them again before it continues (`given_back()`): a parent can then never hold
the slots its children need, whatever the nesting. The wait for a slot runs inside the
task's deadline, so it counts against the task's `@timeout` (or lifetime) and the join's;
`maxWaitMs` bounds it separately and turns an over-long wait into `CapacityError`.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


class CapacityError(Exception):
    """No slot became free within `maxWaitMs`."""


@dataclass(eq=False)
class Held:
    """The slots one running task holds (a subset of `wanted` while it waits in join)."""

    wanted: tuple[asyncio.Semaphore, ...]
    holding: list[asyncio.Semaphore] = field(default_factory=list)

    def release(self) -> None:
        while self.holding:
            self.holding.pop().release()

    async def take(self, max_wait_ms: int = 0) -> None:
        """Acquire every wanted slot, in order; on failure hold none of them."""
        if not self.wanted:
            return
        try:
            async with asyncio.timeout(max_wait_ms / 1000 if max_wait_ms > 0 else None):
                for sem in self.wanted:
                    await sem.acquire()
                    self.holding.append(sem)
        except TimeoutError:
            self.release()
            raise CapacityError from None
        except BaseException:
            self.release()
            raise


# the slots held by the task running now (each asyncio task has its own context)
HELD: contextvars.ContextVar[Held | None] = contextvars.ContextVar("webpipe_held_slots",
                                                                 default=None)


def task_context() -> contextvars.Context | None:
    """The context a new task starts in: the spawner's, minus the spawner's slots (a task
    never gives back slots it does not hold); None when the spawner holds none (then the
    spawner's as it is: `create_task` copies it)."""
    if HELD.get() is None:
        return None
    context = contextvars.copy_context()
    context.run(HELD.set, None)
    return context


async def take_slots(sems: tuple[asyncio.Semaphore | None, ...], max_wait_ms: int) -> Held:
    """Take the task's slots and record them as held by the current task."""
    held = Held(tuple(s for s in sems if s is not None))
    HELD.set(None)
    await held.take(max_wait_ms)
    HELD.set(held)
    return held


@asynccontextmanager
async def given_back() -> AsyncIterator[None]:
    """While the body waits (a join), the current task's slots are free for others; they
    are taken back when it returns normally (a task that is ending takes none)."""
    held = HELD.get()
    if held is None or not held.holding:
        yield
        return
    held.release()
    yield
    await held.take()
