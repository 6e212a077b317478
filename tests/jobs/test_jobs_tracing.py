"""OpenTelemetry across a durable job (issue 21, outcome 2): a real `webpipe serve` with
`OTEL_TRACES_EXPORTER=console` continues the client's trace for the request, and the job
its consumer runs later is a span of its own trace, linked to the request's span."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hostile.harness import serve
from tests.jobs.apps import app_text
from tests.jobs.support import Hooks, until

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def console_spans(log: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (indented JSON objects) among other lines."""
    decoder = json.JSONDecoder()
    spans = []
    at = log.find('{\n    "name"')
    while at != -1:
        span, end = decoder.raw_decode(log, at)
        spans.append(span)
        at = log.find('{\n    "name"', end)
    return spans


async def test_a_durable_job_span_is_linked_to_its_request(
        tmp_path: Path, db_url: str, hooks: Hooks,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    async with serve(tmp_path, app_text(hooks.base)) as served:
        async with httpx.AsyncClient(base_url=served.base) as client:
            r = await client.post("/signup", json={"k": "ann"}, headers={
                "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
        assert r.status_code == 200
        await until(lambda: len(hooks.bodies) == 1)
        await served.stop(15)  # the provider's shutdown flushes the last spans
    spans = console_spans(served.log.read_text())
    (request,) = [s for s in spans if s["name"] == "POST /signup"]
    (job,) = [s for s in spans if s["attributes"].get("webpipe.durable")]
    assert request["context"]["trace_id"] == f"0x{TRACE_ID}"
    # named like the envelopes' locations: the file as the command line gave it
    assert job["name"] == f"pipeline {tmp_path / 'app.wp'}:15"
    assert job["kind"] == "SpanKind.CONSUMER" and job["parent_id"] is None
    assert job["context"]["trace_id"] != request["context"]["trace_id"]
    assert [link["context"]["span_id"] for link in job["links"]] == [
        request["context"]["span_id"]]
    # the job's own steps are its children
    children = [s for s in spans if s["parent_id"] == job["context"]["span_id"]]
    assert [s["name"].split()[0] for s in children] == ["jq", "fetch"]
