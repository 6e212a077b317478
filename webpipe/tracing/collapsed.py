"""`--trace`: per-request step timings as collapsed stacks, the reference's format.

Each request prints one block on stdout when it has its answer:

    (empty line)
    # speedscope trace start
    GET /hello/world;pipeline:greet;jq 41
    GET /hello/world;pipeline:greet 95
    GET /hello/world 260
    # speedscope trace end
    (empty line)

One line per step, in the order the steps ended: the frames from the route (`METHOD path` as
requested) through the called pipelines to the step, then its wall time in whole µs. A step
from an imported file carries `@file.wp`. An `@async` task's lines are added when a `join`
collects it, under the join's frames and `async:NAME`. speedscope opens the text between
the markers (spec/tracing.md).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, MutableMapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from webpipe.tracing import Tracer, step_label

if TYPE_CHECKING:
    from webpipe.executor.compiled import Compiled
    from webpipe.executor.env import Env
    from webpipe.executor.plan import StepPlan
    from webpipe.source import Source
    from webpipe.syntax import nodes as n

START = "# speedscope trace start"
END = "# speedscope trace end"


class CollapsedTracing:
    """The app side of `--trace`: a `CollapsedTracer` per request."""

    def begin(self, method: str, path: str, route: str, headers: Mapping[str, str],
              env: Env) -> Tracer:
        return CollapsedTracer(env.index.main.source, [f"{method} {path}"], root=True)

    def job(self, plan: StepPlan, carrier: Mapping[str, str] | None, env: Env,
            ) -> Tracer | None:
        return None  # a job runs after its request's block was printed

    def shutdown(self) -> None:
        sys.stdout.flush()


class CollapsedTracer:
    """The frames and samples of one request, or of one `@async` task of it."""

    def __init__(self, main: Source, stack: list[str], *, root: bool = False,
                 task_label: str | None = None) -> None:
        self.main = main
        self.stack = stack
        self.samples: list[tuple[str, int]] = []
        self.tasks: dict[str, CollapsedTracer] = {}
        self.root = root
        self.task_label = task_label  # a raw middleware task: its own single sample
        self.started = time.perf_counter_ns()

    def label(self, step: n.Step) -> str:
        label = step_label(step)
        source = step.span.source
        if source is not self.main:  # the reference marks steps of imported files
            label = f"{label}@{PurePath(source.name).name}"
        return label

    def step_started(self, step: Compiled) -> object:
        self.stack.append(self.label(step.node))
        return time.perf_counter_ns()

    def step_ended(self, token: object, state: Any) -> None:
        assert isinstance(token, int)
        self.record((time.perf_counter_ns() - token) // 1000)
        self.stack.pop()

    def record(self, micros: int) -> None:
        if self.stack:
            self.samples.append((";".join(self.stack), micros))

    def task_forked(self, kind: str, plan: StepPlan) -> Tracer | None:
        if kind != "async":
            return None  # background work ends after the request's block is printed
        # a pipeline task's steps record themselves; a middleware call is one sample
        own = None if plan.kind == "pipeline" else self.label(plan.step)
        child = CollapsedTracer(self.main, [], task_label=own)
        self.tasks[plan.tags.async_name or "task"] = child
        return child

    def task_ended(self, value: Any) -> None:
        if self.task_label is not None:
            micros = (time.perf_counter_ns() - self.started) // 1000
            self.samples.append((self.task_label, micros))

    def joined(self, names: tuple[str, ...]) -> None:
        for name in names:
            child = self.tasks.pop(name, None)
            if child is None:
                continue
            prefix = ";".join([*self.stack, f"async:{name}"])
            self.samples.extend((f"{prefix};{stack}", micros)
                                for stack, micros in child.samples)

    def inject(self, headers: MutableMapping[str, str]) -> None:
        return None  # collapsed stacks have no trace context to propagate

    def request_ended(self, status: int) -> None:
        if not self.root:
            return  # a task's end (`end_request` of its context): `task_ended` recorded it
        self.record((time.perf_counter_ns() - self.started) // 1000)
        lines = "".join(f"{stack} {micros}\n" for stack, micros in self.samples)
        # one write per request, so concurrent requests' blocks never interleave
        sys.stdout.write(f"\n{START}\n{lines}{END}\n\n")
        sys.stdout.flush()
