"""The one hook point for looking inside a running pipeline (spec/tracing.md).

A `Tracing` is made once per app (`tracing_for`): `--trace` collapsed stacks, OpenTelemetry
spans, both, or neither. When neither, the app holds None, no request gets a `Tracer` and
the executor's cost is one attribute check per body (`ctx.tracer is None`). When on, every
request gets a `Tracer` on `RequestContext.tracer`; the step loop calls `step_started` and
`step_ended` around each step, the task registry calls `task_forked` at `@async`/`@background`
and `task_ended` when a task finishes, `join` calls `joined`, and `fetch`/remote GraphQL
call `inject` for the outgoing `traceparent`. OpenTelemetry is imported only by
`webpipe.tracing.otel`, which is imported only when an exporter is configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

from webpipe.errors import ConfigError
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.executor.compiled import Compiled
    from webpipe.executor.env import Env
    from webpipe.executor.plan import StepPlan


class Tracer(Protocol):
    """What one request (or one task of it) reports; the executor's side of the hook."""

    def step_started(self, step: Compiled) -> object:
        """A step begins; the token is handed back to `step_ended`."""

    def step_ended(self, token: object, state: Any) -> None:
        """The step ended (returned, raised or was cancelled) with `state` after it."""

    def task_forked(self, kind: str, plan: StepPlan) -> Tracer | None:
        """`@async` (kind "async") or `@background` (kind "background") step handed to a
        task: the task's own tracer (None: the task is not traced)."""

    def task_ended(self, value: Any) -> None:
        """Called on a task's tracer when the task ends with `value` (None: cancelled)."""

    def joined(self, names: tuple[str, ...]) -> None:
        """A `join` has collected the tasks `names` (the join step's span is still open)."""

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Add the W3C `traceparent` (and `tracestate`) of the current step to `headers`."""

    def request_ended(self, status: int) -> None:
        """The request has its answer (`end_request`); a task's tracer ignores it."""


class Tracing(Protocol):
    """The app-level side: one per app, makes one `Tracer` per request."""

    def begin(self, method: str, path: str, route: str, headers: Mapping[str, str],
              env: Env) -> Tracer:
        """A request `METHOD path` matched `route` ("GET /users/:id"; "" for GraphQL)."""

    def job(self, plan: StepPlan, carrier: Mapping[str, str] | None, env: Env,
            ) -> Tracer | None:
        """A durable job runs `plan`; `carrier` holds the `traceparent` of the request that
        enqueued it. The job's tracer (ended with `task_ended`), or None."""

    def shutdown(self) -> None:
        """Flush what is buffered (the server is stopping)."""


def step_label(step: n.Step) -> str:
    """The step's kind as the reference names it: the middleware name, `pipeline:NAME` for a
    call, or `if`/`result`/`dispatch`/`foreach`."""
    match step:
        case n.MiddlewareStep(name="pipeline"):
            return f"pipeline:{(step.config or '').strip()}"
        case n.MiddlewareStep():
            return step.name
        case n.IfStep():
            return "if"
        case n.ResultStep():
            return "result"
        case n.DispatchStep():
            return "dispatch"
        case n.ForeachStep():
            return "foreach"
    raise AssertionError(step)


def tracing_for(trace: bool) -> Tracing | None:
    """The app's tracing: `--trace` (collapsed stacks on stdout), OpenTelemetry when an
    exporter is configured through the `OTEL_*` variables (`otel_configured`), both, or
    None. A `ConfigError` with the install hint when OTel is configured but the
    `webpipe[otel]` extra is missing."""
    parts: list[Tracing] = []
    if trace:
        from webpipe.tracing.collapsed import CollapsedTracing

        parts.append(CollapsedTracing())
    if otel_configured(os.environ):
        try:
            from webpipe.tracing.otel import OtelTracing
        except ImportError as exc:
            raise ConfigError(f"OTEL_* variables ask for traces, which need "
                              f"`pip install 'webpipe[otel]'` ({exc})") from None
        parts.append(OtelTracing.from_env())
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    from webpipe.tracing.tee import TeeTracing

    return TeeTracing(tuple(parts))


def otel_configured(environ: Mapping[str, str]) -> bool:
    """An exporter is configured: `OTEL_TRACES_EXPORTER` names one (not `none`), or an OTLP
    endpoint is set; `OTEL_SDK_DISABLED=true` switches everything off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
