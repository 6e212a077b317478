"""Deadlines that share one timer: `asyncio.timeout`'s semantics for many tasks at once.

An `@async` task runs within a deadline (its `@timeout`, else `lifetimeMs`). With
`asyncio.timeout` each task arms a timer of its own, ~4 µs per task under uvloop (the
timeout object, a `TimerHandle`, arming and cancelling it): a fan-out of 200 branches paid
~0.8 ms for timers that almost never fire. The branches of one fan-out start together, and
uvloop's clock counts whole milliseconds, so the deadlines of the branches that start
within one millisecond are the same instant: `Deadline` puts every deadline that ends at
the same loop time in one group with one timer, armed by the first and cancelled (in the
next loop iteration) when the last one has left. What a task sees is what `asyncio.timeout`
gives it, step by step: the timer cancels each member still inside; on leaving, a member
that was cancelled by the timer takes that cancellation back (`Task.uncancel`) and raises
`TimeoutError` when no other cancellation is pending, else the `CancelledError` goes on.
`fetch` bounds each exchange the same way (a timeout of 5 s or more, such as its 10 s
default, ends on a whole second, so a fan-out's calls share one timer on any loop).
`tests/executor/test_deadlines.py` runs the same scenarios under both and compares what
happens. (On a loop whose clock differs at every call, such as the default asyncio loop,
each `Deadline(seconds)` gets its own group: the cost of `asyncio.timeout`.)
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any


class _Group:
    """The deadlines that end at one loop time, and their one timer."""

    __slots__ = ("closing", "fired", "handle", "loop", "members", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self.loop = loop
        self.when = when
        # in entry order (a dict), so the timer cancels them in the order they entered, as
        # their own timers of equal time would fire
        self.members: dict[Deadline, None] = {}
        self.fired = False
        self.closing = False
        # a deadline already past fires in the next iteration, as asyncio.timeout's does
        self.handle: asyncio.Handle = loop.call_soon(self.fire) if when <= loop.time() \
            else loop.call_at(when, self.fire)

    def fire(self) -> None:
        self.fired = True
        if _GROUPS.get(self.when) is self:
            del _GROUPS[self.when]
        for member in self.members:
            member.expiring = True
            member.task.cancel()

    def leave(self, member: Deadline) -> None:
        self.members.pop(member, None)
        if not self.members and not self.fired and not self.closing:
            # not at once: the fan-out's next branch may take the same deadline in this
            # iteration (a branch that ends without waiting leaves before the next starts)
            self.closing = True
            self.loop.call_soon(self.close)

    def close(self) -> None:
        self.closing = False
        if self.members or self.fired:
            return
        self.handle.cancel()
        if _GROUPS.get(self.when) is self:
            del _GROUPS[self.when]


# the open groups by loop time; a group of another loop (another thread's) found here is
# replaced, never joined (its members keep it alive through their own reference)
_GROUPS: dict[float, _Group] = {}


class Deadline:
    """`with Deadline(seconds):` inside a task: `asyncio.timeout(seconds)` on a shared
    timer (module docstring); `Deadline(when=t)`: `asyncio.timeout_at(t)`. Raises
    `TimeoutError` when the deadline cut the body."""

    __slots__ = ("base", "delay", "expiring", "group", "task", "when")

    def __init__(self, delay: float = 0.0, *, when: float | None = None) -> None:
        self.delay = delay
        self.when = when  # a loop time instead: `asyncio.timeout_at(when)`
        self.expiring = False

    def __enter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Deadline is used inside a task")
        loop = task.get_loop()
        when = loop.time() + self.delay if self.when is None else self.when
        group = _GROUPS.get(when)
        if group is None or group.loop is not loop or group.fired:
            group = _GROUPS[when] = _Group(loop, when)
        self.task = task
        self.base = task.cancelling()
        self.group = group
        group.members[self] = None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Any:
        self.group.leave(self)
        # the timer's cancellation is taken back; with no other one pending, it was ours
        if self.expiring and self.task.uncancel() <= self.base \
                and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
        return None
