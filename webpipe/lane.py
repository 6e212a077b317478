"""Answers given from the connection (spec/http.md "Answers from the connection").

`BoundedHttpProtocol` (`webpipe.protocol`) asks `answer_now` about a request whose body is
all there before it makes the request's task: a fresh front-cache hit, or a route compiled
`now` whose plain body runs to its end without awaiting, is answered right there, with the
same bytes the usual path (`server.WebpipeApp.serve_http`) would write. A request for any
other route compiled `later` is a `Later`: the connection runs it in a task of its own
(`lane_cycle.LaneCycle`), without uvicorn's cycle and ASGI messages. Anything else is None:
the request then goes the usual way from its start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Scope

from webpipe.errors import WebpipeError
from webpipe.executor.background import end_request
from webpipe.executor.context import RequestContext
from webpipe.executor.env import Env
from webpipe.executor.hooks import AFTER_PIPELINE, AFTER_RESPONSE
from webpipe.executor.pipeline import run_plain_now
from webpipe.executor.plan import StepPlan
from webpipe.executor.state import JSON_CT, Outcome, error_type
from webpipe.http import BadRequest, parse_body, raw_path, request_state_now
from webpipe.http_response import BodyResponse, build_response, plain_headers
from webpipe.metrics import METRICS
from webpipe.oplog import ID_KEY, log_request, request_id
from webpipe.respond import answer
from webpipe.routes import ServedRoute
from webpipe.static import resolve_static
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.server import BodyBounds, Served

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body
ALLOW_ANY_ORIGIN = (b"access-control-allow-origin", b"*")  # spec §7.7, on every answer
_DISCONNECT = {"type": "http.disconnect"}


class Later:
    """A request for a route, to be run from the connection in a task
    (`server.WebpipeApp.serve_later`): the program and route matched, the request's whole
    body, when it began."""

    __slots__ = ("body", "compiled", "params", "path", "scope", "served", "started")

    def __init__(self, served: Served, scope: Scope, compiled: ServedRoute,
                 params: dict[str, str], path: str, body: bytes | None, started: float,
                 ) -> None:
        self.served = served  # the program matched (a reload may install another meanwhile)
        self.scope = scope
        self.compiled = compiled
        self.params = params
        self.path = path
        self.body = body
        self.started = started

    async def receive(self) -> Message:
        """The request's ASGI `receive`: its body, all of it at once; then a disconnect
        (nothing reads a body twice: starlette keeps what it read)."""
        body, self.body = self.body, None
        if body is None:
            return _DISCONNECT
        return {"type": "http.request", "body": body, "more_body": False}


def answer_now(served: Served, bounds: Callable[[], BodyBounds], scope: Scope, body: bytes,
               ) -> Answer | Later | None:
    """The whole answer to a request whose body (`body`, maybe empty) is all here, when
    nothing in it awaits: a fresh front-cache hit, or a route compiled `now` (`routes.py`)
    whose body runs to its end without awaiting, without an error envelope and without
    hooks. Otherwise, a `Later` for a route compiled `later` (the whole request runs again
    from its start: what a try did is invisible, its steps are `tryable`), or None: the
    request goes the usual way, from its start. The answer is the one `serve_http` gives,
    byte for byte (tests/serve/test_answer_now.py); `bounds` reads the app's body limits."""
    if not served.answers_now:
        return None
    request = Request(scope)
    path = raw_path(request)
    method = scope["method"]
    if path in ("/health", "/metrics") or (method == "POST" and path == served.graphql_path):
        return None
    if (served.has_public and (method == "GET" or method == "HEAD")
            and resolve_static(served.public_dir, path, dotfiles=served.dotfiles) is not None):
        return None  # a file of public/ (served before routes, spec §8)
    found = served.router.match("GET" if method == "HEAD" else method, path)
    if found is None:
        return None
    started = time.perf_counter()
    compiled, params = found
    if compiled.front is None and compiled.now is None:
        return _later(served, scope, compiled, params, path, body, started)
    rid = scope[ID_KEY] = request_id(scope)
    front = compiled.front
    response = front.answer(request, params, path) if front is not None else None
    if response is None and compiled.now is not None:
        response = _run_now(served, bounds, compiled, compiled.now, request, params, path,
                            body)
    if (response is None or type(response) is not BodyResponse
            or response.status_code >= 500 or not plain_headers(response.raw_headers)):
        return _later(served, scope, compiled, params, path, body, started)
    content = response.body
    assert isinstance(content, bytes)  # a BodyResponse's always is
    status = response.status_code
    METRICS.request(compiled.label, status)
    log_request(scope, status, started)
    return status, [*response.raw_headers, ALLOW_ANY_ORIGIN,
                    (b"x-request-id", rid.encode("ascii"))], content


def _later(served: Served, scope: Scope, compiled: ServedRoute, params: dict[str, str],
           path: str, body: bytes, started: float) -> Later | None:
    """The request, to run from the connection in a task, when its route allows it."""
    return Later(served, scope, compiled, params, path, body, started) if compiled.later \
        else None


def _run_now(served: Served, bounds: Callable[[], BodyBounds], compiled: ServedRoute,
             plain: tuple[StepPlan, ...], request: Request, params: dict[str, str], path: str,
             body: bytes) -> Response | None:
    """`run_route` for `answer_now`: None when the body must await or did not end
    cleanly, or the request body is refused (the usual path then runs it again, from
    the start, and gives the 400 or 413)."""
    state, pending = request_state_now(request, params, path, compiled.reads)
    if pending is not None:
        limits = bounds()
        if len(body) > limits["max_body"]:
            return None
        try:
            value = parse_body(body, pending, limits["max_depth"], limits["max_containers"])
        except BadRequest:
            return None
        if "body" in state:
            state["body"] = value
    env = served.env
    ctx = http_context(env, state, compiled.route, request.scope.get(ID_KEY))
    out = Outcome(state, JSON_CT, None)
    try:
        if run_plain_now(plain, out, ctx) is not None:
            return None
        extras = ctx.extras
        if (error_type(out.state) is not None or extras.get(AFTER_PIPELINE)
                or AFTER_RESPONSE in extras or ctx.existing_tasks() is not None):
            return None
        content, status = answer(out, ctx.request, served.unhandled_status)
        response = build_response(content, out.content_type, status)
    except WebpipeError:  # the usual path reports it
        return None
    end_request(ctx, env, response.status_code)
    return response


def http_context(env: Env, state: Any, route: n.Route | None = None,
                 rid: str | None = None) -> RequestContext:
    """A fresh context for one HTTP request whose initial state is `state`; the request id
    is `$context.requestId` (spec/server.md §2)."""
    ctx = RequestContext(request=state, env_name=env.env_name, extras={"invocation": "http"},
                         route=f"{route.method} {route.path}" if route is not None else "")
    if rid is not None:
        ctx.sections["requestId"] = rid
    return ctx
