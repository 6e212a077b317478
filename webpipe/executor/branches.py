"""Control flow: `result`, `if`, `dispatch` and `foreach` (spec/language.md §5).

Each function updates the body's `Outcome` in place (`run_result` returns it, since a
`result` step always ends its body).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webpipe.executor.jqrun import resolving
from webpipe.executor.pipeline import run_pipeline
from webpipe.executor.state import JSON_CT, Outcome, error_type
from webpipe.executor.steps import ControlFlowError
from webpipe.executor.tags import gate
from webpipe.jqlib import NeedsWorker, truthy
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env


def choose_branch(step: n.ResultStep, state: Any) -> n.ResultBranch | None:
    """The branch named by the error type (or `ok`), else the first `default`."""
    wanted = error_type(state) or "ok"
    for name in (wanted, "default"):
        for branch in step.branches:
            if branch.name == name:
                return branch
    return None


async def run_result(step: n.ResultStep, out: Outcome, env: Env, ctx: RequestContext,
                     ) -> Outcome:
    branch = choose_branch(step, out.state)
    if branch is None:
        return out
    before = out.state
    inner = await run_pipeline(branch.pipeline, before, env, ctx, handling=error_type(before))
    state = inner.state
    if isinstance(before, dict) and "setCookies" in before and isinstance(state, dict) \
            and "setCookies" not in state:
        state = {**state, "setCookies": before["setCookies"]}
    out.state = state
    out.status = branch.status
    if inner.content_type != JSON_CT:
        out.content_type = inner.content_type
    return out


def _take_branch(out: Outcome, inner: Outcome) -> None:
    out.state = inner.state
    if inner.status is not None:
        out.status = inner.status
    if inner.content_type != JSON_CT:
        out.content_type = inner.content_type


async def run_if(step: n.IfStep, out: Outcome, env: Env, ctx: RequestContext) -> None:
    condition = await run_pipeline(step.condition, out.state, env, ctx)
    branch = step.then if truthy(condition.state) else step.else_
    if branch is not None:
        _take_branch(out, await run_pipeline(branch, out.state, env, ctx))


async def run_dispatch(step: n.DispatchStep, out: Outcome, env: Env, ctx: RequestContext,
                       ) -> None:
    state = out.state

    def choose() -> n.Pipeline | None:
        for case in step.cases:
            if gate(case.condition, state, env, ctx):
                return case.pipeline
        return step.default

    try:
        chosen = choose()
    except NeedsWorker:  # a `@guard` condition needs a sandbox worker
        chosen = await resolving(choose, env, ctx)
    if chosen is not None:
        _take_branch(out, await run_pipeline(chosen, out.state, env, ctx))


def selector_path(selector: str) -> list[str | int]:
    """`cart.lines`, `.items`, `rows.0` → path segments; `.` or empty → the state itself."""
    parts = [p for p in selector.lstrip(".").split(".") if p != ""]
    return [int(p) if p.isascii() and p.isdigit() and len(p) < 19 else p for p in parts]


def get_path(value: Any, path: list[str | int]) -> Any:
    for key in path:
        indexable = isinstance(key, int) and isinstance(value, list) and key < len(value)
        if not indexable and not (isinstance(value, dict) and key in value):
            return None
        value = value[key]
    return value


def set_path(value: Any, path: list[str | int], new: Any) -> Any:
    if not path:
        return new
    key, rest = path[0], path[1:]
    if isinstance(value, list) and isinstance(key, int):
        copy = list(value)
        copy[key] = set_path(copy[key], rest, new)
        return copy
    assert isinstance(value, dict)
    return {**value, str(key): set_path(value[str(key)], rest, new)}


async def run_foreach(step: n.ForeachStep, out: Outcome, env: Env, ctx: RequestContext,
                      ) -> None:
    path = selector_path(step.selector)
    items = get_path(out.state, path)
    if not isinstance(items, list):
        what = "missing" if items is None else f"not an array ({type(items).__name__})"
        raise ControlFlowError(f"foreach {step.selector}: the value is {what}", span=step.span)
    results = [(await run_pipeline(step.pipeline, item, env, ctx)).state for item in items]
    out.state = set_path(out.state, path, results)
