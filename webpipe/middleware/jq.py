"""`jq`: transform the state with a jq program (middleware.md §1).

The program is compiled at load time; `$context` is injected per run without recompiling.
Only the first output is used; no output gives `null`.
"""

from __future__ import annotations

from typing import ClassVar

from webpipe.errors import ConfigError, StepError
from webpipe.jqlib import JqError, JqProgram, compile_jq
from webpipe.middleware.base import JSON, BaseMiddleware, Behavior, StepCall, StepResult
from webpipe.source import Span


class JqMiddleware(BaseMiddleware):
    behavior: ClassVar[Behavior] = Behavior.TRANSFORM
    rerunnable: ClassVar[bool] = True  # a jq program has no effects

    def prepare(self, config: str, span: Span | None) -> JqProgram:
        try:
            return compile_jq(config)
        except JqError as exc:
            raise ConfigError(str(exc), span=span) from None

    def input_keys(self, prepared: object) -> frozenset[str] | None:
        """The top-level input keys the step can read (None: maybe all); see server."""
        return prepared.input_keys if isinstance(prepared, JqProgram) else None

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        return self.run_sync(state, prepared, call)

    def run_sync(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert isinstance(prepared, JqProgram)
        context = call.ctx.context_json() if prepared.uses_context and call.ctx else None
        try:
            return StepResult(prepared.first(state, context))
        except JqError as exc:
            raise StepError(str(exc)) from None
