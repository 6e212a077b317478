"""Compiled routes: every per-route decision of the request path, taken once at load.

`compile_routes` turns each route of a program into a `ServedRoute`: its matcher entry,
its label, whether it needs the `featureFlags` hook, the request keys it provably reads
(`request_reads`), its front cache (`front_cache.py`) and how its body runs (`run`: its
compiled body, `executor/compiled.py`, made `plain`, to run in one coroutine, when it has
only untagged middleware steps). The server only looks these up; nothing about a route is
recomputed or looked up by identity per request. Which fast paths a compile may choose is
`FastPaths`: `--inspect` and tracing compile without the ones that skip the step loop or
trim the request, and the differential tests compile with and without each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from webpipe.executor.compiled import Body, Call
from webpipe.executor.context import RequestContext
from webpipe.executor.env import Env
from webpipe.executor.pipeline import run_body
from webpipe.executor.plan import StepPlan
from webpipe.executor.state import Outcome
from webpipe.flags import needs_flags
from webpipe.front_cache import FrontCache, front_cache
from webpipe.middleware.base import Behavior
from webpipe.routing import Router
from webpipe.syntax import nodes as n

RunBody = Callable[[Any, Env, RequestContext], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class FastPaths:
    """The fast paths a compile may choose (each is a differential-tested shortcut)."""

    reads: bool = True  # build only the request keys a route reads
    plain: bool = True  # run a plain body in one coroutine (`Body.plain`)
    front: bool = True  # answer fresh cache hits before building the request
    now: bool = True  # answer from the connection, without a task, when nothing awaits
    later: bool = True  # run from the connection in a task of its own, not uvicorn's cycle


ALL_FAST_PATHS = FastPaths()
# --inspect and tracing see every step
STEP_LOOP_ONLY = FastPaths(reads=False, plain=False, now=False, later=False)


@dataclass(frozen=True, slots=True, eq=False)
class ServedRoute:
    """One route as the request path runs it."""

    route: n.Route
    label: str  # "GET /users/:id": logs, metrics, task owners
    flags: bool  # runs the `featureFlags` hook first
    reads: frozenset[str] | None  # the only request keys it can read; None: any
    front: FrontCache | None  # fresh cache hits answered before the pipeline
    run: RunBody  # `run_body` of its compiled body
    plain: bool  # whether that body is compiled `plain` (one coroutine)
    steps: int  # how many steps its body has (a partial request reruns only with >1)
    body: Body  # its body for the step loop (a rerun, the test runner)
    # its plain body may be tried without awaiting (`server.WebpipeApp.answer_now`): every
    # step has a `run_sync` and is `tryable`, so a try that must await is dropped and the
    # request runs as usual, with nothing done twice that anyone could see
    now: tuple[StepPlan, ...] | None = None
    # a request for it may run from the connection in a task of its own (`lane.Later`)
    later: bool = False


def compile_routes(env: Env, fast: FastPaths = ALL_FAST_PATHS) -> Router[ServedRoute]:
    """The route table of `env`, each route compiled (see module docstring)."""
    router: Router[ServedRoute] = Router()
    for entry in env.entries_of(n.Route):
        route = entry.item
        assert isinstance(route, n.Route)
        router.add(route.method, route.path, compile_route(route, entry.body, fast), route.span)
    return router


def compile_route(route: n.Route, body: Body, fast: FastPaths = ALL_FAST_PATHS,
                  ) -> ServedRoute:
    """`route` served with its `body` (compiled at load, `Env.entries`)."""
    flags = needs_flags(body)
    run = body.as_plain() if fast.plain else body
    return ServedRoute(
        route=route, label=f"{route.method} {route.path}", flags=flags,
        reads=request_reads(body) if fast.reads and not flags else None,
        front=front_cache(body) if fast.front and not flags else None,
        run=partial(run_body, run), plain=run.plain is not None,
        steps=len(route.pipeline.steps), body=body,
        now=run.plain if fast.now and not flags and _all_now(run.plain) else None,
        later=fast.later)


def _all_now(plain: tuple[StepPlan, ...] | None) -> bool:
    return plain is not None and all(
        plan.run_sync is not None and plan.middleware is not None
        and plan.middleware.tryable for plan in plain)


def request_reads(body: Body) -> frozenset[str] | None:
    """The request keys a route can read, when that is provable (None: it may pass the whole
    request on). Every step is an untagged middleware step whose middleware names the input
    keys it reads (`input_keys`: jq on the fast path, Lua chunks using only `request.name`,
    templates with plain paths, cache keys; none of them touching `$context`), and so do its
    inline arguments; the last step's output is the response (Transform or Render). With
    several steps, an error envelope from an early step would carry request keys into the
    response (§6.3 restores them), so every step must be `rerunnable`: such a request is run
    again on the whole request object (`server.WebpipeApp.run_route`)."""
    steps = body.steps
    if not steps:
        return None
    keys: set[str] = set()
    for step in steps:
        if not isinstance(step, Call) or step.node.tags:
            return None
        plan = step.plan
        mw = plan.middleware
        if plan.kind != "middleware" or plan.arg_error or plan.prepare_error or mw is None:
            return None
        step_keys = mw.input_keys(plan.prepared)
        if step_keys is None or (len(steps) > 1 and not mw.rerunnable):
            return None
        keys |= step_keys
        for program in plan.args:
            if program.input_keys is None:
                return None
            keys |= program.input_keys
    last = cast(Call, steps[-1]).plan.middleware
    if last is None or last.wraps_data or last.behavior is Behavior.MERGE:
        return None
    return frozenset(keys)
