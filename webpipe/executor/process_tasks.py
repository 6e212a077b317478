"""The process-wide task owner: every task webpipe starts is created and tracked here.

`ProcessTasks.start()` is the only `create_task` in webpipe. It records each task's outcome
(ok, error, timeout, cancelled) and duration in the metrics, logs failures, enforces the
process-wide cap with back-pressure (`acquire()` waits, work is never dropped), and
`drain()` waits for tracked tasks at shutdown, cancelling and logging what is left.
Limits come from `config async { }` (spec/decisions.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from webpipe.config import config_int
from webpipe.metrics import METRICS

log = logging.getLogger("webpipe.tasks")


@dataclass(frozen=True)
class TaskLimits:
    """`config async { maxPerRequest, maxGlobal, lifetimeMs, shutdownGraceMs }`."""

    max_per_request: int = 0  # 0 = no cap
    max_global: int = 0
    lifetime_ms: int = 30_000
    shutdown_grace_ms: int = 10_000

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> TaskLimits:
        d = cls()
        return cls(config_int(block, "maxPerRequest", d.max_per_request),
                   config_int(block, "maxGlobal", d.max_global),
                   config_int(block, "lifetimeMs", d.lifetime_ms),
                   config_int(block, "shutdownGraceMs", d.shutdown_grace_ms))


class ProcessTasks:
    """The owner of every task the process starts (see module docstring)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.limits = TaskLimits()
        self._global: asyncio.Semaphore | None = None

    def configure(self, limits: TaskLimits) -> None:
        self.limits = limits
        self._global = None

    @property
    def pending(self) -> int:
        return len(self.tasks)

    async def acquire(self) -> None:
        """Wait for a free slot under the process-wide cap (no-op without a cap)."""
        if self.limits.max_global <= 0:
            return
        if self._global is None:
            self._global = asyncio.Semaphore(self.limits.max_global)
        await self._global.acquire()

    def release(self) -> None:
        if self._global is not None:
            self._global.release()

    def start(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start and own a task; its outcome is counted and a failure logged when it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        started = time.monotonic()
        task.add_done_callback(lambda t: self._finished(t, started))
        return task

    def _finished(self, task: asyncio.Task[Any], started: float) -> None:
        self.tasks.discard(task)
        seconds = time.monotonic() - started
        if task.cancelled():
            METRICS.task("cancelled", seconds)
        elif task.exception() is not None:
            METRICS.task("error", seconds)
            log.error("task %s failed: %s", task.get_name(), task.exception())
        else:
            METRICS.task(classify(task.result()), seconds)

    async def drain(self, grace_s: float | None = None) -> list[str]:
        """Wait up to the grace period for tracked tasks, cancel the rest; their names."""
        grace = self.limits.shutdown_grace_ms / 1000 if grace_s is None else grace_s
        pending = {t for t in self.tasks if t is not asyncio.current_task()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            log.warning("shutdown: cancelling unfinished task %s", task.get_name())
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return sorted(t.get_name() for t in pending)


def classify(value: Any) -> str:
    """The outcome of a finished task from the value it produced."""
    if isinstance(value, dict):
        if value.get("type") == "timeout":
            return "timeout"
        if "error" in value or value.get("errors"):
            return "error"
    return "ok"


PROCESS_TASKS = ProcessTasks()
