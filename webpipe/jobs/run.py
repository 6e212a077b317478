"""The job consumer's place in a process: started by `webpipe serve` (unless `--no-jobs`)
and by `webpipe worker`, stopped within the shutdown grace.

`webpipe serve` starts a consumer only when the app has a durable step, so an app without
jobs never connects to a database for them. `--no-jobs` sets `WEBPIPE_NO_JOBS=1` (read
here, so uvicorn's `--workers` processes see it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from webpipe.executor.process_tasks import PROCESS_TASKS, TaskInfo
from webpipe.jobs.identity import durable_index

if TYPE_CHECKING:
    from webpipe.executor.env import Env
    from webpipe.jobs.consumer import Consumer
    from webpipe.tracing import Tracing

log = logging.getLogger("webpipe.jobs")
NO_JOBS_ENV = "WEBPIPE_NO_JOBS"


@dataclass
class RunningJobs:
    consumer: Consumer
    task: asyncio.Task[Any]


def start_jobs(env_of: Callable[[], Env], concurrency: int | None = None,
               *, force: bool = False, tracing: Tracing | None = None) -> RunningJobs | None:
    """Start a consumer task when the app has durable steps (or `force`, the worker)."""
    if not force and (os.environ.get(NO_JOBS_ENV) or not durable_index(env_of())):
        return None
    from webpipe.jobs.consumer import Consumer

    consumer = Consumer(env_of, concurrency, tracing)
    task = PROCESS_TASKS.start(_consume(consumer), TaskInfo("", "jobs consumer", "internal",
                                                            ""))
    return RunningJobs(consumer, task)


async def _consume(consumer: Consumer) -> None:
    """Run the consumer; when it fails (database down at start, or lost later) log why and
    start again after a pause (1 s, doubling to 30 s) until the process stops it."""
    pause = 1.0
    while not consumer.stopped.is_set():
        started = time.monotonic()
        try:
            await consumer.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the server keeps serving; the log says why
            if consumer.stopped.is_set():
                return
            if time.monotonic() - started > 60:
                pause = 1.0  # it had been running: a fresh failure
            log.error("job consumer stopped: %s; starting again in %.0f s", exc, pause)
            with contextlib.suppress(TimeoutError):  # stop() ends the pause at once
                await asyncio.wait_for(consumer.stopped.wait(), pause)
            pause = min(30.0, pause * 2)
        else:
            return


async def stop_jobs(running: RunningJobs | None, grace_s: float | None = None) -> None:
    if running is not None:
        await running.consumer.stop(running.task, PROCESS_TASKS.grace_left()
                                    if grace_s is None else grace_s)
