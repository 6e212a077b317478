"""`@dedup`: concurrent calls that would do the same work share one execution.

The key is what the step reads and sends, not the whole state, so requests that differ
only in a request id, a cookie or an unused parameter share the call (spec/tasks.md):
`fetch` keys on the method, URL, query, headers and body it sends; `pg` on its SQL and
parameters; a middleware that names the input keys it reads (`input_keys`: jq, Lua,
templates) on those keys only; any other on the whole state. `@dedup(`jq`)` gives the key
explicitly; it is combined with the credentials the call sends (`fetch`: its credential
headers; a middleware that cannot tell: the request's authorization and cookie headers), so
two users' credentials never share one call. The first call (the leader) runs as a task
owned by the process; calls arriving before it ends await it. A caller that is cancelled
does not cancel the shared work for the others. These executions are not counted as
tasks; `webpipe_dedup_calls` counts them by role.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import orjson

from webpipe.executor.process_tasks import PROCESS_TASKS, TaskInfo
from webpipe.executor.state import error_type
from webpipe.jqlib import JqError
from webpipe.metrics import METRICS
from webpipe.middleware.base import StepResult

if TYPE_CHECKING:
    from webpipe.executor.plan import StepPlan
    from webpipe.middleware.base import StepCall

_INFLIGHT: dict[bytes, asyncio.Task[Any]] = {}
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization", "x-api-key")


def flight_key(*parts: Any) -> bytes | None:
    """Canonical JSON of the call's identity, or None when it is not JSON (no sharing)."""
    try:
        return orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None


def dedup_key(plan: StepPlan, state: Any, call: StepCall) -> bytes | None:
    """The identity of the call (see module docstring); None: do not share."""
    mw = plan.middleware
    assert mw is not None, "only middleware steps are deduplicated"
    if plan.dedup_key is not None:
        try:
            explicit = plan.dedup_key.first(state)
        except JqError:
            return None
        identity = mw.dedup_identity(state, plan.prepared, call)
        credentials = identity[1] if identity is not None else request_credentials(state)
        return flight_key(plan.location, explicit, credentials)
    identity = mw.dedup_identity(state, plan.prepared, call)
    if identity is not None:
        return flight_key(plan.name, plan.config, identity[0])
    keys = mw.input_keys(plan.prepared)
    read = {k: state.get(k) for k in sorted(keys)} if keys is not None and isinstance(
        state, dict) else state
    return flight_key(plan.name, plan.config, call.args, call.target, read)


def request_credentials(state: Any) -> Any:
    """The request's credential headers and cookies, as far as the state carries them."""
    if not isinstance(state, dict):
        return None
    headers = state.get("headers")
    picked = {k: headers.get(k) for k in _CREDENTIAL_HEADERS} if isinstance(headers, dict) \
        else None
    return [picked, state.get("cookies")]


async def single_flight(key: bytes | None, info: TaskInfo,
                        work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    if key is None:
        return await work()
    task = _INFLIGHT.get(key)
    if task is None:
        task = PROCESS_TASKS.start(_led(work, info), info)
        _INFLIGHT[key] = task
        task.add_done_callback(lambda done: _forget(key, done))
    else:
        METRICS.dedup(info.route, "shared")
    return await asyncio.shield(task)


async def _led(work: Callable[[], Coroutine[Any, Any, Any]], info: TaskInfo) -> Any:
    result = await work()
    value = result.value if isinstance(result, StepResult) else result
    METRICS.dedup(info.route, "leader_error" if error_type(value) else "leader_ok")
    return result


def _forget(key: bytes, task: asyncio.Task[Any]) -> None:
    if _INFLIGHT.get(key) is task:
        del _INFLIGHT[key]
