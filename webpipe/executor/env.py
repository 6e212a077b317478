"""The per-app environment: program index, middleware, and every step's load-time plan.

`build_env()` walks every pipeline of every module once, planning each regular step
(`plan.py`), so a request only looks plans up by step identity. `Env` is also the
`MiddlewareHost` that middleware receive (config blocks, partials, other middleware).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from webpipe.config import ConfigBlocks, resolve_blocks
from webpipe.embedded import body_span, jq_position
from webpipe.errors import ConfigError, Diagnostic
from webpipe.executor.compiled import Body, compile_body
from webpipe.executor.plan import (
    StepPlan,
    compile_args,
    parse_join_list,
    plan_diagnostics,
    prepare_middleware,
    task_tags,
    walk_tags,
)
from webpipe.jqlib import JqError, JqProgram, compile_jq
from webpipe.limits import Limits, limits_of
from webpipe.loader import Module, ProgramIndex
from webpipe.middleware import Registry
from webpipe.middleware.base import Middleware
from webpipe.suggest import did_you_mean
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.debugger import Debugger
    from webpipe.sandbox.pool import SandboxPool


# the top-level declarations that hold a pipeline body
PIPELINE_ITEMS = (n.Route, n.NamedPipeline, n.Resolver, n.FeatureFlags)
PipelineItem = n.Route | n.NamedPipeline | n.Resolver | n.FeatureFlags
# middleware whose every run may go to a sandbox worker (spec/sandbox.md)
SANDBOXED_MIDDLEWARE = frozenset({"lua", "js"})


@dataclass(frozen=True, eq=False, slots=True)
class Entry:
    """One declaration that holds a pipeline body, with its module and compiled body."""

    module: Module
    item: PipelineItem
    body: Body


@dataclass(eq=False)
class Env:
    """Everything a request needs that does not change between requests."""

    index: ProgramIndex
    registry: Registry
    configs: ConfigBlocks = field(default_factory=dict)
    # every regular step's plan, in program order (each is also held by its compiled body)
    step_plans: list[StepPlan] = field(default_factory=list)
    # every declaration that holds a body, compiled at load, in program order: an entry
    # point holds its body from load (a route, a resolver, a call's callee)
    entries: list[Entry] = field(default_factory=list)
    # named pipelines' bodies by (module path, name), and by bare name (the last wins, as
    # in `ProgramIndex.global_pipelines`): for entry points that only have a name
    named: dict[tuple[Path, str], Body] = field(default_factory=dict)
    global_named: dict[str, Body] = field(default_factory=dict)
    # what waits for every body to exist (a call's link to its callee, the GraphQL
    # resolvers' bindings): run at the end of `build_env`; None once it has run
    _pending: list[Callable[[], None]] | None = field(default_factory=list, repr=False)
    # `@guard(`jq`)` text -> its compiled program, or why it does not compile (a program
    # depends only on its text, so equal guards share one)
    guards: dict[str, JqProgram | JqError] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _variables: dict[str, Mapping[str, str]] = field(default_factory=dict, repr=False)
    env_name: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    _limits: Limits | None = field(default=None, repr=False)
    _sandbox: SandboxPool | None = field(default=None, repr=False)
    # `--inspect` (spec/debugger.md): the step loop's one check; None costs nothing more
    debugger: Debugger | None = field(default=None, repr=False)

    # ---- MiddlewareHost -------------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        return self.index.main.path.parent

    def config_block(self, name: str) -> Mapping[str, Any] | None:
        return self.configs.get(name)

    def variables_of(self, kind: str) -> Mapping[str, str]:
        """Variables of one kind, imported ones as `alias/name` (computed once per kind)."""
        found = self._variables.get(kind)
        if found is None:
            found = self._variables[kind] = MappingProxyType(self._collect_variables(kind))
        return found

    def _collect_variables(self, kind: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for module in self.index.modules:
            for item in module.items(n.Variable):
                assert isinstance(item, n.Variable)
                if item.kind == kind:
                    out[item.name] = item.body
        for alias, module in self.index.main.aliases.items():
            for item in module.items(n.Variable):
                assert isinstance(item, n.Variable)
                if item.kind == kind:
                    out[f"{alias}/{item.name}"] = item.body
        return out

    def middleware(self, name: str) -> Middleware:
        try:
            return self.registry.get(name, self)
        except ConfigError:
            raise KeyError(name) from None

    @property
    def limits(self) -> Limits:
        """The app's `config limits { }` (read once)."""
        if self._limits is None:
            self._limits = limits_of(self)
        return self._limits

    def sandbox(self) -> SandboxPool:
        """The app's pool of sandbox workers for embedded code (spec/sandbox.md); its
        processes start on first use and end with `aclose()`."""
        if self._sandbox is None:
            from webpipe.sandbox.pool import SandboxPool

            self._sandbox = SandboxPool(self.limits.sandbox_workers)
        return self._sandbox

    def uses_sandbox(self) -> bool:
        """Whether some step may run on a sandbox worker: a Lua or JavaScript step, or a jq
        program outside the fast path (a step's, an inline argument's or a guard's)."""
        programs: list[object] = [*self.guards.values()]
        for plan in self.step_plans:
            if plan.name in SANDBOXED_MIDDLEWARE:
                return True
            programs.extend((plan.prepared, *plan.args))
        return any(isinstance(p, JqProgram) and not p.fast for p in programs)

    # ---- lookups --------------------------------------------------------------------

    def named_body(self, module: Module, name: str) -> Body | None:
        """The body `module` calls by `name` (`alias::name` too), resolved as
        `ProgramIndex.pipeline` resolves the node."""
        alias, sep, bare = name.partition("::")
        if sep:
            target = module.aliases.get(alias)
            return self.named.get((target.path, bare)) if target else None
        return self.named.get((module.path, name)) or self.global_named.get(name)

    def when_loaded(self, then: Callable[[], None]) -> None:
        """Run `then` once every body of the program is compiled: now, or at the end of
        `build_env` while bodies are still being compiled."""
        if self._pending is None:
            then()
        else:
            self._pending.append(then)

    def link(self, plan: StepPlan, module: Module, name: str, on_error: bool) -> None:
        """Give a call its callee's body (`on_error`: the handler's) once it exists."""

        def then() -> None:
            body = self.named_body(module, name)
            if on_error:
                plan.on_error_body = body
            else:
                plan.callee_body = body

        self.when_loaded(then)

    def entries_of(self, kind: type[PipelineItem]) -> Iterator[Entry]:
        return (e for e in self.entries if isinstance(e.item, kind))

    def guard(self, tag: n.Tag) -> JqProgram | None:
        """The tag's compiled `@guard` program; None when it does not compile."""
        found = self.guards.get(tag.args[0]) if tag.args else None
        return found if isinstance(found, JqProgram) else None

    async def aclose(self) -> None:
        for mw in list(self.registry.instances.values()):
            await mw.aclose()
        if self._sandbox is not None:
            await self._sandbox.aclose()


def build_env(index: ProgramIndex, registry: Registry | None = None,
              environ: Mapping[str, str] | None = None) -> Env:
    env_vars = os.environ if environ is None else environ
    blocks = [b for m in index.config_modules() for b in m.items(n.ConfigBlock)]
    env = Env(index=index, registry=registry or Registry(),
              configs=resolve_blocks(blocks, env_vars),  # type: ignore[arg-type]
              env_name=env_vars.get("WEBPIPE_ENV") or None)
    for module, item in _all_items(index):
        loaders = _loader_steps(item)

        def plan_of(step: n.Step, module: Module = module,
                    loaders: tuple[n.Step, ...] = loaders) -> StepPlan | None:
            if any(step is s for s in loaders):
                assert isinstance(step, n.MiddlewareStep)
                return _keep(env, StepPlan(step=step, kind="loader", name="loader",
                                           location=step.span.label))
            return _plan_into(env, module, step)

        body = compile_body(item.pipeline, plan_of)
        env.entries.append(Entry(module, item, body))
        if isinstance(item, n.NamedPipeline):
            env.named[module.path, item.name] = env.global_named[item.name] = body
    pending, env._pending = env._pending or [], None
    for then in pending:  # every body exists now
        then()
    return env


def _loader_steps(item: n.Item) -> tuple[n.Step, ...]:
    """`|> loader` at the top level of a `resolver Type.field` pipeline (graphql.md §5)."""
    if isinstance(item, n.Resolver) and item.kind == "resolver":
        return tuple(s for s in item.pipeline.steps
                     if isinstance(s, n.MiddlewareStep) and s.name == "loader")
    return ()


def _keep(env: Env, plan: StepPlan) -> StepPlan:
    env.step_plans.append(plan)
    return plan


def _all_items(index: ProgramIndex) -> Iterator[tuple[Module, PipelineItem]]:
    for module in index.modules:
        for item in module.program.items:
            if isinstance(item, PIPELINE_ITEMS):
                yield module, item


def child_pipelines(step: n.Step) -> list[n.Pipeline]:
    match step:
        case n.ResultStep(branches=branches):
            return [b.pipeline for b in branches]
        case n.IfStep(condition=c, then=t, else_=e):
            return [c, t] + ([e] if e else [])
        case n.DispatchStep(cases=cases, default=d):
            return [c.pipeline for c in cases] + ([d] if d else [])
        case n.ForeachStep(pipeline=p):
            return [p]
    return []


def step_tags(step: n.Step) -> list[n.TagExpr]:
    if isinstance(step, n.MiddlewareStep):
        return [step.tags] if step.tags else []
    if isinstance(step, n.DispatchStep):
        return [c.condition for c in step.cases]
    return []


def _plan_into(env: Env, module: Module, step: n.Step) -> StepPlan | None:
    """Compile the step's guards and, for a regular step, plan it (kept in `step_plans`)."""
    for expr in step_tags(step):
        for tag in walk_tags(expr):
            if tag.name == "guard" and tag.args:
                _compile_guard(env, tag)
    if not isinstance(step, n.MiddlewareStep):
        return None
    plan = plan_step(env, module, step)
    _resolve_task_tags(env, module, plan)
    env.diagnostics.extend(plan_diagnostics(plan, lambda: env.index.pipeline_names(module)))
    return _keep(env, plan)


def _compile_guard(env: Env, tag: n.Tag) -> None:
    """Compile a `@guard` once per text (a program depends only on its text); a bad one is
    reported at every tag that has it, at its own place in the tag."""
    text = tag.args[0]
    if text not in env.guards:
        try:
            env.guards[text] = compile_jq(text, allow_context=False)
        except JqError as exc:
            env.guards[text] = exc
    found = env.guards[text]
    if not isinstance(found, JqError):
        return
    located = jq_position(str(found))
    message, where = str(found), None
    if located is not None:
        message, where = located[0], body_span(tag.span, text, located[1])
    env.diagnostics.append(Diagnostic(f"@guard: {message}", where or tag.span,
                                      code="bad-guard"))


def _resolve_task_tags(env: Env, module: Module, plan: StepPlan) -> None:
    """`@onError(pipeline)` and `@dedup(`key`)`: resolved and compiled at load."""
    tags = plan.tags
    if tags.on_error:
        plan.on_error = env.index.pipeline(module, tags.on_error)
        env.link(plan, module, tags.on_error, on_error=True)
    if tags.dedup_key:
        try:
            plan.dedup_key = compile_jq(tags.dedup_key, allow_context=False)
        except JqError:
            plan.dedup_key = None


def plan_step(env: Env, module: Module, step: n.MiddlewareStep) -> StepPlan:
    span = step.span
    location = f"{span.source.name}:{span.line}"
    args, arg_error = compile_args(step)
    base: dict[str, Any] = dict(step=step, location=location, args=args, arg_error=arg_error,
                                tags=task_tags(step.tags))
    if step.name == "pipeline" and step.config is not None:
        return _pipeline_call(env, module, step.config.strip(), "pipeline", base)
    if step.name == "join":  # a step kind of the executor, not a middleware
        variable = env.index.variable(module, "join", step.config) if step.config else None
        config = variable.body if variable is not None else step.config or ""
        names, error = parse_join_list(config)
        return StepPlan(kind="join", name="join", config=config, join_names=names,
                        missing=error or "", **base)
    if step.name not in env.registry:
        if step.config is None:
            return _pipeline_call(env, module, step.name, step.name, base)
        hint = did_you_mean(step.name, env.registry.names())
        return StepPlan(kind="missing", name=step.name,
                        missing=f"unknown middleware {step.name!r}{hint}", **base)
    return _middleware_plan(env, module, step, base)


def _pipeline_call(env: Env, module: Module, target: str, name: str,
                   base: dict[str, Any]) -> StepPlan:
    callee = env.index.pipeline(module, target)
    if callee is None:
        known = env.index.pipeline_names(module)
        what = "pipeline"
        if name == target:  # `|> name` could be either
            what, known = "middleware or pipeline", known | set(env.registry.names())
        hint = did_you_mean(target, known)
        return StepPlan(kind="missing", name=name, missing=f"unknown {what} {target!r}{hint}",
                        **base)
    plan = StepPlan(kind="pipeline", name=name, callee=callee, config=target, **base)
    env.link(plan, module, target, on_error=False)
    return plan


def _middleware_plan(env: Env, module: Module, step: n.MiddlewareStep,
                     base: dict[str, Any]) -> StepPlan:
    config = step.config or ""
    auto_name = None
    variable = env.index.variable(module, step.name, config) if step.config else None
    if variable is not None:
        config, auto_name = variable.body, variable.name
    plan = StepPlan(kind="middleware", name=step.name, config=config, auto_name=auto_name,
                    **base)
    try:
        mw = env.registry.get(step.name, env)
    except ConfigError as exc:  # unsupported (the chart grammars): that error alone
        return StepPlan(kind="missing", name=step.name, missing=exc.message,
                        **{**base, "args": (), "arg_error": None})
    plan.written_in = variable.span if variable is not None else step.span
    prepare_middleware(plan, mw)
    mw.plan_step(plan)  # graphql reads its raw arguments
    return plan
