"""The process-wide task owner: every task webpipe starts is created and tracked here.

`ProcessTasks.start()` is the only `create_task` in webpipe. Each task carries a `TaskInfo`
(route template, declared task name, kind, `file:line`), so every log line and metric names
where the work came from. When a task ends its outcome (ok, error, timeout, cancelled,
rejected; `mark()` overrides what the value says, e.g. a join deadline) and duration are
counted, unless it is not a task in the language's sense (`@dedup` executions, the
reloader). `drain()` runs at shutdown: it waits, within what is left of the grace period
since the signal arrived, for every task, including tasks started during the drain, then
cancels the rest and logs each as abandoned. Limits come from `config async { }`
(spec/tasks.md).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from webpipe.config import config_int
from webpipe.executor.slots import task_context
from webpipe.metrics import METRICS

log = logging.getLogger("webpipe.tasks")


@dataclass(frozen=True)
class TaskLimits:
    """`config async { … }` (spec/tasks.md has the table)."""

    max_per_request: int = 0  # 0 = no cap
    max_global: int = 0
    max_wait_ms: int = 0  # 0 = wait as long as the deadlines allow
    lifetime_ms: int = 30_000
    shutdown_grace_ms: int = 10_000
    retry_base_ms: int = 100
    retry_max_ms: int = 5_000
    max_background: int = 0
    background_lifetime_ms: int = 60_000

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> TaskLimits:
        d = cls()
        return cls(**{attr: config_int(block, key, getattr(d, attr))
                      for key, attr in CONFIG_KEYS.items()})


CONFIG_KEYS = {"maxPerRequest": "max_per_request", "maxGlobal": "max_global",
               "maxWaitMs": "max_wait_ms", "lifetimeMs": "lifetime_ms",
               "shutdownGraceMs": "shutdown_grace_ms", "retryBaseMs": "retry_base_ms",
               "retryMaxMs": "retry_max_ms", "maxBackground": "max_background",
               "backgroundLifetimeMs": "background_lifetime_ms"}


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """Where a task comes from: the labels of its metrics and the words of its log lines."""

    route: str  # route template ("GET /users/:id"), or "script"/"test"
    name: str  # the declared task name; "" for a plain `@background` step
    kind: str  # "async" | "background" | "dedup" | "hedge" | "internal"
    location: str  # "app.wp:12"
    label: str = field(init=False)  # "GET /a @async(t1) at app.wp:3": task name and logs

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", self._label())

    def _label(self) -> str:
        if self.kind == "background":
            tag = f"@background @async({self.name})" if self.name else "@background"
        elif self.kind in ("dedup", "hedge"):
            tag = f"@{self.kind}"
        elif self.kind == "internal":
            return self.name
        else:
            tag = f"@async({self.name})"
        return f"{self.route} {tag} at {self.location}"

    @property
    def counted(self) -> bool:
        return self.kind in ("async", "background")


@dataclass(slots=True)
class _Entry:
    info: TaskInfo
    started: float  # monotonic
    wall: float  # time.time(), for the oldest-pending gauge
    outcome: str | None = None  # set by mark()


class ProcessTasks:
    """The owner of every task the process starts (see module docstring)."""

    def __init__(self) -> None:
        self.tasks: dict[asyncio.Task[Any], _Entry] = {}
        # counted tasks -> wall-clock start, in start order (the first is the oldest)
        self._counted: dict[asyncio.Task[Any], float] = {}
        self.limits = TaskLimits()
        self.shutdown_started: float | None = None  # monotonic, set by the signal
        self._global: asyncio.Semaphore | None = None
        self._background: asyncio.Semaphore | None = None
        self._gauges_read: bool | None = None  # None: not asked yet (METRICS.read_pending)

    def configure(self, limits: TaskLimits) -> None:
        self.limits = limits
        self._global = None
        self._background = None

    @property
    def pending(self) -> int:
        return len(self._counted)

    def global_slots(self) -> asyncio.Semaphore | None:
        if self.limits.max_global > 0 and self._global is None:
            self._global = asyncio.Semaphore(self.limits.max_global)
        return self._global

    def background_slots(self) -> asyncio.Semaphore | None:
        if self.limits.max_background > 0 and self._background is None:
            self._background = asyncio.Semaphore(self.limits.max_background)
        return self._background

    def start(self, coro: Coroutine[Any, Any, Any], info: TaskInfo) -> asyncio.Task[Any]:
        """Start and own a task; its outcome is counted when it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=info.label,
                                                      context=task_context())
        entry = self.tasks[task] = _Entry(info, time.monotonic(), time.time())
        task.add_done_callback(self._finished)
        if info.counted:
            self._counted[task] = entry.wall
            self._gauges()
        return task

    def mark(self, task: asyncio.Task[Any], outcome: str) -> None:
        """Record the outcome a task ends with when its value cannot tell (a join deadline
        cancels it: "timeout"; no slot in time: "rejected")."""
        entry = self.tasks.get(task)
        if entry is not None and entry.outcome is None:
            entry.outcome = outcome

    def mark_current(self, outcome: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.mark(task, outcome)

    def current_outcome(self) -> str | None:
        """What `mark()` recorded for the running task (a cancelled task's reason)."""
        task = asyncio.current_task()
        entry = self.tasks.get(task) if task is not None else None
        return entry.outcome if entry is not None else None

    def _finished(self, task: asyncio.Task[Any]) -> None:
        entry = self.tasks.pop(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s crashed: %r", entry.info.label, task.exception())
        if entry.info.counted:
            if METRICS.served:  # the outcome is only counted (`Metrics.served`)
                info = entry.info
                METRICS.task(info.route, info.name, info.kind, outcome_of(task, entry),
                              time.monotonic() - entry.started)
            del self._counted[task]
            self._gauges()

    def _gauges(self) -> None:
        if self._gauges_read is None:
            self._gauges_read = METRICS.read_pending(lambda: self.pending, self._oldest)
        if not self._gauges_read:
            METRICS.pending(len(self._counted), self._oldest())

    def _oldest(self) -> float | None:
        return next(iter(self._counted.values()), None)

    def watch_signals(self) -> None:
        """Note when SIGTERM/SIGINT arrives (wrapping the server's own handlers), so the
        drain gets only what is left of the grace period after the server's wait."""
        if self.shutdown_started is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous = signal.getsignal(sig)
            except ValueError:  # not the main thread
                return
            if callable(previous):
                signal.signal(sig, _noting(self, previous))

    def grace_left(self) -> float:
        grace = self.limits.shutdown_grace_ms / 1000
        if self.shutdown_started is None:
            return grace
        return max(0.0, grace - (time.monotonic() - self.shutdown_started))

    async def drain(self, grace_s: float | None = None) -> list[str]:
        """Wait up to the grace for every task (new ones too), cancel and log the rest;
        the labels of the abandoned tasks."""
        loop = asyncio.get_running_loop()
        end = loop.time() + (self.grace_left() if grace_s is None else grace_s)
        me = asyncio.current_task()
        while True:
            pending = [t for t, e in self.tasks.items() if t is not me
                       and e.info.kind != "internal"]
            if not pending or loop.time() >= end:
                break
            await asyncio.wait(pending, timeout=end - loop.time(),
                               return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            log.warning("shutdown: abandoned task %s (not finished within the grace "
                        "period)", self.tasks[task].info.label)
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return sorted(t.get_name() for t in pending)


def _noting(owner: ProcessTasks, previous: Any) -> Any:
    def handler(sig: int, frame: FrameType | None) -> None:
        if owner.shutdown_started is None:
            owner.shutdown_started = time.monotonic()
        previous(sig, frame)

    return handler


def outcome_of(task: asyncio.Task[Any], entry: _Entry) -> str:
    """How a finished task ended: what `mark()` recorded, else what its end says."""
    if task.cancelled():
        return entry.outcome or "cancelled"
    if task.exception() is not None:
        return "error"
    return entry.outcome or classify(task.result())


def classify(value: Any) -> str:
    """The outcome of a finished task from the value it produced."""
    if isinstance(value, dict):
        if value.get("type") == "timeout":
            return "timeout"
        errors = value.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            kind = errors[0].get("type")
            return {"timeout": "timeout", "capacityError": "rejected"}.get(str(kind), "error")
        if "error" in value:
            return "error"
    return "ok"


PROCESS_TASKS = ProcessTasks()
