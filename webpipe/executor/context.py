"""Per-request execution context: flags, conditions, `$context` and the call log.

One `RequestContext` is shared by everything a request runs (called pipelines, branches,
foreach items). Async tasks get a fresh one (concurrency.md §2) that shares only the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from webpipe.executor.invoker import REAL_INVOKER, Invoker

if TYPE_CHECKING:
    from webpipe.executor.tasks import TaskRegistry
    from webpipe.tracing import Tracer

JSON = Any


@dataclass(slots=True)
class RequestContext:
    """Mutable state of one request (or one test, or one script run)."""

    request: JSON | None = None
    env_name: str | None = None
    flags: dict[str, bool] = field(default_factory=dict)
    conditions: dict[str, bool] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    options: dict[str, JSON] = field(default_factory=dict)
    # cache / log / rate_limit sections appear in $context once such a step ran
    sections: dict[str, JSON] = field(default_factory=dict)
    # test runner: recorded calls ("pipeline.NAME" -> inputs); None outside tests
    call_log: dict[str, list[JSON]] | None = None
    stdin: bytes | None = None
    invoker: Invoker = REAL_INVOKER
    # anything a subsystem needs to hang on the request
    extras: dict[str, Any] = field(default_factory=dict)
    # the route template ("GET /users/:id") the request matched: task logs and metrics
    route: str = ""
    # `--trace` / OpenTelemetry (webpipe/tracing): None unless the app traces
    tracer: Tracer | None = None
    _tasks: TaskRegistry | None = None

    @property
    def route_label(self) -> str:
        return self.route or "script"

    def adopt(self, registry: TaskRegistry) -> None:
        self._tasks = registry

    def tasks(self) -> TaskRegistry:
        """This request's task registry (created on first `@async`/`join`)."""
        if self._tasks is None:
            from webpipe.executor.tasks import TaskRegistry

            self._tasks = TaskRegistry()
        return self._tasks

    def existing_tasks(self) -> TaskRegistry | None:
        return self._tasks

    def fork(self) -> RequestContext:
        """A fresh context for an async task: shares only the invoker and environment."""
        return RequestContext(env_name=self.env_name, invoker=self.invoker,
                              call_log=self.call_log, stdin=self.stdin, route=self.route)

    def context_json(self) -> dict[str, JSON]:
        """The read-only `$context` snapshot (middleware.md §0.5)."""
        out: dict[str, JSON] = {"flags": dict(self.flags), "conditions": dict(self.conditions)}
        if self.request is not None:
            out["request"] = self.request
        if self.env_name is not None:
            out["env"] = self.env_name
        out["args"] = list(self.args)
        out["options"] = dict(self.options)
        out.update(self.sections)
        return out
