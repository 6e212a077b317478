"""Load-time plans for regular steps: everything decidable before a request arrives.

`plan_step()` resolves a `MiddlewareStep` against the program: middleware or named-pipeline
call, variable substitution, compiled config (`prepare()`), compiled inline arguments and
guards, and the task tags (`@async @result @error @timeout @retry @background @failfast`).
Problems are recorded as diagnostics on the plan; the step then fails at run time the way
the reference does (a `<step>Error` envelope or a hard error), so one bad step never stops
a whole app from serving.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from webpipe.embedded import body_span, jq_position
from webpipe.errors import ConfigError, Diagnostic
from webpipe.jqlib import JqError, JqProgram, compile_jq
from webpipe.middleware.base import Behavior, Middleware, PlannedStep, StepCall, StepResult
from webpipe.source import Span
from webpipe.suggest import did_you_mean
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.executor.compiled import Body
    from webpipe.executor.process_tasks import TaskInfo

SyncRun = Callable[[Any, object, StepCall], StepResult]
PureRun = Callable[[Any, object, Any], Any]  # (state, prepared, ctx) -> value
AsyncRun = Callable[[Any, object, StepCall], Awaitable[StepResult]]
StepKind = Literal["middleware", "pipeline", "join", "missing", "loader"]


@dataclass(eq=False)
class TaskTags:
    """The first `@async/@result/@error/...` tags of a step's expression (spec §4.4)."""

    async_name: str | None = None
    result_name: str | None = None
    error_name: str | None = None
    timeout_ms: int | None = None
    retry: int | None = None
    background: bool = False
    failfast: bool = False
    dedup: bool = False
    dedup_key: str | None = None  # `@dedup(`jq`)`: an explicit key
    detached: bool = False
    on_error: str | None = None  # `@onError(pipeline)`
    first: bool = False  # `join … @first`: the first success wins
    hedge: tuple[int, int] | None = None  # `@hedge(n, ms)`: copies, delay before each next
    hedge_unsafe: bool = False  # `@hedge(n, ms, idempotent)`: the author vouches for it
    durable: bool = False  # `@durable`: a `@background` step run as a Postgres job


@dataclass(eq=False)
class StepPlan:
    step: n.MiddlewareStep
    kind: StepKind
    name: str  # the name used in `<name>Error` envelopes
    location: str  # "file.wp:12"
    middleware: Middleware | None = None
    config: str = ""
    prepared: object = None
    auto_name: str | None = None
    args: tuple[JqProgram, ...] = ()
    arg_error: str | None = None
    prepare_error: str | None = None
    prepare_span: Span | None = None  # where in the config the error is, when the step knows
    written_in: Span | None = None  # the node the config text is written in (step or variable)
    callee: n.NamedPipeline | None = None
    callee_body: Body | None = None  # the callee's compiled body, linked at load
    join_names: tuple[str, ...] = ()
    tags: TaskTags = field(default_factory=TaskTags)
    missing: str = ""  # the hard error for kind == "missing"
    on_error: n.NamedPipeline | None = None  # `@onError(name)`, resolved at load
    on_error_body: Body | None = None  # the handler's compiled body, linked at load
    dedup_key: JqProgram | None = None  # `@dedup(`jq`)`, compiled at load
    # how the step runs, decided at load: the middleware's `run_sync` when it offers one,
    # the step prepared cleanly and no `@dedup`/`@hedge` shares or races the call (the
    # interpreter then calls it without a coroutine, with the real invoker); else None
    run_sync: SyncRun | None = None
    # the middleware's `run_pure` when it also offers that (a Transform step with no
    # arguments, no target: a plain body then applies its value directly), else None
    run_pure: PureRun | None = None
    # the middleware's `run` when the step prepared cleanly and nothing shares or races the
    # call: a plain body awaits it directly, with the real invoker (`pipeline.run_awaited`)
    run_async: AsyncRun | None = None
    # an `@async` step's task labels by route template, made at its first spawn from that
    # route (a named pipeline's step runs under every route that calls it)
    task_infos: dict[str, TaskInfo] = field(default_factory=dict)


def task_tags(expr: n.TagExpr | None) -> TaskTags:
    tags = TaskTags()
    for tag in walk_tags(expr):
        if tag.negated:
            continue
        one = tag.args[0] if len(tag.args) == 1 else None
        match tag.name:
            case "async" if one and tags.async_name is None:
                tags.async_name = one
            case "result" if one and tags.result_name is None:
                tags.result_name = one
            case "error" if one and tags.error_name is None:
                tags.error_name = one
            case "timeout" if one and is_count(one) and tags.timeout_ms is None:
                tags.timeout_ms = int(one)
            case "retry" if one and is_count(one) and tags.retry is None:
                tags.retry = int(one)
            case "background":
                tags.background = True
            case "failfast":
                tags.failfast = True
            case "dedup":
                tags.dedup = True
                tags.dedup_key = tags.dedup_key or one
            case "detached":
                tags.detached = True
            case "durable":
                tags.durable = True
            case "onError" if one and tags.on_error is None:
                tags.on_error = one
            case "first":
                tags.first = True
            case "hedge" if tags.hedge is None and hedge_args(tag.args) is not None:
                tags.hedge = hedge_args(tag.args)
                tags.hedge_unsafe = tuple(tag.args[2:]) == ("idempotent",)
    return tags


def is_count(text: str) -> bool:
    """A tag's whole number: ASCII digits (`int()` also reads other scripts' digits and
    `isdigit()` accepts `²`, which `int()` refuses), at most nine of them."""
    return text.isascii() and text.isdigit() and len(text) <= 9


def hedge_args(args: list[str] | tuple[str, ...]) -> tuple[int, int] | None:
    """`@hedge(n, ms[, idempotent])`: (copies, delay in ms), or None when malformed."""
    if len(args) not in (2, 3) or not all(is_count(a) for a in args[:2]):
        return None
    if len(args) == 3 and args[2] != "idempotent":
        return None
    copies, delay = int(args[0]), int(args[1])
    return (copies, delay) if copies >= 1 else None


def walk_tags(expr: n.TagExpr | None) -> list[n.Tag]:
    """Every tag of an expression, left to right."""
    match expr:
        case None:
            return []
        case n.Tag():
            return [expr]
        case n.TagAnd(items=items) | n.TagOr(items=items):
            return [t for item in items for t in walk_tags(item)]
    raise AssertionError(expr)


def compile_args(step: n.MiddlewareStep) -> tuple[tuple[JqProgram, ...], str | None]:
    programs: list[JqProgram] = []
    for text in step.args:
        try:
            programs.append(compile_jq(text, allow_context=False))
        except JqError as exc:
            return (), str(exc)
    return tuple(programs), None


def parse_join_list(text: str) -> tuple[tuple[str, ...], str | None]:
    """`a, b` or `["a", "b"]` → names; an error text for an empty or invalid list."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return (), f"join list must be a JSON array of strings: {stripped}"
        names = tuple(value)
    else:
        names = tuple(p.strip() for p in stripped.split(",") if p.strip())
    return (names, None) if names else ((), "join needs at least one task name")


def prepare_middleware(plan: StepPlan, mw: Middleware) -> None:
    """Prepare the step; an error inside the config points at its own line when the
    middleware says where (`config_span`)."""
    plan.middleware = mw
    try:
        plan.prepared = mw.prepare(plan.config, plan.step.span)
    except ConfigError as exc:
        plan.prepare_error, plan.prepare_span = exc.message, exc.span
        if exc.at is not None:
            plan.prepare_span = config_span(plan, exc.at) or exc.span
        return
    shared = plan.tags.dedup or plan.tags.hedge is not None  # these go through `run`
    plan.run_sync = mw.run_sync if mw.sync and not shared else None
    plan.run_async = None if shared else mw.run
    plan.run_pure = mw.run_pure if (
        plan.run_sync is not None and mw.pure and mw.behavior is Behavior.TRANSFORM
        and not mw.wraps_data and not plan.args and plan.auto_name is None) else None


def config_span(plan: PlannedStep, at: tuple[int, int, int]) -> Span | None:
    """Line, column and width inside the step's config text, as a span of the `.wp` file."""
    return body_span(plan.written_in or plan.step.span, plan.config, at)


def plan_diagnostics(plan: StepPlan, pipelines: Callable[[], Iterable[str]] = tuple,
                     ) -> list[Diagnostic]:
    """The step's load-time problems; `pipelines` lists the names it could call (asked
    only for a did-you-mean)."""
    span = plan.step.span
    out: list[Diagnostic] = []
    if plan.missing:
        out.append(Diagnostic(plan.missing, span, code="unknown-name"))
    if plan.prepare_error:
        out.append(Diagnostic(f"{plan.name}: {plan.prepare_error}", plan.prepare_span or span,
                              code="bad-config"))
    if plan.tags.on_error and plan.on_error is None:
        hint = did_you_mean(plan.tags.on_error, pipelines())
        out.append(Diagnostic(f"@onError({plan.tags.on_error}): unknown pipeline{hint}", span,
                              code="unknown-name"))
    if plan.tags.dedup_key and plan.dedup_key is None:
        out.append(Diagnostic("@dedup key is not a valid jq expression", span,
                              code="bad-tag"))
    if plan.arg_error:
        message, where = _located_arg_error(plan.step, plan.arg_error)
        out.append(Diagnostic(f"{plan.name} inline argument: {message}", where or span,
                              code="bad-argument"))
    return out


def _located_arg_error(step: n.MiddlewareStep, error: str) -> tuple[str, Span | None]:
    """An inline argument's jq error at its own position in the step, when jq gives one."""
    for text in step.args:
        try:
            compile_jq(text, allow_context=False)
        except JqError as exc:
            located = jq_position(str(exc))
            if located is not None and str(exc) == error:
                return located[0], body_span(step.span, text, located[1])
            return error, None
    return error, None
