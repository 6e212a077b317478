"""Debugger threads: one per request (or `@async` task, or test), its frames and stepping.

A thread is made the first time a request runs a step under `--inspect` and kept on the
request context, so a forked context (an `@async` task) is a thread of its own. Its frames
are the route or named pipelines it is inside, innermost last; branch bodies (`if`,
`result`, `foreach`) belong to the frame around them. A paused thread awaits an
`asyncio.Event`; nothing else waits with it.

Stepping follows the usual rules on frame depth: `next` stops at the next step whose depth
is at most the current one, `stepOut` at the next step shallower than it, `stepIn` at the
very next step, `pause` at the next step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from webpipe.source import Span
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env
    from webpipe.source import Span

THREAD_KEY = "debugger.thread"  # RequestContext.extras


class Mode(Enum):
    RUN = "run"
    IN = "in"
    OVER = "over"
    OUT = "out"
    PAUSE = "pause"


@dataclass
class Frame:
    """A route, named pipeline or test the thread is inside, and the step it is at."""

    name: str
    span: Span
    step: str = ""
    is_test: bool = False


@dataclass(eq=False)
class Thread:
    id: int
    name: str
    ctx: RequestContext
    frames: list[Frame] = field(default_factory=list)
    mode: Mode = Mode.RUN
    depth: int = 0  # the depth stepping is measured against
    announced: bool = False
    # while paused: the state (setVariable replaces it), the env, and what resumes it
    state: Any = None
    env: Env | None = None
    resume: asyncio.Event | None = None
    # while paused: values the client can expand besides the state ($context, evaluations)
    roots: dict[str, Any] = field(default_factory=dict)

    @property
    def paused(self) -> bool:
        return self.resume is not None

    def stops_here(self) -> bool:
        """Whether the stepping mode asks for a stop at a step at the current depth."""
        mode = self.mode
        if mode is Mode.RUN:
            return False
        if mode is Mode.OVER:
            return len(self.frames) <= self.depth
        if mode is Mode.OUT:
            return len(self.frames) < self.depth
        return True

    def step_with(self, mode: Mode) -> None:
        """Resume in `mode`; `next` from a test's `it` line goes into the test (the test
        frame has no steps of its own to step over)."""
        if mode is Mode.OVER and self.frames and self.frames[-1].is_test:
            mode = Mode.IN
        self.mode, self.depth = mode, len(self.frames)


def step_label(step: n.Step) -> str:
    """How a frame names the step it is at."""
    match step:
        case n.MiddlewareStep(name="pipeline", config=config):
            return f"pipeline: {(config or '').strip()}"
        case n.MiddlewareStep(name=name):
            return name
        case n.ResultStep():
            return "result"
        case n.IfStep():
            return "if"
        case n.DispatchStep():
            return "dispatch"
        case n.ForeachStep(selector=selector):
            return f"foreach {selector.strip()}"
    return type(step).__name__


def frame_names(env: Env) -> dict[Span, str]:
    """The span of a body -> frame name, for every body that is a frame (routes, named pipelines,
    GraphQL resolvers, the feature-flags pipeline)."""
    names: dict[Span, str] = {}
    for module in env.index.modules:
        for item in module.program.items:
            match item:
                case n.Route(method=method, path=path, pipeline=body):
                    names[body.span] = f"{method} {path}"
                case n.NamedPipeline(name=name, pipeline=body):
                    names[body.span] = f"pipeline {name}"
                case n.Resolver(kind=kind, type_name=type_name, field_name=field_name,
                                pipeline=body):
                    label = field_name if kind != "resolver" else f"{type_name}.{field_name}"
                    names[body.span] = f"{kind} {label}"
                case n.FeatureFlags(pipeline=body):
                    names[body.span] = "featureFlags"
    return names
