"""Process metrics with `prometheus-client` (`webpipe serve --metrics` → `GET /metrics`).

Families (spec/tasks.md): requests by route template and status; finished tasks by route,
task name, kind and outcome; rejected tasks (no slot within `maxWaitMs`); a task duration
histogram; pending tasks and the age of the oldest pending one; `@dedup` calls by role
(shared, leader ok/error), which are not tasks. Labels are bounded: route templates and the
task names declared in the program. With `--workers N` the parent points
`PROMETHEUS_MULTIPROC_DIR` at a fresh directory before the workers start, so every worker
writes its samples there and any worker's `/metrics` page sums them all (the client's
multiprocess mode); the oldest-pending gauge is kept per worker as a start time and the
page turns the minimum into an age.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_OUTCOMES = ("ok", "error", "timeout", "cancelled", "rejected")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry()
REQUESTS = Counter("webpipe_requests", "Requests by route template and status.",
                   ["route", "status"], registry=REGISTRY)
TASKS = Counter("webpipe_tasks", "Finished tasks by route, task name, kind and outcome.",
                ["route", "task", "kind", "outcome"], registry=REGISTRY)
REJECTED = Counter("webpipe_tasks_rejected", "Tasks that got no slot within maxWaitMs.",
                   ["route", "task", "kind"], registry=REGISTRY)
DURATION = Histogram("webpipe_task_duration_seconds", "Task run time, slot wait included.",
                     ["kind"], buckets=DURATION_BUCKETS, registry=REGISTRY)
PENDING = Gauge("webpipe_tasks_pending", "Tasks started and not finished.",
                multiprocess_mode="livesum", registry=REGISTRY)
# the wall-clock start of this process's oldest pending task (+Inf when none): the page
# reports the age of the minimum over all workers
OLDEST_START = Gauge("webpipe_tasks_oldest_pending_start_seconds",
                     "Start time (Unix) of the oldest pending task; +Inf when none.",
                     multiprocess_mode="livemin", registry=REGISTRY)
DEDUP = Counter("webpipe_dedup_calls", "@dedup calls: shared a running call, or led one "
                "(leader_ok, leader_error).", ["route", "result"], registry=REGISTRY)
OLDEST_START.set(math.inf)


class Metrics:
    """The recording side used by the server and the task owner."""

    def request(self, route: str, status: int) -> None:
        REQUESTS.labels(route, str(status)).inc()

    def task(self, route: str, task: str, kind: str, outcome: str, seconds: float) -> None:
        TASKS.labels(route, task, kind, outcome).inc()
        DURATION.labels(kind).observe(seconds)
        if outcome == "rejected":
            REJECTED.labels(route, task, kind).inc()

    def pending(self, count: int, oldest_start: float | None) -> None:
        PENDING.set(count)
        OLDEST_START.set(math.inf if oldest_start is None else oldest_start)

    def dedup(self, route: str, result: str) -> None:
        DEDUP.labels(route, result).inc()

    def render(self) -> bytes:
        """The exposition page: this process's registry, or every worker's samples."""
        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start = registry.get_sample_value("webpipe_tasks_oldest_pending_start_seconds")
        age = CollectorRegistry()
        age.register(_Age(start))
        return generate_latest(registry) + generate_latest(age)


class _Age(Collector):
    """`webpipe_tasks_oldest_pending_age_seconds`, computed when the page is rendered."""

    def __init__(self, start: float | None) -> None:
        self.start = start

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age = 0.0
        if self.start is not None and math.isfinite(self.start):
            age = max(0.0, time.time() - self.start)
        yield GaugeMetricFamily("webpipe_tasks_oldest_pending_age_seconds",
                                "Age of the oldest pending task (0 when none).", value=age)


METRICS = Metrics()
