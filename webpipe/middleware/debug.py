"""`debug`: print a label and the current state to stdout (middleware.md §13).

The label is the trimmed config, or `debug` when it is empty, fixed at load time. The state
follows as pretty-printed JSON (2-space indent, non-ASCII kept, like serde_json's pretty
printer). The state is returned unchanged; nothing is recorded in `$context`.
"""

from __future__ import annotations

import json
import sys
from typing import ClassVar

from webpipe.middleware.base import JSON, BaseMiddleware, Behavior, StepCall, StepResult
from webpipe.source import Span


class DebugMiddleware(BaseMiddleware):
    behavior: ClassVar[Behavior] = Behavior.MERGE

    def prepare(self, config: str, span: Span | None) -> str:
        return config.strip() or "debug"

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert isinstance(prepared, str)
        sys.stdout.write(f"{prepared}\n{render_state(state)}\n")
        sys.stdout.flush()
        return StepResult(state)


def render_state(state: JSON) -> str:
    """The state as the reference prints it; values `json` cannot encode fall back to str()."""
    try:
        return json.dumps(state, indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(state)
