"""The middleware contract: one Protocol, prepared once at load, run per request.

A middleware is a class instantiated once per app with a `MiddlewareHost` (config blocks,
partials, other middleware, shared resources). `prepare(config, span)` compiles the step's
config at load time and returns an opaque object; `run(state, prepared, call)` does the work
per request and returns a `StepResult`. The executor applies the state rule named by
`behavior` (spec/language.md §6.3); middleware never touch the pipeline state themselves.

Failures: raise `StepError` for an execution failure (it becomes a branchable `<step>Error`
envelope), `HardError` to abort the request. Domain errors are returned as envelopes.

Optional members, read with `getattr` (third-party middleware need none of them):
`run_sync(state, prepared, call)` (see `SyncMiddleware`), `input_keys(prepared)` (the
top-level keys of its input a step can read, None when it may read anything: lets the server
build a partial request object) and `rerunnable: ClassVar[bool]` (running a step twice for
one request leaves no trace). See spec/decisions.md and spec/http.md.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from webpipe.limits import Limits, limits_of
from webpipe.source import Span

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.sandbox.pool import SandboxPool

JSON = Any  # a JSON value: None | bool | int | float | str | list[JSON] | dict[str, JSON]


class Behavior(enum.Enum):
    """How a step's value becomes the next state (spec/language.md §6.3)."""

    MERGE = "merge"
    TRANSFORM = "transform"
    RENDER = "render"


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
    ctx: RequestContext | None = None
    timeout_ms: int | None = None  # the step's `@timeout(ms)`, for middleware that bound runs


@dataclass(slots=True)
class StepResult:
    """A middleware's output value and the content type it reports."""

    value: JSON
    content_type: str = "application/json"
    cache_hit: bool = False
    status: int | None = None


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
    """One built-in or third-party middleware (see module docstring)."""

    behavior: ClassVar[Behavior]
    wraps_data: ClassVar[bool]  # pg/fetch/graphql: a target name wraps the value under .data
    content_type: ClassVar[str]

    def prepare(self, config: str, span: Span | None) -> object: ...

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult: ...


class RunAsync(Exception):
    """Raised by `run_sync` before doing anything visible: this call must go through `run`."""


class SyncMiddleware(Protocol):
    """Optional: a middleware whose work is short, pure CPU (jq, handlebars) may also offer
    `run_sync`, same contract as `run`; the step loop then calls it without a coroutine.
    `run` must stay and give the same result (mocks, `@dedup` and tasks go through it).
    `run_sync` may raise `RunAsync` to hand a call over to `run` (Lua over its budget)."""

    def run_sync(self, state: JSON, prepared: object, call: StepCall) -> StepResult: ...


class BaseMiddleware:
    """Convenience base: stores the host; prepare() keeps the config text as is."""

    behavior: ClassVar[Behavior] = Behavior.MERGE
    wraps_data: ClassVar[bool] = False
    content_type: ClassVar[str] = "application/json"

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

    async def aclose(self) -> None:
        """Release resources (pools, sessions) at app shutdown."""
