"""The `featureFlags` hook (spec/language.md §3.4).

It runs before a route only when the route needs flags: a static scan (following named
pipeline calls and every branch) finds `@flag`/`@!flag` or `@needs(flags)`. The hook gets
the request object, has 50 ms, and its errors are logged and ignored. Flags are whatever
`setFlag` recorded; a `user` key in its output is copied into the request object.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from webpipe.executor.compiled import Body, Call, children
from webpipe.executor.context import RequestContext
from webpipe.executor.env import Env, step_tags
from webpipe.executor.pipeline import run_body
from webpipe.executor.plan import walk_tags
from webpipe.syntax import nodes as n

log = logging.getLogger("webpipe.flags")
FLAGS_TIME_LIMIT_S = 0.050


def needs_flags(body: Body) -> bool:
    """Whether any step the route may run (named pipeline calls and branches followed) has
    a `@flag`/`@!flag` or `@needs(flags)`. A work list, not recursion: a chain of thousands of
    pipeline calls is a legal program (it fails only when run deep enough)."""
    seen: set[Body] = set()  # bodies are hashed by identity
    todo = [body]
    while todo:
        for step in todo.pop().steps:
            if any(t.name == "flag" or (t.name == "needs" and "flags" in t.args)
                   for expr in step_tags(step.node) for t in walk_tags(expr)):
                return True
            if isinstance(step, Call):
                callee = step.plan.callee_body
                if callee is not None and callee not in seen:
                    seen.add(callee)
                    todo.append(callee)
            todo.extend(children(step))
    return False


def feature_flags_body(env: Env) -> Body | None:
    """The main module's `featureFlags` hook, compiled at load."""
    main = env.index.main
    return next((e.body for e in env.entries_of(n.FeatureFlags) if e.module is main), None)


async def run_feature_flags(env: Env, request: Any, ctx: RequestContext) -> Any:
    """Run the hook; set `ctx.flags`; return the request object (maybe with `.user`)."""
    body = feature_flags_body(env)
    if body is None:
        return request
    hook_ctx = RequestContext(request=request, env_name=ctx.env_name, invoker=ctx.invoker)
    try:
        outcome = await asyncio.wait_for(run_body(body, request, env, hook_ctx),
                                         FLAGS_TIME_LIMIT_S)
    except TimeoutError:
        log.warning("featureFlags took longer than %d ms; no flags set",
                    int(FLAGS_TIME_LIMIT_S * 1000))
        return request
    except Exception as exc:  # the hook's failures never fail the request
        log.warning("featureFlags failed: %s; no flags set", exc)
        return request
    ctx.flags.update(hook_ctx.flags)
    if isinstance(outcome.state, dict) and "user" in outcome.state and isinstance(request, dict):
        return {**request, "user": outcome.state["user"]}
    return request
