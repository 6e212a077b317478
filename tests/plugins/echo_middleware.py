"""A real third-party middleware module, registered through an entry point in the tests."""

from __future__ import annotations

from typing import Any, ClassVar

from webpipe.middleware.base import BaseMiddleware, Behavior, StepCall, StepResult
from webpipe.source import Span


class EchoMiddleware(BaseMiddleware):
    """`|> echo: `prefix`` → `{ echoed: "<prefix><state.word>" }` (merged)."""

    behavior: ClassVar[Behavior] = Behavior.MERGE

    def prepare(self, config: str, span: Span | None) -> str:
        return config.strip() + ":"

    async def run(self, state: Any, prepared: object, call: StepCall) -> StepResult:
        word = state.get("word") if isinstance(state, dict) else None
        return StepResult({"echoed": f"{prepared}{word}"})


class CrashingMiddleware(BaseMiddleware):
    """A middleware with a bug: it raises an arbitrary exception."""

    async def run(self, state: Any, prepared: object, call: StepCall) -> StepResult:
        raise ZeroDivisionError("oops")
