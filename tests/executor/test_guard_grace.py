"""`Middleware.times_itself` (issue 23): a middleware that bounds a run by the step's
`@timeout` itself gets its own error reported; the executor's guard, due at the same
moment, waits `SELF_TIMED_GRACE_MS` longer for it. Without the capability the guard's
generic `timeout` envelope wins, as before."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from webpipe.executor.context import RequestContext
from webpipe.executor.retry import SELF_TIMED_GRACE_MS, guard_grace
from webpipe.middleware import Registry
from webpipe.middleware.base import BaseMiddleware, StepCall, StepResult
from webpipe.program import program_from_text
from webpipe.server import build_served


class OwnTimer(BaseMiddleware):
    """Waits out the step's `@timeout` itself, then answers with an error of its own."""

    times_itself: ClassVar[bool] = True

    async def run(self, state: Any, prepared: object, call: StepCall) -> StepResult:
        assert call.timeout_ms is not None
        await asyncio.sleep(call.timeout_ms / 1000)
        return StepResult({"errors": [{"type": "ownTimeout", "message": "mine"}]})


class NoOwnTimer(OwnTimer):
    times_itself: ClassVar[bool] = False


APP = """
GET /own
  |> own: `x` @timeout(40)

GET /plain
  |> plain: `x` @timeout(40)

GET /task
  |> own: `x` @async(t) @timeout(40)
  |> join: t
"""


async def test_the_middlewares_own_timeout_is_reported() -> None:
    registry = Registry()
    registry.register("own", OwnTimer)
    registry.register("plain", NoOwnTimer)
    env = program_from_text(APP, registry=registry)
    served = build_served(env)
    by_path = {r.route.path: r for r in served.routes()}
    plans = {plan.name: plan for plan in env.step_plans}
    assert guard_grace(plans["own"]) == SELF_TIMED_GRACE_MS
    assert guard_grace(plans["plain"]) == 0

    async def answer(path: str) -> Any:
        ctx = RequestContext(request={})
        return (await by_path[path].run({}, env, ctx)).state

    own = await answer("/own")
    assert own["errors"][0]["type"] == "ownTimeout"
    plain = await answer("/plain")
    assert plain["errors"][0]["type"] == "timeout"
    task = await answer("/task")
    assert task["async"]["t"]["errors"][0]["type"] == "ownTimeout"
    await env.aclose()
