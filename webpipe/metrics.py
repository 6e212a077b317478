"""Process metrics with `prometheus-client` (`webpipe serve --metrics` → `GET /metrics`).

Families (spec/tasks.md §9): requests by route template and status; finished tasks by
route, task name, kind and outcome; rejected tasks (no slot within `maxWaitMs`); a task
duration histogram; pending tasks and the age of the oldest pending one; `@dedup` calls by
role (shared, leader ok/error), which are not tasks; `@hedge` calls by winning copy and the
extra copies sent; each `fetch` circuit breaker's state per upstream host. Labels are
bounded: route templates, the task names declared in the program, upstream hosts. With
`--workers N` the parent points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory before the
workers start, so every worker writes its samples there and any worker's `/metrics` page
sums them all (the client's multiprocess mode); the oldest-pending gauge is kept per worker
as a start time and the page turns the minimum into an age. The client is imported on first
use (~100 ms, most of it its HTTP exposition helpers), so `check`, `fmt` and `test` never
pay for it; the server loads it at startup (`Metrics.load`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_OUTCOMES = ("ok", "error", "timeout", "cancelled", "rejected")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class _Families:
    registry: Any
    requests: Any
    tasks: Any
    rejected: Any
    duration: Any
    pending: Any
    oldest_start: Any
    dedup: Any
    hedges: Any
    hedge_copies: Any
    breaker: Any
    jobs: Any
    job_depth: Any
    job_age: Any


def _families() -> _Families:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    r = CollectorRegistry()
    out = _Families(
        r,
        Counter("webpipe_requests", "Requests by route template and status.",
                ["route", "status"], registry=r),
        Counter("webpipe_tasks", "Finished tasks by route, task name, kind and outcome.",
                ["route", "task", "kind", "outcome"], registry=r),
        Counter("webpipe_tasks_rejected", "Tasks that got no slot within maxWaitMs.",
                ["route", "task", "kind"], registry=r),
        Histogram("webpipe_task_duration_seconds", "Task run time, slot wait included.",
                  ["kind"], buckets=DURATION_BUCKETS, registry=r),
        Gauge("webpipe_tasks_pending", "Tasks started and not finished.",
              multiprocess_mode="livesum", registry=r),
        # the wall-clock start of this process's oldest pending task (+Inf when none): the
        # page reports the age of the minimum over all workers
        Gauge("webpipe_tasks_oldest_pending_start_seconds",
              "Start time (Unix) of the oldest pending task; +Inf when none.",
              multiprocess_mode="livemin", registry=r),
        Counter("webpipe_dedup_calls", "@dedup calls: shared a running call, or led one "
                "(leader_ok, leader_error).", ["route", "result"], registry=r),
        Counter("webpipe_hedged_calls", "@hedge calls by the copy that won (first, hedge, "
                "none: every copy failed).", ["route", "winner"], registry=r),
        Counter("webpipe_hedge_copies", "Extra copies @hedge sent after the first.",
                ["route"], registry=r),
        # per upstream host: 0 closed, 1 open, 2 half-open; each worker its own (liveall)
        Gauge("webpipe_breaker_state", "Circuit breaker state per upstream host "
              "(0 closed, 1 open, 2 half-open).", ["host"], multiprocess_mode="liveall",
              registry=r),
        Counter("webpipe_jobs", "Durable jobs by step (file:line) and event: enqueued, "
                "started, succeeded, failed (an attempt), dead_lettered.",
                ["step", "event"], registry=r),
        # read from the shared database by each consumer: every process sees the same value
        Gauge("webpipe_jobs_queue_depth", "Jobs queued (not yet picked).",
              multiprocess_mode="max", registry=r),
        Gauge("webpipe_jobs_oldest_queued_age_seconds",
              "Age of the oldest queued job (0 when none).", multiprocess_mode="max",
              registry=r))
    out.oldest_start.set(math.inf)
    return out


class Metrics:
    """The recording side used by the server and the task owner."""

    def __init__(self) -> None:
        self._f: _Families | None = None
        # labelled children by label values: `labels()` validates and joins the label
        # values on every call (~2-3 µs), a dict hit ~0.1 µs; children live as long as
        # their family does (the label sets are bounded: route templates, statuses, tasks)
        self._requests: dict[tuple[str, int], Any] = {}
        self._task_children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        # an app of this process serves `/metrics` (`--metrics`): finished tasks and answered
        # requests are counted only then, since no page could show them otherwise (~2 µs
        # per `@async` branch, ~0.6 µs per request)
        self.served = False

    def load(self) -> _Families:
        if self._f is None:
            self._f = _families()
        return self._f

    def request(self, route: str, status: int) -> None:
        """A request answered; a no-op unless a page serves the metrics (`served`): the
        counter's lock and increment cost ~0.6 µs of every request."""
        if not self.served:
            return
        child = self._requests.get((route, status))
        if child is None:
            child = self._requests[route, status] = \
                self.load().requests.labels(route, str(status))
        child.inc()

    def task(self, route: str, task: str, kind: str, outcome: str, seconds: float) -> None:
        """A counted task ended; a no-op unless a page serves the metrics (`served`)."""
        if not self.served:
            return
        key = (route, task, kind, outcome)
        children = self._task_children.get(key)
        if children is None:
            f = self.load()
            children = self._task_children[key] = (f.tasks.labels(*key),
                                                   f.duration.labels(kind))
        children[0].inc()
        children[1].observe(seconds)
        if outcome == "rejected":
            self.load().rejected.labels(route, task, kind).inc()

    def pending(self, count: int, oldest_start: float | None) -> None:
        f = self.load()
        f.pending.set(count)
        f.oldest_start.set(math.inf if oldest_start is None else oldest_start)

    def read_pending(self, count: Callable[[], int],
                     oldest_start: Callable[[], float | None]) -> bool:
        """One process (no `PROMETHEUS_MULTIPROC_DIR`): the pending gauges read `count` and
        `oldest_start` when the page is rendered, so starting and ending a task writes
        nothing (two locked writes each). False under `--workers N`, where each worker must
        write its samples (`pending()`) for the others' pages to read them."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return False
        f = self.load()
        f.pending.set_function(lambda: float(count()))
        f.oldest_start.set_function(lambda: _or_inf(oldest_start()))
        return True

    def dedup(self, route: str, result: str) -> None:
        self.load().dedup.labels(route, result).inc()

    def hedge(self, route: str, winner: str, extra_copies: int) -> None:
        f = self.load()
        f.hedges.labels(route, winner).inc()
        if extra_copies:
            f.hedge_copies.labels(route).inc(extra_copies)

    def breaker(self, host: str, state: int) -> None:
        self.load().breaker.labels(host).set(state)

    def job(self, step: str, event: str) -> None:
        self.load().jobs.labels(step, event).inc()

    def job_queue(self, depth: int, oldest_age_s: float) -> None:
        f = self.load()
        f.job_depth.set(depth)
        f.job_age.set(oldest_age_s)

    def render(self) -> bytes:
        """The exposition page: this process's registry, or every worker's samples."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = self.load().registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start = registry.get_sample_value("webpipe_tasks_oldest_pending_start_seconds")
        age = CollectorRegistry()
        age.register(_age_collector(start))
        return bytes(generate_latest(registry) + generate_latest(age))


def _or_inf(start: float | None) -> float:
    return math.inf if start is None else start


def _age_collector(start: float | None) -> Any:
    """`webpipe_tasks_oldest_pending_age_seconds`, computed when the page is rendered."""
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector

    class Age(Collector):
        def collect(self) -> Iterator[GaugeMetricFamily]:
            age = 0.0
            if start is not None and math.isfinite(start):
                age = max(0.0, time.time() - start)
            yield GaugeMetricFamily("webpipe_tasks_oldest_pending_age_seconds",
                                    "Age of the oldest pending task (0 when none).", value=age)

    return Age()


METRICS = Metrics()
