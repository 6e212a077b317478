"""Bounded jq runs at the executor's synchronous call sites: `@guard`, inline arguments
(`|> step(ARG)`), `dispatch` conditions and graphql loader keys (spec/sandbox.md).

Those sites are plain functions on the hot path. `first_sync` runs the program inline under
the fast path's budget, or returns what a sandbox worker already answered for the same
program and the same value (identity) in this request; otherwise it raises `NeedsWorker`.
The async caller then awaits `resolving(fn, env, ctx)`, which runs each program that needed a
worker, remembers its outcome in the request, and calls `fn` again. Every such site is free
of effects up to the jq run (a guard, an argument list, a branch choice), so calling it
again is safe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from webpipe.jqlib import JqError, JqProgram, NeedsWorker

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env

T = TypeVar("T")
# ctx.extras: (program, id(value)) -> (value, result or JqError). A JSON value is unhashable
# and the memo is about this very object, so it is keyed by identity; the entry holds the
# value, so its id cannot be reused while the entry lives.
_MEMO = "jq.memo"


def first_sync(program: JqProgram, value: Any, ctx: RequestContext | None) -> Any:
    """The first output, inline or from this request's worker answers; `NeedsWorker` when
    neither has it. Raises `JqError` (including `JqLimitError`)."""
    memo = ctx.extras.get(_MEMO) if ctx is not None else None
    if memo is not None:
        hit = memo.get((program, id(value)))
        if hit is not None and hit[0] is value:
            if isinstance(hit[1], JqError):
                raise hit[1]
            return hit[1]
    return program.first_inline(value)


async def resolve(need: NeedsWorker, env: Env, ctx: RequestContext) -> None:
    """Run `need`'s program on a sandbox worker and remember the outcome for `first_sync`."""
    limits = env.limits
    outcome: Any
    try:
        outcome = await need.program.run_in_worker(
            need.value, need.context, env.sandbox(), limits.jq_timeout_ms, limits.jq_memory_mb)
    except JqError as exc:
        outcome = exc
    memo = ctx.extras.setdefault(_MEMO, {})
    memo[(need.program, id(need.value))] = (need.value, outcome)


async def resolving(fn: Callable[[], T], env: Env, ctx: RequestContext) -> T:
    """`fn()`, resolving each jq run it hands to a worker first."""
    while True:
        try:
            return fn()
        except NeedsWorker as need:
            await resolve(need, env, ctx)
