"""OpenTelemetry (issue 21, outcome 2): the span tree of a fan-out, read back from the SDK's
in-memory exporter, with real loopback upstreams that record the `traceparent` they got."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.support import loopback
from webpipe.errors import ConfigError
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app
from webpipe.tracing import otel_configured, tracing_for
from webpipe.tracing.otel import OtelTracing

APP = """GET /fan
  |> fetch: `UP/a` @async(a)
  |> fetch: `UP/b` @async(b)
  |> fetch: `UP/slow` @async(c)
  |> join: a, b, c @timeout(300)
  |> jq: `{ a: .async.a.data.response.ok, c: .async.c.type }`
  |> fetch: `UP/bg` @background

GET /late
  |> fetch: `UP/slow` @async(s)
  |> join: s @timeout(200) @failfast

GET /broken
  |> pipeline: down

pipeline down =
  |> fetch: `http://127.0.0.1:9/nothing-listens`
"""
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Upstream:
    """Answers `/a`, `/b`, `/bg` at once and `/slow` after 5 s; keeps each traceparent."""

    def __init__(self) -> None:
        self.traceparents: dict[str, str] = {}

    def app(self) -> web.Application:
        async def answer(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            self.traceparents[name] = request.headers.get("traceparent", "")
            if name == "slow":
                await asyncio.sleep(5)
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_get("/{name}", answer)
        return app


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter,
                                                        Upstream]]:
    upstream = Upstream()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with loopback(upstream.app()) as base:
        env = program_from_text(APP.replace("UP", base), base_dir=tmp_path)
        app = create_app(build_served(env), tracing=OtelTracing(provider))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            yield client, exporter, upstream
        await env.aclose()
    provider.shutdown()


async def finished(exporter: InMemorySpanExporter, name: str, attribute: str,
                   ) -> ReadableSpan:
    for _ in range(200):  # background work ends after the response
        for span in exporter.get_finished_spans():
            if span.name.startswith(name) and span.attributes and attribute in span.attributes:
                return span
        await asyncio.sleep(0.02)
    raise AssertionError(f"no finished span {name!r} with {attribute!r}")


def by_name(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith(prefix)]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def traceparent_of(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


async def test_fan_out_span_tree(traced: tuple[httpx.AsyncClient, InMemorySpanExporter,
                                               Upstream]) -> None:
    client, exporter, upstream = traced
    response = await client.get("/fan", headers={
        "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert response.json() == {"a": True, "c": "timeout"}
    background = await finished(exporter, "fetch app.wp:7", "webpipe.background")
    spans = exporter.get_finished_spans()
    (request,) = by_name(spans, "GET /fan")
    # the incoming traceparent is continued
    assert request.kind is SpanKind.SERVER
    assert f"{request.context.trace_id:032x}" == TRACE_ID
    assert parent_id(request) == int(PARENT_ID, 16)
    assert request.attributes is not None
    assert request.attributes["http.route"] == "/fan"
    assert request.attributes["http.response.status_code"] == 200
    # three task spans under the request, from fork to completion; the slow one cut
    tasks = {span.attributes["webpipe.async"]: span for span in spans
             if span.attributes and "webpipe.async" in span.attributes}
    assert set(tasks) == {"a", "b", "c"}
    assert all(parent_id(task) == request.context.span_id for task in tasks.values())
    assert tasks["a"].name == "fetch app.wp:2" and tasks["c"].name == "fetch app.wp:4"
    assert tasks["a"].status.status_code is StatusCode.UNSET
    assert tasks["c"].status.status_code is StatusCode.ERROR
    assert tasks["c"].status.description == "timeout"
    # the join shows the wait: it starts after the forks and lasts the deadline
    (join,) = by_name(spans, "join app.wp:5")
    assert parent_id(join) == request.context.span_id
    assert join.attributes is not None and list(join.attributes["webpipe.join"]) == [
        "a", "b", "c"]
    assert join.start_time is not None and join.end_time is not None
    assert all(task.start_time is not None and task.start_time <= join.start_time
               for task in tasks.values())
    assert join.end_time - join.start_time >= 0.29e9
    (jq,) = by_name(spans, "jq app.wp:6")
    assert jq.attributes is not None and jq.attributes["webpipe.middleware"] == "jq"
    # the background step: a trace of its own, linked to the request
    assert background.parent is None
    assert background.context.trace_id != request.context.trace_id
    assert [link.context.span_id for link in background.links] == [request.context.span_id]
    # fetch propagates the step's context upstream
    assert upstream.traceparents["a"] == traceparent_of(tasks["a"])
    assert upstream.traceparents["bg"] == traceparent_of(background)


async def test_failfast_join_timeout_marks_the_join(
        traced: tuple[httpx.AsyncClient, InMemorySpanExporter, Upstream]) -> None:
    client, exporter, _ = traced
    response = await client.get("/late")
    assert response.json()["errors"][0]["type"] == "timeout"
    spans = exporter.get_finished_spans()
    (join,) = by_name(spans, "join app.wp:11")
    assert join.status.status_code is StatusCode.ERROR
    assert join.status.description == "timeout"
    assert join.attributes is not None and join.attributes["webpipe.error.type"] == "timeout"
    (request,) = by_name(spans, "GET /late")
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == response.status_code


async def test_step_error_marks_the_step_and_nests_called_pipelines(
        traced: tuple[httpx.AsyncClient, InMemorySpanExporter, Upstream]) -> None:
    client, exporter, _ = traced
    response = await client.get("/broken")
    assert response.json()["errors"][0]["type"] == "networkError"
    spans = exporter.get_finished_spans()
    (call,) = by_name(spans, "pipeline app.wp:14")
    (fetch,) = by_name(spans, "fetch app.wp:17")
    assert parent_id(fetch) == call.context.span_id
    assert call.attributes is not None and call.attributes["webpipe.pipeline"] == "down"
    for span in (fetch, call):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "networkError"


def test_off_without_flag_or_exporter() -> None:
    assert not otel_configured({})
    assert not otel_configured({"OTEL_SERVICE_NAME": "x"})  # a name is not an exporter
    assert not otel_configured({"OTEL_TRACES_EXPORTER": "none",
                                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert not otel_configured({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})
    assert otel_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert otel_configured({"OTEL_TRACES_EXPORTER": "console"})


def test_tracing_for_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)
    assert tracing_for(False) is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop")
    tracing: Any = tracing_for(False)
    assert isinstance(tracing, OtelTracing)
    assert tracing.provider.resource.attributes["service.name"] == "shop"
    tracing.shutdown()


def test_configured_without_the_extra_or_with_an_unknown_exporter_is_a_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(ConfigError, match="webpipe knows otlp, console, none"):
        tracing_for(False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.delitem(sys.modules, "webpipe.tracing.otel")
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'webpipe\[otel\]'"):
        tracing_for(False)


def test_the_server_does_not_import_opentelemetry() -> None:
    code = ("import sys, webpipe.server, webpipe.serve, webpipe.executor.pipeline; "
            "sys.exit(any(m.startswith('opentelemetry') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


async def test_remote_graphql_carries_the_step_traceparent(tmp_path: Path) -> None:
    seen: list[str] = []

    async def graphql(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent", ""))
        return web.json_response({"data": {"auth": "yes"}})

    upstream = web.Application()
    upstream.router.add_post("/graphql", graphql)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with loopback(upstream) as base:
        env = program_from_text(f'config graphql_up {{\n  url: "{base}/graphql"\n}}\n\n'
                                "GET /gql\n  |> graphql(up): `{ auth }`\n", base_dir=tmp_path)
        app = create_app(build_served(env), tracing=OtelTracing(provider))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            response = await client.get("/gql")
        await env.aclose()
    provider.shutdown()
    assert response.json() == {"data": {"auth": "yes"}}
    (step,) = by_name(exporter.get_finished_spans(), "graphql app.wp:6")
    assert seen == [traceparent_of(step)]


async def test_trace_and_otel_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      ) -> None:
    from webpipe.tracing.collapsed import CollapsedTracing
    from webpipe.tracing.tee import TeeTracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    env = program_from_text("GET /t\n  |> jq: `{ v: 1 }` @async(a)\n  |> join: a\n",
                            base_dir=tmp_path)
    app = create_app(build_served(env), tracing=TeeTracing(
        (CollapsedTracing(), OtelTracing(provider))))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        assert (await client.get("/t")).json() == {"async": {"a": {"v": 1}},
                                                   "asyncStatus": {"complete": True,
                                                                   "failed": [],
                                                                   "timedOut": []}}
    await env.aclose()
    provider.shutdown()
    printed = [line.rsplit(" ", 1)[0] for line in capsys.readouterr().out.splitlines()
               if line.startswith("GET")]
    assert printed == ["GET /t;jq", "GET /t;join;async:a;jq", "GET /t;join", "GET /t"]
    names = sorted(span.name for span in exporter.get_finished_spans())
    assert names == ["GET /t", "join app.wp:3", "jq app.wp:2"]
