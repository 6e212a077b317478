"""Finished tasks and answered requests are counted only while an app of the process
serves `/metrics` (`Metrics.served`, set by `create_app(..., metrics=True)`): nothing could
read them otherwise, and counting costs each `@async` branch ~2 µs, each request ~0.6."""

from __future__ import annotations

from webpipe.metrics import Metrics
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app


def counted(metrics: Metrics) -> float | None:
    value = metrics.load().registry.get_sample_value(
        "webpipe_tasks_total", {"route": "GET /a", "task": "t", "kind": "async",
                                "outcome": "ok"})
    return None if value is None else float(value)


def test_tasks_are_counted_once_metrics_are_served() -> None:
    metrics = Metrics()
    metrics.task("GET /a", "t", "async", "ok", 0.01)
    assert counted(metrics) is None
    metrics.served = True
    metrics.task("GET /a", "t", "async", "ok", 0.01)
    metrics.task("GET /a", "t", "async", "ok", 0.01)
    assert counted(metrics) == 2.0


def requests_counted(metrics: Metrics) -> float | None:
    value = metrics.load().registry.get_sample_value(
        "webpipe_requests_total", {"route": "GET /r", "status": "200"})
    return None if value is None else float(value)


def test_requests_are_counted_once_metrics_are_served() -> None:
    metrics = Metrics()
    metrics.request("GET /r", 200)
    assert requests_counted(metrics) is None
    metrics.served = True
    metrics.request("GET /r", 200)
    assert requests_counted(metrics) == 1.0


def test_an_app_serving_metrics_turns_counting_on() -> None:
    from webpipe.metrics import METRICS

    was = METRICS.served
    METRICS.served = False  # as in a fresh process
    try:
        served = build_served(program_from_text("GET /a\n  |> jq: `1`\n"))
        create_app(served)
        assert not METRICS.served
        create_app(served, metrics=True)
        assert METRICS.served
    finally:
        METRICS.served = was or METRICS.served
