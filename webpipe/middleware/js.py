"""The `js` middleware: run a JavaScript snippet, its return value becomes the state.

Spec: spec/js.md. The snippet is the body of a strict-mode function of `request` (the
state) and `context` (the read-only `$context`); `return` gives the new state, `undefined`
becomes `null`. Every run goes to a sandbox worker (`webpipe/sandbox/js_handler.py`,
QuickJS) under `config limits { jsTimeoutMs, jsMemoryMb }` (a step's `@timeout(ms)`
overrides the time); there is no inline tier, since QuickJS has no cheap interruptible
mode that may call back into Python. `executeSql` is served by the run's callback through
the app's `pg` middleware. `prepare()` compiles the snippet once at load, so a syntax error
stops the program with the `.wp` line; run-time errors are `jsError` envelopes naming the
`.wp` line the script failed on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

from webpipe.errors import ConfigError, StepError, WebpipeError
from webpipe.executor.context import RequestContext
from webpipe.limits import limits_of
from webpipe.middleware.base import (
    JSON,
    BaseMiddleware,
    Behavior,
    MiddlewareHost,
    StepCall,
    StepResult,
)
from webpipe.source import Span


class SqlExecutor(Protocol):
    async def execute_sql(self, sql: str, params: list[JSON]) -> dict[str, JSON]: ...


class JsSnippet:
    """A step's source and where its first line is in the `.wp` file."""

    __slots__ = ("first_line", "source", "span")

    def __init__(self, source: str, span: Span | None) -> None:
        self.source = source
        self.span = span
        self.first_line = _first_line(source, span)


def scripts_dir() -> Path:
    """`$WEBPIPE_SCRIPTS_DIR`, default `scripts` relative to the working directory."""
    return Path(os.environ.get("WEBPIPE_SCRIPTS_DIR") or "scripts")


def load_js_scripts(directory: Path) -> dict[str, str]:
    """Every `*.js` file directly in `directory` (stem → source); symlinks must stay inside."""
    if not directory.is_dir():
        return {}
    root = directory.resolve()
    return {path.stem: path.read_text(encoding="utf-8")
            for path in sorted(directory.iterdir())
            if path.suffix.lower() == ".js" and path.stem and path.is_file()
            and path.resolve().is_relative_to(root)}


class JsMiddleware(BaseMiddleware):
    """`|> js: `...`` — see the module docstring."""

    behavior: ClassVar[Behavior] = Behavior.TRANSFORM

    def __init__(self, host: MiddlewareHost) -> None:
        super().__init__(host)
        self.scripts = load_js_scripts(scripts_dir())  # read once at startup, like Lua's

    def prepare(self, config: str, span: Span | None) -> JsSnippet:
        snippet = JsSnippet(config, span)
        error = _syntax_error(config)
        if error is not None:
            message, line = error
            raise ConfigError(f"JavaScript syntax error: {message}",
                              span=_line_span(snippet, line),
                              at=_line_at(config, line, message))
        return snippet

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        from webpipe.sandbox.pool import SandboxError

        assert isinstance(prepared, JsSnippet), "prepare() output expected"
        ctx = call.ctx if call.ctx is not None else RequestContext()
        limits = limits_of(self.host)
        timeout_ms = call.timeout_ms or limits.js_timeout_ms
        payload = {"source": prepared.source, "request": state, "context": ctx.context_json(),
                   "flags": dict(ctx.flags), "conditions": dict(ctx.conditions),
                   "scripts": self.scripts, "memory_mb": limits.js_memory_mb}
        try:
            answer = await self.host.sandbox().run(
                "js", payload, timeout_s=timeout_ms / 1000, memory_mb=limits.js_memory_mb,
                callback=self._callback)
        except SandboxError as exc:
            raise _error(exc, prepared, timeout_ms, limits.js_memory_mb) from None
        ctx.flags.update(answer.get("flags") or {})
        ctx.conditions.update(answer.get("conditions") or {})
        return StepResult(answer.get("value"))

    async def _callback(self, name: str, payload: Any) -> JSON:
        if name != "executeSql":
            raise ValueError(f"unknown callback {name!r}")
        try:
            pg = cast(SqlExecutor, self.host.middleware("pg"))
        except KeyError:
            raise ValueError("database not configured") from None
        try:
            return await pg.execute_sql(payload["sql"], list(payload["params"]))
        except WebpipeError as exc:
            raise ValueError(exc.message) from None


def _error(exc: Exception, snippet: JsSnippet, timeout_ms: int, memory_mb: int) -> StepError:
    from webpipe.sandbox.pool import SandboxLimit, SandboxMemory, SandboxTimeout

    if isinstance(exc, SandboxTimeout):
        return StepError(f"JavaScript exceeded its {timeout_ms} ms time budget",
                         error_type="timeout")
    if isinstance(exc, SandboxMemory):
        return StepError(f"JavaScript exceeded its {memory_mb} MB memory budget",
                         error_type="limitError")
    if isinstance(exc, SandboxLimit):
        return StepError(f"JavaScript: {exc}", error_type="limitError")
    message, _, line = str(exc).rpartition("|")
    if not message:
        message, line = line, ""
    where = _line_span(snippet, int(line)) if line.isdigit() else None
    return StepError(f"JavaScript error: {message}" + (f" (at {where.label})" if where else ""))


def _syntax_error(source: str) -> tuple[str, int] | None:
    """Compile the snippet as the handler wraps it (nothing of it runs)."""
    import quickjs

    from webpipe.sandbox.js_handler import describe, wrap

    try:
        quickjs.Context().eval(wrap(source))
    except quickjs.JSException as exc:
        message, _, line = describe(str(exc)).rpartition("|")
        return message, int(line) if line.isdigit() else 1
    return None


def _first_line(source: str, span: Span | None) -> int | None:
    """The `.wp` line holding the snippet's first line (None without a span)."""
    if span is None:
        return None
    offset = span.source.text.find(source, span.start) if source else -1
    return span.source.position(offset)[0] if offset >= 0 else span.line


def _line_at(source: str, line: int, message: str) -> tuple[int, int, int] | None:
    """Where on line `line` of the snippet: the token QuickJS names (`…: '*'`) when it is
    on that line, else the line from its first non-blank character (QuickJS gives no
    column); the planner places it in the step or the variable (webpipe/embedded.py)."""
    lines = source.split("\n")
    if not 1 <= line <= len(lines):
        return None
    text = lines[line - 1]
    token = re.search(r": '([^'\n]+)'$", message)
    if token is not None and token.group(1) in text:
        return line, text.index(token.group(1)) + 1, len(token.group(1))
    return line, len(text) - len(text.lstrip()) + 1, max(1, len(text.strip()))


def _line_span(snippet: JsSnippet, line: int) -> Span | None:
    if snippet.span is None or snippet.first_line is None:
        return snippet.span
    target = snippet.first_line + max(line, 1) - 1
    lines = snippet.span.source.text.split("\n")
    offset = sum(len(text) + 1 for text in lines[:target - 1])
    if target <= len(lines):  # at the line's first non-blank character
        text = lines[target - 1]
        offset += len(text) - len(text.lstrip())
    return snippet.span.source.span(offset, offset)
