"""OpenTelemetry spans for every request, step and task (spec/tracing.md; `webpipe[otel]`).

The only module that imports `opentelemetry`, and it is imported only when an exporter is
configured (`tracing.otel_configured`) or a test hands in its own provider. A request is a
SERVER span continuing an incoming W3C `traceparent`; each step a child span named
`kind file:line`; an `@async` task a span from its fork to its end (the step that forks it
has no span of its own: the task span is that step); `join` a step span covering the wait;
an `@background` step a span in a trace of its own, linked to the request's span. Spans of
steps that leave an error envelope, and of failed or cut tasks, have status ERROR with the
envelope's type. The tracer keeps its own stack of open spans instead of attaching them to
the ambient context: a request's steps run in one asyncio task, and every task gets its own
tracer, so the parent of a span is always the top of its tracer's stack.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from webpipe import __version__
from webpipe.errors import ConfigError
from webpipe.executor.compiled import Call, Compiled
from webpipe.executor.state import error_type
from webpipe.syntax import nodes as n
from webpipe.tracing import Tracer, step_label

if TYPE_CHECKING:

    from webpipe.executor.env import Env
    from webpipe.executor.plan import StepPlan


class OtelTracing:
    """The app side: a tracer from `provider`, the propagators of `OTEL_PROPAGATORS`."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("webpipe", __version__)

    @classmethod
    def from_env(cls) -> OtelTracing:
        """An SDK provider configured by the standard `OTEL_*` variables: resource
        (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), sampler (`OTEL_TRACES_SAMPLER`),
        batching (`OTEL_BSP_*`), exporter (`OTEL_TRACES_EXPORTER`: otlp or console) and the
        OTLP endpoint, protocol and headers (`OTEL_EXPORTER_OTLP_*`)."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "webpipe"}
                                                           if not _named() else {}))
        for name in _exporter_names():
            provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
        return cls(provider)

    def begin(self, method: str, path: str, route: str, headers: Mapping[str, str],
              env: Env) -> Tracer:
        span = self.tracer.start_span(
            f"{method} {route.split(' ', 1)[1] if route else path}",
            context=propagate.extract(headers), kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path,
                        **({"http.route": route.split(" ", 1)[1]} if route else {})})
        return OtelTracer(self, env, span, root=True)

    def job(self, plan: StepPlan, carrier: Mapping[str, str] | None, env: Env,
            ) -> Tracer | None:
        """A durable job's span: a trace of its own, linked to the enqueuing request's."""
        origin = trace.get_current_span(propagate.extract(carrier or {})).get_span_context()
        links = [Link(origin)] if origin.is_valid else []
        span = step_span(self.tracer, plan.step, None, links=links, kind=SpanKind.CONSUMER)
        span.set_attribute("webpipe.durable", True)
        return OtelTracer(self, env, span)

    def shutdown(self) -> None:
        shutdown = getattr(self.provider, "shutdown", None)
        if shutdown is not None:  # the SDK's provider flushes its processors
            shutdown()


class OtelTracer:
    """The open spans of one request, or of one task of it (see module docstring)."""

    def __init__(self, app: OtelTracing, env: Env, span: Span, *, root: bool = False) -> None:
        self.app = app
        self.env = env
        self.span = span  # the request's or the task's own span
        self.stack = [span]
        self.root = root

    def step_started(self, step: Compiled) -> object:
        if isinstance(step, Call):
            tags = step.plan.tags
            if tags.async_name is not None or tags.background:
                return None  # its span is the task's (`task_forked`)
        span = step_span(self.app.tracer, step.node, self.stack[-1])
        self.stack.append(span)
        return span

    def step_ended(self, token: object, state: Any) -> None:
        if token is None:
            return
        span = self.stack.pop()
        assert span is token
        _mark(span, error_type(state))
        span.end()

    def task_forked(self, kind: str, plan: StepPlan) -> Tracer | None:
        if kind == "async":
            span = step_span(self.app.tracer, plan.step, self.stack[-1])
            span.set_attribute("webpipe.async", plan.tags.async_name or "task")
        else:  # after the response: a trace of its own, linked to the request's
            span = step_span(self.app.tracer, plan.step, None,
                             links=[Link(self.stack[0].get_span_context())])
            span.set_attribute("webpipe.background", True)
        return OtelTracer(self.app, self.env, span)

    def task_ended(self, value: Any) -> None:
        _mark(self.span, failure_type(value))
        self.span.end()

    def joined(self, names: tuple[str, ...]) -> None:
        self.stack[-1].set_attribute("webpipe.join", list(names))

    def inject(self, headers: MutableMapping[str, str]) -> None:
        propagate.inject(headers, context=trace.set_span_in_context(self.stack[-1]))

    def request_ended(self, status: int) -> None:
        if not self.root:
            return  # a task's end (`end_request` of its context): `task_ended` ended it
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()


def step_span(tracer: trace.Tracer, step: n.Step, parent: Span | None, **extra: Any) -> Span:
    """A span `kind file:line` for `step` under `parent` (None: the root of a new trace)."""
    where = step.span
    kind = step_label(step).split(":", 1)[0]
    attributes: dict[str, Any] = {"webpipe.step": kind, "code.filepath": where.source.name,
                                  "code.lineno": where.line, "code.column": where.column}
    if isinstance(step, n.MiddlewareStep):
        attributes["webpipe.middleware"] = step.name
        if step.name == "pipeline":
            attributes["webpipe.pipeline"] = (step.config or "").strip()
    context = trace.set_span_in_context(parent) if parent is not None else Context()
    return tracer.start_span(f"{kind} {where.source.name}:{where.line}", context=context,
                             attributes=attributes, **extra)


def _mark(span: Span, kind: str | None) -> None:
    if kind is not None:
        span.set_attribute("webpipe.error.type", kind)
        span.set_status(Status(StatusCode.ERROR, kind))


def failure_type(value: Any) -> str | None:
    """The error type of a task's value: the envelope's type, a cut task's `type`
    (`timeout`, `cancelled`), or `asyncError` for a bare `{"error": ...}`."""
    kind = error_type(value)
    if kind is not None or not isinstance(value, dict) or "error" not in value:
        return kind
    cut = value.get("type")
    return cut if isinstance(cut, str) else "asyncError"


def _named() -> bool:
    return "OTEL_SERVICE_NAME" in os.environ or "service.name" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", "")


def _exporter_names() -> list[str]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    return [name.strip() for name in names.split(",") if name.strip() != "none"]


def _exporter(name: str) -> Any:
    """One exporter of `OTEL_TRACES_EXPORTER`; OTLP over http/protobuf unless
    `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` says grpc."""
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise ConfigError(f"OTEL_TRACES_EXPORTER={name!r}: webpipe knows otlp, console, none")
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()
