"""Per-request execution context: flags, conditions, `$context` and the call log.

One `RequestContext` is shared by everything a request runs (called pipelines, branches,
foreach items). Async tasks get a fresh one (concurrency.md §2) that shares only the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    # anything a subsystem needs to hang on the request (task registry, deferred work)
    extras: dict[str, Any] = field(default_factory=dict)

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
