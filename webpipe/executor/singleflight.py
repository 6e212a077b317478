"""`@dedup`: concurrent identical calls share one execution (single-flight).

Two calls are identical when the middleware, its resolved config, its inline arguments and
its input state are equal (compared as canonical JSON). The first call starts the work as a
task owned by the process; later identical calls arriving before it finishes await the same
task. A caller that is cancelled does not cancel the shared work for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from webpipe.executor.process_tasks import PROCESS_TASKS

_INFLIGHT: dict[bytes, asyncio.Task[Any]] = {}


def flight_key(*parts: Any) -> bytes | None:
    """Canonical JSON of the call's identity, or None when it is not JSON (no sharing)."""
    try:
        return orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None


async def single_flight(key: bytes | None, name: str,
                        work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    if key is None:
        return await work()
    task = _INFLIGHT.get(key)
    if task is None:
        task = PROCESS_TASKS.start(work(), f"@dedup {name}")
        _INFLIGHT[key] = task
        task.add_done_callback(lambda done: _forget(key, done))
    return await asyncio.shield(task)


def _forget(key: bytes, task: asyncio.Task[Any]) -> None:
    if _INFLIGHT.get(key) is task:
        del _INFLIGHT[key]

