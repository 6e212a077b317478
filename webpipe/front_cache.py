"""Cache hits answered before the pipeline (issue 9).

A route whose first step is an untagged `cache` step keyed only by the request's method,
path, query and params (the default key, or a `keyTemplate` over those) gives the same key for
the same method, raw path and raw query string every time. `FrontCache` remembers that key
per (method, path, query string) and, when the in-process store holds a fresh entry for it,
answers from the entry without building the request object, the context or the pipeline: the
answer a hit would give anyway (the body ends at a hit, spec/language.md §4.2-10). Anything
else (a first sight, a miss, a stale entry, Redis, a request announcing a body) goes the usual
way. See spec/cache-ratelimit.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from webpipe.executor.compiled import Body, Call
from webpipe.http import reads_body, request_state_now
from webpipe.http_response import build_response
from webpipe.middleware.cache import CacheMiddleware, CacheStep

REQUEST_KEYS = frozenset({"method", "path", "query", "params"})
MEMO_LIMIT = 10_000  # remembered keys per route; the memo starts over when full


@dataclass(eq=False)
class FrontCache:
    cache: CacheMiddleware
    step: CacheStep
    reads: frozenset[str]  # the request keys the step's key is made of
    keys: dict[tuple[str, str, bytes], str] = field(default_factory=dict)

    def answer(self, request: Request, params: dict[str, str], path: str) -> Response | None:
        """The response of a fresh hit, or None (the request then runs as usual)."""
        scope = request.scope
        if reads_body(scope):
            return None  # a body is read (and checked) before the first step
        memo = (scope["method"], path, scope.get("query_string") or b"")
        key = self.keys.get(memo)
        if key is None:
            state, _ = request_state_now(request, params, path, self.reads)
            key = self.step.key(state)
            if len(self.keys) >= MEMO_LIMIT:
                self.keys.clear()
            self.keys[memo] = key
        entry = self.cache.fresh_entry(key)
        if entry is None:
            return None
        return build_response(entry.value, entry.content_type, entry.status)


def front_cache(body: Body) -> FrontCache | None:
    """A route's `FrontCache` when its body's first step qualifies (see module docstring)."""
    steps = body.steps
    if not steps or not isinstance(steps[0], Call) or steps[0].node.tags:
        return None
    plan = steps[0].plan
    cache, step = plan.middleware, plan.prepared
    if (plan.kind != "middleware" or plan.args or plan.arg_error or plan.prepare_error
            or plan.auto_name or not isinstance(cache, CacheMiddleware)
            or not isinstance(step, CacheStep) or not step.enabled):
        return None
    reads = cache.input_keys(step)
    if reads is None or not reads <= REQUEST_KEYS:
        return None
    return FrontCache(cache, step, reads)
