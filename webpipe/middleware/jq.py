"""`jq`: transform the state with a jq program (middleware.md §1).

The program is compiled at load time; `$context` is injected per run without recompiling.
Only the first output is used; no output gives `null`. Every run is bounded (spec/sandbox.md):
`run_sync` runs the fast path on the event loop under the inline budget and raises `RunAsync`
when the run needs a sandbox worker; `run` then runs it there under `jqTimeoutMs` (or the
step's `@timeout(ms)`) and `jqMemoryMb`. Past them the step fails with a `timeout` or
`limitError` envelope.
"""

from __future__ import annotations

from typing import ClassVar

from webpipe.embedded import jq_position
from webpipe.errors import ConfigError, StepError
from webpipe.jqlib import JqError, JqLimitError, JqProgram, NeedsWorker, compile_jq
from webpipe.middleware.base import (
    JSON,
    BaseMiddleware,
    Behavior,
    RequestView,
    RunAsync,
    StepCall,
    StepResult,
)
from webpipe.source import Span

# `ctx.extras` key: program -> the state its inline attempt already failed on (this request)
_WENT_TO_WORKER = "jq.worker"


class JqMiddleware(BaseMiddleware):
    behavior: ClassVar[Behavior] = Behavior.TRANSFORM
    rerunnable: ClassVar[bool] = True  # a jq program has no effects
    tryable: ClassVar[bool] = True
    sync: ClassVar[bool] = True
    pure: ClassVar[bool] = True  # its value is all a run gives

    def prepare(self, config: str, span: Span | None) -> JqProgram:
        try:
            return compile_jq(config)
        except JqError as exc:
            located = jq_position(str(exc))
            if located is None:
                raise ConfigError(str(exc), span=span) from None
            raise ConfigError(located[0], span=span, at=located[1]) from None

    def input_keys(self, prepared: object) -> frozenset[str] | None:
        """The top-level input keys the step can read (None: maybe all); see server."""
        return prepared.input_keys if isinstance(prepared, JqProgram) else None

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert isinstance(prepared, JqProgram)
        ctx = call.ctx
        marks = ctx.extras.get(_WENT_TO_WORKER) if ctx is not None else None
        if marks is None or marks.get(prepared) is not state:
            try:
                return self.run_sync(state, prepared, call)
            except RunAsync:
                pass
        context = ctx.context_json() if prepared.uses_context and ctx else None
        limits = self.host.limits
        timeout_ms = call.timeout_ms if call.timeout_ms is not None else limits.jq_timeout_ms
        try:
            value = await prepared.run_in_worker(state, context, self.host.sandbox(),
                                                 timeout_ms, limits.jq_memory_mb)
        except JqLimitError as exc:
            raise StepError(str(exc), error_type=exc.error_type) from None
        except JqError as exc:
            raise StepError(str(exc)) from None
        return StepResult(value)

    def run_sync(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        return StepResult(self.run_pure(state, prepared, call.ctx))

    def run_pure(self, state: JSON, prepared: object, ctx: RequestView | None) -> JSON:
        assert isinstance(prepared, JqProgram)
        context = ctx.context_json() if prepared.uses_context and ctx else None
        try:
            return prepared.first_inline(state, context)
        except NeedsWorker:
            if ctx is not None:  # `run` then goes straight to the worker
                ctx.extras.setdefault(_WENT_TO_WORKER, {})[prepared] = state
            raise RunAsync from None
        except JqError as exc:
            raise StepError(str(exc)) from None
