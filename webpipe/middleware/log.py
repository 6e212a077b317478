"""`log`: one JSON access-log line per `log` step, written after the request (middleware.md §12).

`prepare()` resolves the effective settings once: each step key (`level`, `includeBody`,
`includeHeaders`, `enabled`, in `key: value` pairs separated by commas or newlines) falls back
to the `config log` block, then to the built-in defaults (`debug`, false, true, true). A value
that does not read as a boolean falls back too. Other keys (`format`, `maxBodySize`,
`timestamp`) are ignored, as in the reference.

At run time an enabled step records `$context.log`, captures `originalRequest` and `headers`
from the state, starts a timer, and appends an `AccessLog` to the request's after-response
hooks. The state is returned unchanged.

After-response contract (for the server, the script runner and the test runner):
`ctx.extras["after_response"]` is a list of callables `hook(final_state, status,
content_type) -> None`, appended to in step order. Whoever finishes a request calls each once,
in order, with the pipeline's final state, the response status (int) and the content type,
after the pipeline completes and before the response is sent. Hooks never raise for JSON
input. Steps inside `@async` tasks register on the task's forked context, which nobody
drains, so they print nothing (as specified).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from webpipe.config import config_bool, config_str
from webpipe.middleware.base import JSON, BaseMiddleware, Behavior, StepCall, StepResult
from webpipe.source import Span

AFTER_RESPONSE = "after_response"
AfterResponseHook = Callable[[JSON, int, str], None]

_DEFAULTS = {"level": "debug", "includeBody": False, "includeHeaders": True, "enabled": True}


@dataclass(frozen=True, slots=True)
class LogSettings:
    """The effective settings of one `log` step."""

    level: str
    include_body: bool
    include_headers: bool
    enabled: bool

    def context_json(self) -> dict[str, JSON]:
        """The `$context.log` section."""
        return {"level": self.level, "include_body": self.include_body,
                "include_headers": self.include_headers}


class LogMiddleware(BaseMiddleware):
    behavior: ClassVar[Behavior] = Behavior.MERGE
    config_keys: ClassVar[frozenset[str] | None] = frozenset({
        "level", "includeBody", "includeHeaders", "enabled"})

    def prepare(self, config: str, span: Span | None) -> LogSettings:
        return resolve_settings(parse_step_config(config), self.host.config_block("log"))

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert isinstance(prepared, LogSettings)
        if not prepared.enabled:
            return StepResult(state)
        assert call.ctx is not None, "the executor always passes a request context"
        call.ctx.sections["log"] = prepared.context_json()
        request = state.get("originalRequest") if isinstance(state, dict) else None
        has_headers = isinstance(state, dict) and "headers" in state
        hook = AccessLog(prepared, time.perf_counter_ns(), request,
                         state["headers"] if has_headers else None, has_headers)
        hooks: list[AfterResponseHook] = call.ctx.extras.setdefault(AFTER_RESPONSE, [])
        hooks.append(hook)
        return StepResult(state)


def parse_step_config(config: str) -> dict[str, str | bool]:
    """`level: info, includeBody: true` → the recognised keys; unreadable booleans are dropped."""
    out: dict[str, str | bool] = {}
    for part in config.replace("\n", ",").split(","):
        key, colon, value = part.strip().partition(":")
        key, value = key.strip(), value.strip()
        if not colon:
            continue
        if key == "level":
            out[key] = value
        elif key in ("includeBody", "includeHeaders", "enabled"):
            flag = value.lower()
            if flag in ("true", "false"):
                out[key] = flag == "true"
    return out


def resolve_settings(step: dict[str, str | bool], block: Mapping[str, Any] | None,
                     ) -> LogSettings:
    """Step keys win, then the `config log` block, then the built-in defaults."""

    def flag(key: str) -> bool:
        value = step.get(key)
        if isinstance(value, bool):
            return value
        return config_bool(block, key, bool(_DEFAULTS[key]))

    level = step.get("level")
    if not isinstance(level, str):
        level = config_str(block, "level", str(_DEFAULTS["level"])) or ""
    return LogSettings(level, flag("includeBody"), flag("includeHeaders"), flag("enabled"))


@dataclass(frozen=True, slots=True)
class AccessLog:
    """An after-response hook: prints the access-log line for one `log` step."""

    settings: LogSettings
    started_ns: int
    original_request: JSON
    headers: JSON
    has_headers: bool

    def __call__(self, final_state: JSON, status: int, content_type: str) -> None:
        sys.stdout.write(self.line(final_state, time.perf_counter_ns()) + "\n")
        sys.stdout.flush()

    def line(self, final_state: JSON, now_ns: int) -> str:
        """The compact JSON line, keys in the reference's order."""
        entry = {
            "level": self.settings.level,
            "duration_ms": max(0, now_ns - self.started_ns) // 1000 / 1000.0,
            "request": self._request(),
            "response": self._response(final_state),
        }
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)

    def _request(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {}
        if isinstance(self.original_request, dict):
            for key in ("method", "params", "query"):
                if key in self.original_request:
                    out[key] = self.original_request[key]
        if self.settings.include_headers and self.has_headers:
            out["headers"] = self.headers
        return out

    def _response(self, final_state: JSON) -> dict[str, JSON]:
        if not self.settings.include_body:
            return {}
        body = final_state
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k not in ("originalRequest", "setCookies")}
        return {"body": body}
