"""`--trace` and OpenTelemetry at once: every hook goes to each tracer in turn."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from webpipe.tracing import Tracer, Tracing

if TYPE_CHECKING:
    from webpipe.executor.compiled import Compiled
    from webpipe.executor.env import Env
    from webpipe.executor.plan import StepPlan


class TeeTracing:
    """Several `Tracing`s; a request gets one `TeeTracer` over one tracer of each."""

    def __init__(self, parts: tuple[Tracing, ...]) -> None:
        self.parts = parts

    def begin(self, method: str, path: str, route: str, headers: Mapping[str, str],
              env: Env) -> Tracer:
        return TeeTracer(tuple(p.begin(method, path, route, headers, env) for p in self.parts))

    def job(self, plan: StepPlan, carrier: Mapping[str, str] | None, env: Env,
            ) -> Tracer | None:
        jobs = tuple(t for t in (p.job(plan, carrier, env) for p in self.parts)
                     if t is not None)
        return TeeTracer(jobs) if jobs else None

    def shutdown(self) -> None:
        for part in self.parts:
            part.shutdown()


class TeeTracer:
    def __init__(self, parts: tuple[Tracer, ...]) -> None:
        self.parts = parts

    def step_started(self, step: Compiled) -> object:
        return tuple(p.step_started(step) for p in self.parts)

    def step_ended(self, token: object, state: Any) -> None:
        assert isinstance(token, tuple)
        for part, one in zip(self.parts, token, strict=True):
            part.step_ended(one, state)

    def task_forked(self, kind: str, plan: StepPlan) -> Tracer | None:
        forked = tuple(t for t in (p.task_forked(kind, plan) for p in self.parts)
                       if t is not None)
        return TeeTracer(forked) if forked else None

    def task_ended(self, value: Any) -> None:
        for part in self.parts:
            part.task_ended(value)

    def joined(self, names: tuple[str, ...]) -> None:
        for part in self.parts:
            part.joined(names)

    def inject(self, headers: MutableMapping[str, str]) -> None:
        for part in self.parts:
            part.inject(headers)

    def request_ended(self, status: int) -> None:
        for part in self.parts:
            part.request_ended(status)
