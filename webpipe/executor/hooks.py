"""Per-request hooks that middleware register on the request context.

`after_pipeline` (async): `hook(final_state, content_type, status)`, awaited when the
pipeline body that registered it finishes normally (cache saving, middleware.md §8.3);
never called when the request ends in a hard error. `after_response` (sync): called by the
server after the response is built (access logs, middleware.md §12).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext

AFTER_PIPELINE = "after_pipeline"
AFTER_RESPONSE = "after_response"
AfterPipelineHook = Callable[[Any, str, "int | None"], Awaitable[None]]


async def run_after_pipeline(ctx: RequestContext, state: Any, content_type: str,
                             status: int | None, *, since: int = 0) -> None:
    """Await and remove the `after_pipeline` hooks registered since index `since`."""
    hooks: list[AfterPipelineHook] = ctx.extras.get(AFTER_PIPELINE, [])
    pending, hooks[since:] = hooks[since:], []
    for hook in pending:
        await hook(state, content_type, status)
