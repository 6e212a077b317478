"""The ASGI app: request dispatch (spec/language.md §8), lifespan, hot reload.

`WebpipeApp` holds the current `Env` and route table and swaps them atomically on reload,
so a broken edit prints its diagnostic and the last good program keeps serving. Hard
errors become a 500 JSON envelope; no input ever produces a traceback in a response.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from webpipe import __version__, access_lines
from webpipe.config import config_bool
from webpipe.errors import Diagnostic, HardError, WebpipeError
from webpipe.executor.background import end_request
from webpipe.executor.context import RequestContext
from webpipe.executor.env import Env
from webpipe.executor.fanin import COMPLETED as JOINS_COMPLETE
from webpipe.executor.hooks import AFTER_RESPONSE
from webpipe.executor.pipeline import run_body
from webpipe.executor.process_tasks import PROCESS_TASKS, TaskInfo, TaskLimits
from webpipe.executor.state import JSON_CT, error_type
from webpipe.flags import run_feature_flags
from webpipe.graphql import graphql_endpoint_path, handle_graphql_request, load_graphql
from webpipe.http import (
    BadRequest,
    raw_path,
    read_state_body,
    request_state,
    request_state_now,
)
from webpipe.http_response import BodyResponse, build_response, error_response, preflight_response
from webpipe.jobs.enqueue import enqueue_request
from webpipe.jobs.run import RunningJobs, start_jobs, stop_jobs
from webpipe.lane import ALLOW_ANY_ORIGIN, Answer, Later, answer_now, http_context
from webpipe.limits import Limits, limits_of
from webpipe.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from webpipe.metrics import METRICS
from webpipe.oplog import (
    ERROR_KEY,
    ID_KEY,
    LogSettings,
    log_request,
    note_envelope,
    note_error,
    production_body,
    request_id,
)
from webpipe.protocol import BoundedHttpProtocol, set_lane
from webpipe.respond import answer, unhandled_status
from webpipe.routes import ALL_FAST_PATHS, STEP_LOOP_ONLY, FastPaths, ServedRoute, compile_routes
from webpipe.routing import Router
from webpipe.source import Span
from webpipe.static import resolve_static, static_response
from webpipe.syntax import nodes as n
from webpipe.tracing import Tracing
from webpipe.wire import MAX_JSON_DEPTH

if TYPE_CHECKING:
    from webpipe.debugger import Debugger

log = logging.getLogger("webpipe.server")



class BodyBounds(TypedDict):
    """The keyword arguments bounding a request body read (`http.read_state_body`)."""

    max_body: int
    max_depth: int
    max_containers: int


@dataclass(eq=False)
class Served:
    """One loaded program as the server uses it."""

    env: Env
    router: Router[ServedRoute]  # every route compiled (`routes.py`)
    public_dir: Path
    has_public: bool = False  # checked once per load: no directory, no static lookups
    limits: Limits = field(default_factory=Limits)  # `config limits { }` (spec/limits.md)
    dotfiles: bool = False  # `config static { dotfiles: true }`: serve `.env`, `.git/`...
    graphql_path: str | None = None  # the automatic GraphQL endpoint, when active
    unhandled_status: int | None = None  # `config server { unhandledErrorStatus }`
    # `config server { completenessHeader: true }`: `X-Webpipe-Completed` on a route that
    # joined tasks, false when any join missed a task (spec/tasks.md §3)
    completeness_header: bool = False

    @cached_property
    def answers_now(self) -> bool:
        """Whether any route may be answered from the connection (`lane.py`)."""
        return any(r.front is not None or r.now is not None or r.later
                   for r in self.routes())

    def routes(self) -> list[ServedRoute]:
        """Every compiled route, in the router's order."""
        return [entry.target for entries in self.router.by_method.values()
                for entry in entries]


def build_served(env: Env, public_dir: Path | None = None,
                 fast: FastPaths = ALL_FAST_PATHS) -> Served:
    """Routes, the GraphQL runtime (schema errors raise `LoadError`) and the public dir;
    `fast`: the fast paths the routes may be compiled with."""
    load_graphql(env)
    PROCESS_TASKS.configure(TaskLimits.from_config(env.configs.get("async")))
    router = compile_routes(env, fast)
    env.diagnostics.extend(router.diagnostics)
    default_public = os.environ.get("WEBPIPE_PUBLIC_DIR") or env.base_dir / "public"
    public = Path(public_dir or default_public)
    dotfiles = config_bool(env.configs.get("static"), "dotfiles", False)
    return Served(env, router, public, public.is_dir(), app_limits(env), dotfiles,
                  graphql_endpoint_path(env), unhandled_status(env),
                  config_bool(env.config_block("server"), "completenessHeader", False))


def app_limits(env: Env) -> Limits:
    """The app's `config limits`, with `maxJsonDepth` held to the depth every step is tested
    at (a warning says so when the block asks for more)."""
    limits = limits_of(env)
    if 1 <= limits.max_json_depth <= MAX_JSON_DEPTH:
        return limits
    env.diagnostics.append(Diagnostic(
        f"maxJsonDepth must be between 1 and {MAX_JSON_DEPTH} (the depth every step is safe "
        f"at); using {MAX_JSON_DEPTH}", _config_span(env, "limits", "maxJsonDepth"),
        "warning", "limits"))
    return replace(limits, max_json_depth=MAX_JSON_DEPTH)


def _config_span(env: Env, block_name: str, key: str) -> Span | None:
    """Where `config <block_name> { <key>: ... }` is written (the last one wins)."""
    found = None
    for module in env.index.config_modules():
        for block in module.items(n.ConfigBlock):
            assert isinstance(block, n.ConfigBlock)
            if block.name == block_name:
                found = next((p.span for p in block.props if p.key == key), found)
    return found


def debug_served(served: Served, debugger: Debugger) -> Served:
    """`--inspect`: the debugger sees every step of every route with the whole request, so
    the program is compiled without the paths that skip the step loop or trim the request."""
    debugger.attach(served.env)
    return step_loop_served(served)


def step_loop_served(served: Served) -> Served:
    """`served` with its routes compiled without the fast paths that skip the step loop
    (a `plain` body) or trim the request (`reads`): for `--inspect` and tracing."""
    return replace(served, router=compile_routes(served.env, STEP_LOOP_ONLY))


class WebpipeApp:
    """ASGI application serving one program (see module docstring)."""

    def __init__(self, served: Served, *, max_body: int | None = None,
                 reloader: Reloader | None = None, metrics: bool = False,
                 production: bool | None = None, debugger: Debugger | None = None,
                 tracing: Tracing | None = None) -> None:
        self.debugger = debugger  # `--inspect` (spec/debugger.md)
        self.tracing = tracing  # webpipe/tracing: None unless --trace or OTEL_* ask for it
        self.served = served
        # spec/server.md §3: 5xx bodies without internals (default: WEBPIPE_ENV=production)
        self.production = LogSettings.from_env().production if production is None \
            else production
        self.max_body = max_body  # overrides `maxBodyBytes` when given
        self.reloader = reloader
        self.metrics = metrics
        if metrics:  # from now on tasks are counted (`Metrics.served`)
            METRICS.served = True
        METRICS.load()  # the client's import (~100 ms) at startup, not on a first request
        self._reload_task: asyncio.Task[None] | None = None
        self._jobs: RunningJobs | None = None

    @property
    def served(self) -> Served:
        return self._served

    @served.setter
    def served(self, served: Served) -> None:
        """Install a loaded program (at start and on reload): traced or debugged, every
        step goes through the step loop on the whole request (`step_loop_served`)."""
        if self.debugger is not None:
            served = debug_served(served, self.debugger)
        elif self.tracing is not None:
            served = step_loop_served(served)
        self._served = served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.serve_http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One request: its id, the answer (a production 5xx without details), the logs.
        The route path runs in this coroutine and `run_route`'s (no layer per check), and
        a `BodyResponse`, nearly every answer, is sent here without its own coroutine."""
        started = time.perf_counter()
        rid = scope[ID_KEY] = request_id(scope)
        request = Request(scope, receive)
        method = scope["method"]
        if method == "OPTIONS" and "access-control-request-method" in request.headers:
            response: Response = preflight_response(request)
        else:
            served = self.served
            path = raw_path(request)
            special = self.special_response(served, request, method, path)
            if special is not None:
                response = special if isinstance(special, Response) else await special
            else:
                response = await self.route_response(served, request, method, path)
            response = self.for_client(response, scope)
        response.raw_headers.append((b"x-request-id", rid.encode("ascii")))
        try:
            if type(response) is BodyResponse:
                await send({"type": "http.response.start", "status": response.status_code,
                            "headers": response.raw_headers})
                await send({"type": "http.response.body", "body": response.body})
            else:
                await response(scope, receive, send)
        finally:
            log_request(scope, response.status_code, started)

    async def serve_later(self, later: Later, write: Write) -> None:
        """`serve_http` for a request the connection runs in a task of its own (`lane.py`,
        `lane_cycle.py`): its route is matched and none of `serve_http`'s other answers
        apply, so it starts at the route's answer; `write` sends the whole response."""
        scope = later.scope
        rid = scope[ID_KEY] = request_id(scope)
        compiled = later.compiled
        response = await self.matched_response(
            later.served, compiled, later.params, Request(scope, later.receive), later.path)
        response = self.for_client(response, scope)
        response.raw_headers.append((b"x-request-id", rid.encode("ascii")))
        try:
            await write(response)
        finally:
            log_request(scope, response.status_code, later.started)

    def for_client(self, response: Response, scope: Scope) -> Response:
        """A production 5xx without details (spec/server.md §3), and CORS (spec §7.7)."""
        if self.production and response.status_code >= 500 and ERROR_KEY in scope:
            response = Response(production_body(scope), response.status_code,
                                media_type=JSON_CT)
        response.raw_headers.append(ALLOW_ANY_ORIGIN)
        return response

    def special_response(self, served: Served, request: Request, method: str, path: str,
                         ) -> Response | Awaitable[Response] | None:
        """`/health`, `/metrics`, a static file or the GraphQL endpoint; None: a route's."""
        if path == "/health":
            if method != "GET":
                return Response(status_code=405)
            return PlainTextResponse(f'{{"status":"ok","version":"{__version__}"}}')
        if self.metrics and path == "/metrics" and method == "GET":
            return Response(METRICS.render(), media_type=METRICS_CONTENT_TYPE)
        if method in ("GET", "HEAD") and served.has_public:
            static = resolve_static(served.public_dir, path, dotfiles=served.dotfiles)
            if static is not None:
                return static_response(static)
        if method == "POST" and path == served.graphql_path:
            return self.run_graphql(served.env, request)
        return None

    async def route_response(self, served: Served, request: Request, method: str,
                             path: str) -> Response:
        """The matching route's answer (a fresh front-cache hit, or its pipeline run), 404
        or 405; counted in the requests metric."""
        # HEAD is answered like GET (the server sends no body)
        found = served.router.match("GET" if method == "HEAD" else method, path)
        if found is None:
            return Response(status_code=404 if method in _KNOWN_METHODS else 405)
        return await self.matched_response(served, found[0], found[1], request, path)

    async def matched_response(self, served: Served, compiled: ServedRoute, params: dict[str, str],
                               request: Request, path: str) -> Response:
        """`route_response` once the route is found."""
        front = compiled.front
        response = front.answer(request, params, path) if front is not None else None
        if response is None:  # not a hit answered before the pipeline
            try:
                response = await self.run_route(served, compiled, request, params, path)
            except BadRequest as exc:
                response = exc.to_response()
        METRICS.request(compiled.label, response.status_code)
        return response

    async def run_route(self, served: Served, compiled: ServedRoute, request: Request,
                        params: dict[str, str], path: str | None = None) -> Response:
        env, route, only = served.env, compiled.route, compiled.reads
        state: Any
        state, pending = request_state_now(request, params, path, only)
        if pending is not None:
            await read_state_body(request, state, pending, **self.body_bounds())
        ctx = self._context(env, state, route, request)
        if compiled.flags:
            state = await run_feature_flags(env, state, ctx)
            ctx.request = state
        try:
            outcome = await compiled.run(state, env, ctx)
            if (only is not None and compiled.steps > 1
                    and error_type(outcome.state) is not None):
                # an early step's error envelope carries request keys (§6.3): the steps
                # are rerunnable (see request_reads), so answer from the whole request
                state = await request_state(request, params, path=path, **self.body_bounds())
                ctx = http_context(env, state, route, request.scope.get(ID_KEY))
                outcome = await run_body(compiled.body, state, env, ctx)
            body, status = answer(outcome, ctx.request, served.unhandled_status)
            if outcome.status is None and error_type(outcome.state) is not None:
                note_envelope(request.scope, outcome.state)  # unhandled: logged (§2)
            response = build_response(body, outcome.content_type, status)
        except WebpipeError as exc:
            end_request(ctx, env, 500)
            return hard_error_response(exc, ctx, request.scope)
        extras = ctx.extras
        if served.completeness_header and JOINS_COMPLETE in extras:
            response.headers["X-Webpipe-Completed"] = \
                "true" if extras[JOINS_COMPLETE] else "false"
        if AFTER_RESPONSE in extras:
            run_hooks(ctx, AFTER_RESPONSE, outcome.state, response.status_code,
                      outcome.content_type)
        if ctx.existing_tasks() is not None:  # only tasks can hold durable steps
            failed = await enqueue_request(ctx, env, response.status_code)
            if failed is not None:  # never a 2xx for durable work that will not run
                end_request(ctx, env, 503)
                return build_response(failed, JSON_CT, 503)
        end_request(ctx, env, response.status_code)
        return response

    def answer_now(self, scope: Scope, body: bytes) -> Answer | Later | None:
        """The connection's question (`webpipe.protocol.Lane`): `lane.answer_now`."""
        return answer_now(self.served, self.body_bounds, scope, body)

    def body_bounds(self) -> BodyBounds:
        """How a request body is read: `maxBodyBytes`, `maxJsonDepth` (its time,
        `bodyTimeoutMs`, is bounded by the connection: `webpipe.protocol`)."""
        limits = self.served.limits
        return {"max_body": self.max_body or limits.max_body_bytes,
                "max_depth": limits.max_json_depth,
                "max_containers": limits.max_json_containers}

    def _context(self, env: Env, state: Any, route: n.Route | None,
                 request: Request) -> RequestContext:
        """`http_context`, with the request's tracer when the app traces (`end_request`
        gives it the status)."""
        ctx = http_context(env, state, route, request.scope.get(ID_KEY))
        if self.tracing is not None:
            ctx.tracer = self.tracing.begin(request.method, raw_path(request),
                                            f"{route.method} {route.path}" if route else "",
                                            request.headers, env)
        return ctx

    async def run_graphql(self, env: Env, request: Request) -> Response:
        """The automatic GraphQL endpoint (graphql.md §7)."""
        try:
            state = await request_state(request, {}, **self.body_bounds())
        except BadRequest as exc:
            return exc.to_response()
        ctx = self._context(env, state, None, request)
        try:
            status, value = await handle_graphql_request(env, state["body"], ctx)
            response = build_response(value, JSON_CT, status)
        except WebpipeError as exc:
            end_request(ctx, env, 500)
            return hard_error_response(exc, ctx, request.scope)
        end_request(ctx, env, response.status_code)
        return response

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                PROCESS_TASKS.watch_signals()
                env = self.served.env
                if env.uses_sandbox():  # workers import while the server starts
                    await env.sandbox().warm()
                if self.debugger is not None:
                    await self.debugger.start()
                self._jobs = start_jobs(lambda: self.served.env, tracing=self.tracing)
                if self.reloader is not None:
                    self._reload_task = PROCESS_TASKS.start(
                        self.reloader(self), TaskInfo("", "reloader", "internal", ""))
                set_lane(self)  # bodiless GETs answered from the connection when they can
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def shutdown(self) -> None:
        if BoundedHttpProtocol.lane is self:
            set_lane(None)
        if self.debugger is not None:
            await self.debugger.stop()
        if self._reload_task is not None:
            self._reload_task.cancel()
        await stop_jobs(self._jobs)
        await PROCESS_TASKS.drain()
        await self.served.env.aclose()
        if self.tracing is not None:  # after the drain: the last tasks' spans are exported
            await asyncio.to_thread(self.tracing.shutdown)
        access_lines.flush_all()
        if "webpipe.pgembed" in sys.modules:  # only when an embedded server may be running
            from webpipe.pgembed import stop_embedded

            await asyncio.to_thread(stop_embedded)


_KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}


def run_hooks(ctx: RequestContext, name: str, *args: Any) -> None:
    """Call the request's hooks registered under `name`; a failing hook is logged only."""
    for hook in ctx.extras.get(name, ()):
        try:
            hook(*args)
        except Exception:
            log.exception("%s hook failed", name)


def hard_error_response(exc: WebpipeError, ctx: RequestContext | None = None,
                        scope: Scope | None = None) -> Response:
    """Any error that ended a request: 500 (or a `HardError`'s own status) with the envelope;
    noted in `scope` for the error log line (spec/server.md §2)."""
    status = exc.status if isinstance(exc, HardError) else 500
    where = f"At {exc.span.source.name}:{exc.span.line}\n" if exc.span else ""
    location = f"{exc.span.source.name}:{exc.span.line}" if exc.span else None
    if scope is not None:
        note_error(scope, "pipelineError", exc.message, location)
    else:
        log.error("pipeline failed: %s%s", where.replace("\n", ": "), exc.message)
    response = error_response("Pipeline execution failed", where + exc.message, status)
    retry_after = ctx.extras.get("retry_after") if ctx is not None else None
    if status == 429 and retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


Reloader = Callable[["WebpipeApp"], Coroutine[Any, Any, None]]
Write = Callable[[Response], Awaitable[None]]  # sends a whole response (`serve_later`)


def create_app(served: Served, *, max_body: int | None = None,
               reloader: Reloader | None = None, metrics: bool = False,
               debugger: Debugger | None = None, tracing: Tracing | None = None) -> ASGIApp:
    """The ASGI app (CORS is answered by `WebpipeApp` itself, spec §7.7); with `metrics`,
    `GET /metrics` serves the Prometheus text page; with `debugger`, steps can be debugged
    over DAP (spec/debugger.md); `tracing` (`tracing.tracing_for`) traces every request
    (spec/tracing.md)."""
    return WebpipeApp(served, max_body=max_body, reloader=reloader, metrics=metrics,
                      debugger=debugger, tracing=tracing)

