"""Process metrics in the Prometheus text format (`webpipe serve --metrics` → `/metrics`).

Counters and one histogram, kept in plain dicts: requests by route and status, tasks by
outcome (ok, error, timeout, cancelled), task durations, and the pending-task gauge read from
the task owner when the page is rendered.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from itertools import accumulate

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_OUTCOMES = ("ok", "error", "timeout", "cancelled")


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.tasks: dict[str, int] = dict.fromkeys(TASK_OUTCOMES, 0)
        self.buckets = [0] * len(DURATION_BUCKETS)  # per bucket, not cumulative (see render)
        self.duration_sum = 0.0
        self.duration_count = 0

    def request(self, route: str, status: int) -> None:
        self.requests[route, status] += 1

    def task(self, outcome: str, seconds: float) -> None:
        self.tasks[outcome] = self.tasks.get(outcome, 0) + 1
        self.duration_sum += seconds
        self.duration_count += 1
        index = bisect_left(DURATION_BUCKETS, seconds)  # the first bound >= seconds
        if index < len(DURATION_BUCKETS):
            self.buckets[index] += 1

    def render(self, pending: Callable[[], int]) -> str:
        lines = ["# HELP webpipe_tasks_pending Tasks owned by the process and not finished.",
                 "# TYPE webpipe_tasks_pending gauge", f"webpipe_tasks_pending {pending()}",
                 "# HELP webpipe_tasks_total Finished tasks by outcome.",
                 "# TYPE webpipe_tasks_total counter"]
        lines += [f'webpipe_tasks_total{{outcome="{k}"}} {v}' for k, v in self.tasks.items()]
        lines += ["# HELP webpipe_task_duration_seconds Task run time.",
                  "# TYPE webpipe_task_duration_seconds histogram"]
        lines += [f'webpipe_task_duration_seconds_bucket{{le="{b}"}} {n}'
                  for b, n in zip(DURATION_BUCKETS, accumulate(self.buckets), strict=True)]
        lines += [f'webpipe_task_duration_seconds_bucket{{le="+Inf"}} {self.duration_count}',
                  f"webpipe_task_duration_seconds_sum {self.duration_sum:.6f}",
                  f"webpipe_task_duration_seconds_count {self.duration_count}",
                  "# HELP webpipe_requests_total Requests by route and status.",
                  "# TYPE webpipe_requests_total counter"]
        lines += [f'webpipe_requests_total{{route="{_escape(r)}",status="{s}"}} {n}'
                  for (r, s), n in sorted(self.requests.items())]
        return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


METRICS = Metrics()
