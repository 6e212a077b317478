"""Tag expressions as gates (spec/language.md §4.4).

A step runs when its tag expression is true. `@env @flag @when @guard` gate; every other
tag (`@async @result @error @needs @timeout …`) counts as true. `and`/`or` short-circuit
left to right. A `@guard` runs its jq inline; when it needs a sandbox worker, `gate` raises
`NeedsWorker` and the async caller resolves it (`executor/jqrun.py`). A guard that fails (a
jq error, or past its time or memory budget) is false.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webpipe.executor.jqrun import first_sync
from webpipe.jqlib import JqError, truthy
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env


def gate(expr: n.TagExpr | None, state: Any, env: Env, ctx: RequestContext) -> bool:
    match expr:
        case None:
            return True
        case n.Tag():
            return tag_value(expr, state, env, ctx)
        case n.TagAnd(items=items):
            return all(gate(item, state, env, ctx) for item in items)
        case n.TagOr(items=items):
            return any(gate(item, state, env, ctx) for item in items)
    raise AssertionError(expr)


def tag_value(tag: n.Tag, state: Any, env: Env, ctx: RequestContext) -> bool:
    match tag.name:
        case "env":
            if len(tag.args) != 1:
                return True
            if ctx.env_name is None:
                return not tag.negated
            return (ctx.env_name == tag.args[0]) != tag.negated
        case "flag":
            return _all_set(tag, ctx.flags)
        case "when":
            return _all_set(tag, ctx.conditions)
        case "guard":
            return _guard(tag, state, env, ctx)
    return True


def _all_set(tag: n.Tag, table: dict[str, bool]) -> bool:
    if tag.negated:
        return all(not table.get(name, False) for name in tag.args)
    return all(table.get(name, False) for name in tag.args)


def _guard(tag: n.Tag, state: Any, env: Env, ctx: RequestContext) -> bool:
    if not tag.args:
        return True
    program = env.guard(tag)
    if program is None:
        return False  # a guard that does not compile is false, even negated
    try:  # NeedsWorker propagates: the caller resolves it (executor/jqrun.py)
        value = truthy(first_sync(program, state, ctx))
    except JqError:  # an error, or past its time or memory budget
        return False
    return value != tag.negated
