"""The middleware contract: one Protocol, prepared once at load, run per request.

This module is a leaf: it imports nothing of the executor, so the executor, every built-in
middleware and every third-party plugin depend on it and it depends on none of them. A
middleware is a class instantiated once per app with a `MiddlewareHost` (config blocks,
partials, other middleware, shared resources). `prepare(config, span)` compiles the step's
config at load time and returns an opaque object; `run(state, prepared, call)` does the work
per request and returns a `StepResult`. The executor applies the state rule named by
`behavior` (spec/reference/language.md §6.3); middleware never touch the pipeline state
themselves. Every optional capability (`sync`/`run_sync`, `input_keys`, `rerunnable`,
`config_keys`, `check`, `plan_step`, `dedup_identity`, `hedgeable`/`hedge_method`, `reset`,
`aclose`) is a declared member of the `Middleware` Protocol with its "not offered" default
in `BaseMiddleware`: the executor reads members, it never probes for them. Failures: raise
`StepError` for an execution failure (a branchable `<step>Error` envelope), `HardError` to
abort the request; domain errors are returned as envelopes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from webpipe.errors import Diagnostic
from webpipe.limits import Limits, limits_of
from webpipe.source import Span

if TYPE_CHECKING:
    from webpipe.sandbox.pool import SandboxPool
    from webpipe.syntax.nodes import MiddlewareStep
    from webpipe.tracing import Tracer

JSON = Any  # a JSON value: None | bool | int | float | str | list[JSON] | dict[str, JSON]


class Behavior(enum.Enum):
    """How a step's value becomes the next state (spec/reference/language.md §6.3)."""

    MERGE = "merge"
    TRANSFORM = "transform"
    RENDER = "render"


class RequestView(Protocol):
    """What a middleware may read (and the few sections it may add) of the request being
    run; the executor's `RequestContext` is one."""

    request: JSON | None
    env_name: str | None
    flags: dict[str, bool]
    conditions: dict[str, bool]
    sections: dict[str, JSON]  # `$context` sections a step adds (cache, log, rate_limit)
    call_log: dict[str, list[JSON]] | None
    stdin: bytes | None
    extras: dict[str, Any]
    tracer: Tracer | None

    def context_json(self) -> dict[str, JSON]: ...


@dataclass(slots=True)
class StepCall:
    """Everything a middleware may need about the step being run, in one object (read-only
    by convention: not frozen, because a frozen dataclass costs twice as much to build and
    one is built per step)."""

    name: str
    config: str
    args: tuple[JSON, ...] = ()
    target: str | None = None
    span: Span | None = None
    ctx: RequestView | None = None
    timeout_ms: int | None = None  # the step's `@timeout(ms)`, for middleware that bound runs


@dataclass(slots=True)
class StepResult:
    """A middleware's output value and the content type it reports."""

    value: JSON
    content_type: str = "application/json"
    cache_hit: bool = False
    status: int | None = None
    # request keys a nested pipeline's state rules carried along (spec/server.md §6)
    restored: frozenset[str] = frozenset()


class PlannedStep(Protocol):
    """What a `plan_step` hook may read and rewrite of a step's load-time plan."""

    step: MiddlewareStep
    config: str
    prepared: object
    args: tuple[Any, ...]  # compiled inline arguments
    arg_error: str | None
    written_in: Span | None  # the node the config text is written in (step or variable)


class MiddlewareHost(Protocol):
    """What the app offers a middleware at construction time."""

    @property
    def base_dir(self) -> Path: ...

    def config_block(self, name: str) -> Mapping[str, JSON] | None:
        """The resolved `config NAME { }` block, or None when absent/unresolvable."""
        ...

    def variables_of(self, kind: str) -> Mapping[str, str]:
        """Variables of one TYPE (e.g. handlebars partials), imported ones as `alias/name`."""
        ...

    def middleware(self, name: str) -> Middleware:
        """Another middleware of the same app (lua's executeSql uses pg)."""
        ...

    @property
    def limits(self) -> Limits:
        """The app's `config limits { }` (spec/limits.md)."""
        ...

    def sandbox(self) -> SandboxPool:
        """The app's sandbox workers for embedded code (spec/sandbox.md)."""
        ...


class Middleware(Protocol):
    """One built-in or third-party middleware. The first five members are required; the
    rest are capabilities, each with its "not offered" default in `BaseMiddleware`."""

    behavior: ClassVar[Behavior]
    wraps_data: ClassVar[bool]  # pg/fetch/graphql: a target name wraps the value under .data
    content_type: ClassVar[str]

    def prepare(self, config: str, span: Span | None) -> object: ...

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult: ...

    # whether `run_sync` is offered: short pure CPU work (jq, handlebars) the step loop may
    # call without a coroutine. Same contract and result as `run` (mocks, `@dedup` and
    # tasks still go through `run`); it may raise `RunAsync` to hand a call over to `run`.
    sync: ClassVar[bool]
    # running a step twice for one request leaves no trace (spec/http.md: partial requests)
    rerunnable: ClassVar[bool]
    # a `run_sync` call leaves no trace outside the request (the state it returns, the
    # request's context), so one whose answer is dropped may be tried again: the
    # connection may try a route's steps and fall back to the usual path (spec/http.md)
    tryable: ClassVar[bool]
    # the keys of its `config NAME { }` block, None when it reads no block (check warns
    # about any other key)
    config_keys: ClassVar[frozenset[str] | None]
    # `@hedge` may race copies of this step's calls (see `hedge_method`)
    hedgeable: ClassVar[bool]
    # whether `run_pure` is offered (jq): a `run_sync` of a Transform step whose result is
    # only a value, no content type, status or restored keys of its own
    pure: ClassVar[bool]
    # it bounds a run by `StepCall.timeout_ms` (the step's `@timeout`) itself, with an error
    # of its own (graphql's `timeoutError`): the executor's guard then waits a little longer
    # so that error, not the generic `timeout`, is the one reported
    times_itself: ClassVar[bool]

    def run_sync(self, state: JSON, prepared: object, call: StepCall) -> StepResult: ...

    def run_pure(self, state: JSON, prepared: object, ctx: RequestView | None) -> JSON:
        """`run_sync`'s value, for a plain body's step (no arguments, no tags, no target)
        called without a `StepCall` or a `StepResult`: the same contract otherwise (it may
        raise `RunAsync` or `StepError`)."""
        ...

    def input_keys(self, prepared: object) -> frozenset[str] | None:
        """The top-level state keys a step can read; None when it may read anything."""
        ...

    def check(self, prepared: object, config: str, span: Span) -> list[Diagnostic]:
        """Static problems of one prepared step that `prepare` does not refuse."""
        ...

    def plan_step(self, plan: PlannedStep) -> None:
        """Load-time hook on a step's plan (graphql reads its raw arguments)."""
        ...

    def dedup_identity(self, state: JSON, prepared: object, call: StepCall,
                       ) -> tuple[JSON, JSON] | None:
        """`@dedup`: (what the call would do, its credentials); None: the generic key."""
        ...

    def hedge_method(self, state: JSON, prepared: object, call: StepCall) -> str:
        """`@hedge` on a `hedgeable` middleware: the HTTP method this call would send."""
        ...

    async def reset(self) -> None:
        """Forget in-process state (the test runner: each test starts fresh)."""
        ...

    async def aclose(self) -> None:
        """Release resources (pools, sessions) at app shutdown."""
        ...


MEMBERS = ("behavior", "wraps_data", "content_type", "prepare", "run", "sync", "rerunnable",
           "tryable", "config_keys", "hedgeable", "pure", "times_itself", "run_sync",
           "run_pure",
           "input_keys", "check", "plan_step", "dedup_identity", "hedge_method", "reset",
           "aclose")


class RunAsync(Exception):
    """Raised by `run_sync` before doing anything visible: this call must go through `run`."""


class BaseMiddleware:
    """The base every middleware subclasses (built-in or plugin): stores the host, keeps
    the config text as the prepared value, and offers no optional capability."""

    behavior: ClassVar[Behavior] = Behavior.MERGE
    wraps_data: ClassVar[bool] = False
    content_type: ClassVar[str] = "application/json"
    sync: ClassVar[bool] = False
    rerunnable: ClassVar[bool] = False
    tryable: ClassVar[bool] = False
    config_keys: ClassVar[frozenset[str] | None] = None
    hedgeable: ClassVar[bool] = False
    pure: ClassVar[bool] = False
    times_itself: ClassVar[bool] = False

    _limits: Limits | None = None

    def __init__(self, host: MiddlewareHost) -> None:
        self.host = host

    @property
    def limits(self) -> Limits:
        """The app's `config limits` (read on first use: the host is complete by then)."""
        if self._limits is None:
            self._limits = limits_of(self.host)
        return self._limits

    def prepare(self, config: str, span: Span | None) -> object:
        return config

    def run_sync(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        raise RunAsync

    def run_pure(self, state: JSON, prepared: object, ctx: RequestView | None) -> JSON:
        raise RunAsync

    def input_keys(self, prepared: object) -> frozenset[str] | None:
        return None

    def check(self, prepared: object, config: str, span: Span) -> list[Diagnostic]:
        return []

    def plan_step(self, plan: PlannedStep) -> None:
        return None

    def dedup_identity(self, state: JSON, prepared: object, call: StepCall,
                       ) -> tuple[JSON, JSON] | None:
        return None

    def hedge_method(self, state: JSON, prepared: object, call: StepCall) -> str:
        raise NotImplementedError(f"{type(self).__name__} is not hedgeable")

    async def reset(self) -> None:
        """Forget in-process state (nothing by default)."""

    async def aclose(self) -> None:
        """Release resources (pools, sessions) at app shutdown."""
