"""`webpipe check`: every static check on a program, all problems reported at once.

Load-time problems come from the loader and the step planner (unknown middleware or
pipeline, bad jq/handlebars/Lua, bad inline arguments, bad `join` lists); this module adds
the cross-cutting checks: route conflicts, tags, `join` names, task hygiene, config keys,
partials and variables (unknown names end with a did-you-mean), tests calling a path no
route matches (check_calls.py) and misleading indentation (syntax/layout.py). A file with
syntax errors gets every one of them and the checks of the items that parse (recovered.py).
Errors make `check` exit 1; warnings do not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from webpipe.check_calls import check_test_calls
from webpipe.errors import Diagnostic, WebpipeError, WpSyntaxError
from webpipe.executor.compiled import Body, Call, Foreach, children
from webpipe.executor.env import Env, step_tags
from webpipe.executor.plan import StepPlan, hedge_args, is_count, walk_tags
from webpipe.executor.process_tasks import CONFIG_KEYS as ASYNC_KEYS
from webpipe.graphql.remote import KEYS as REMOTE_KEYS
from webpipe.graphql.remote import PREFIX as REMOTE_PREFIX
from webpipe.jobs.identity import CONFIG_KEYS as JOB_KEYS
from webpipe.jobs.identity import check_durable
from webpipe.limits import KEYS as LIMIT_KEYS
from webpipe.loader import Module
from webpipe.program import gc_paused, load_program
from webpipe.recovered import check_recovered, recovered_index
from webpipe.server import build_served
from webpipe.suggest import did_you_mean
from webpipe.syntax import nodes as n
from webpipe.syntax.layout import misplaced_steps
from webpipe.syntax.recover import recover

KNOWN_TAGS = {"env", "flag", "when", "guard", "async", "result", "error", "needs", "timeout",
              "retry", "failfast", "background", "dedup", "detached", "onError", "first",
              "hedge", "durable"}
ONE_ARG_TAGS = {"async", "result", "error", "timeout", "retry", "onError"}
GATE_TAGS = {"env", "flag", "when", "guard"}
# config blocks read by webpipe itself; a middleware declares its own block's `config_keys`
CONFIG_KEYS: dict[str, set[str]] = {
    "async": set(ASYNC_KEYS),
    "limits": set(LIMIT_KEYS),
    "static": {"dotfiles"},
    "server": {"completenessHeader", "unhandledErrorStatus"},  # spec/server.md, tasks.md
    "jobs": set(JOB_KEYS),
}
VARIABLE_MIDDLEWARE = {"pg", "jq", "handlebars", "mustache", "lua", "graphql", "fetch"}


def check_file(path: str | Path, *, db: bool = False,
               announce: Callable[[str], None] | None = None) -> list[Diagnostic]:
    """Every problem of the program at `path`; with `db`, its SQL prepared on the app's
    database as well (webpipe.sqlcheck, `check --db`)."""
    with gc_paused():
        try:
            env = load_program(path)
            build_served(env)  # route conflicts and GraphQL schema problems
        except WpSyntaxError as exc:
            return _every_syntax_error(exc, Path(path))
        except WebpipeError as exc:
            return [exc.diagnostic()]
        found = check_env(env)
        if db:
            from webpipe.sqlcheck.check import database_diagnostics

            found = sorted(found + database_diagnostics(env, announce), key=_order)
        return found


def _every_syntax_error(first: WpSyntaxError, path: Path) -> list[Diagnostic]:
    """All syntax errors of the file the first one is in (recovering item by item) and,
    when that is the file checked, the problems of the items that parse."""
    if first.span is None:
        return [first.diagnostic()]
    source = first.span.source
    recovery = recover(source)
    found = [e.diagnostic() for e in recovery.errors] or [first.diagnostic()]
    if Path(source.name).resolve() == path.resolve():
        index = recovered_index(source, path, recovery, found)
        if index is not None:
            found += check_recovered(index, recovery)
    return sorted(found, key=_order)


def check_env(env: Env) -> list[Diagnostic]:
    calls = check_test_calls(env)  # first: it may add the GraphQL endpoint's warning
    found = list(env.diagnostics) + calls
    found += check_configs(env, env.index.modules)
    for module in env.index.modules:
        found += [Diagnostic(m.message, m.step.span, "warning", "misleading-indent")
                  for m in misplaced_steps(module.program)]
    tasks = Tasks(env)
    for entry in env.entries:
        found += check_pipeline(env, entry.module, entry.body, tasks, in_foreach=False)
    found += check_unjoined(env)
    found += check_durable(env)
    return sorted(_unique(found), key=_order)


def _unique(found: list[Diagnostic]) -> list[Diagnostic]:
    """One of each: a broken variable is reported once, not by every step that uses it."""
    seen: set[tuple[object, ...]] = set()
    out = []
    for d in found:
        key = (d.message, d.severity, d.span.source.name, d.span.start, d.span.end) \
            if d.span else (d.message, d.severity)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def check_unjoined(env: Env) -> list[Diagnostic]:
    """`@async(x)` whose name no `join` anywhere lists (unless it is `@background`)."""
    joined = {name for plan in env.step_plans if plan.kind == "join"
              for name in plan.join_names}
    return [Diagnostic(f"@async({plan.tags.async_name}) is never joined; its result is "
                       "discarded (add a join, or @detached for fire-and-forget work)",
                       plan.step.span, "warning", "unjoined-task")
            for plan in env.step_plans
            if plan.tags.async_name and plan.tags.async_name not in joined
            and not plan.tags.background and not plan.tags.detached]


def _order(d: Diagnostic) -> tuple[str, int, int]:
    return (d.span.source.name, d.span.line, d.span.column) if d.span else ("", 0, 0)


def block_keys(env: Env, block: n.ConfigBlock) -> set[str] | None:
    """The keys webpipe reads in `config NAME { }`; None when it reads no such block."""
    if block.name.startswith(REMOTE_PREFIX):  # a remote GraphQL endpoint
        return set(REMOTE_KEYS) | {p.key for p in block.props if p.key.startswith("header")}
    if block.name in CONFIG_KEYS:
        return CONFIG_KEYS[block.name]
    keys = env.registry.config_keys(block.name)
    return None if keys is None else set(keys)


def block_names(env: Env) -> set[str]:
    """Every config block name webpipe reads (for a did-you-mean; imports the middleware)."""
    names = set(CONFIG_KEYS)
    for name in env.registry.names():
        try:
            if env.registry.config_keys(name) is not None:
                names.add(name)
        except WebpipeError:  # a middleware whose dependency is missing
            continue
    return names


def check_configs(env: Env, modules: list[Module]) -> list[Diagnostic]:
    out = []
    names: set[str] | None = None  # computed once, for the first unknown block
    for block in (b for module in modules for b in module.items(n.ConfigBlock)):
        assert isinstance(block, n.ConfigBlock)
        try:
            known = block_keys(env, block)
        except WebpipeError:  # its middleware cannot load: that step reports why
            continue
        if known is None:
            names = block_names(env) if names is None else names
            hint = did_you_mean(block.name, names)
            out.append(Diagnostic(f"config block {block.name!r} is not read by webpipe{hint}",
                                  block.span, "warning", "unknown-config"))
            continue
        out += [Diagnostic(_unknown_key(p.key, block.name, known), p.span, "warning",
                           "unknown-config")
                for p in block.props if p.key not in known]
    return out


def _unknown_key(key: str, block: str, known: set[str]) -> str:
    hint = did_you_mean(key, known)
    listed = "" if hint else f"; known: {', '.join(sorted(known))}"
    return f"unknown key {key!r} in config {block} (ignored{listed}){hint}"


class Tasks:
    """The task names `@async` declares anywhere in the program, and those also
    `@detached`: read by every `join` (two sets, not a scan of every step per join)."""

    def __init__(self, env: Env) -> None:
        tags = [p.tags for p in env.step_plans]
        self.declared = {t.async_name for t in tags}
        self.detached = {t.async_name for t in tags if t.detached}


def check_pipeline(env: Env, module: Module, body: Body, tasks: Tasks, *, in_foreach: bool,
                   ) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    spawned: set[str] = set()
    joined: set[str] = set()
    for step in body.steps:
        for expr in step_tags(step.node):
            out += check_tags(expr)
        if isinstance(step, Call):
            out += check_step(env, module, step.plan, tasks, spawned, joined)
        for child in children(step):
            out += check_pipeline(env, module, child, tasks,
                                  in_foreach=in_foreach or isinstance(step, Foreach))
    for step in body.steps:
        tags = step.plan.tags if isinstance(step, Call) else None
        if tags and tags.async_name and tags.async_name not in joined and in_foreach:
            out.append(Diagnostic(f"@async({tags.async_name}) inside foreach is never joined "
                                  "in the loop body", step.node.span, "warning",
                                  "unjoined-task"))
    return out


def check_step(env: Env, module: Module, plan: StepPlan, tasks: Tasks, spawned: set[str],
               joined: set[str]) -> list[Diagnostic]:
    step = plan.step
    out: list[Diagnostic] = check_placement(plan)
    if plan.tags.async_name:
        if plan.tags.async_name in spawned - joined:
            out.append(Diagnostic(f"task name {plan.tags.async_name!r} is reused before its "
                                  "join; the earlier task's result is lost", step.span,
                                  "warning", "duplicate-task"))
        spawned.add(plan.tags.async_name)
        joined.discard(plan.tags.async_name)
    if plan.kind == "join":
        for name in plan.join_names:
            joined.add(name)
            if name in tasks.detached:
                out.append(Diagnostic(f"join waits for {name!r}, which is @detached (never "
                                      "joined by design); drop one of them", step.span,
                                      code="bad-tag"))
            if name not in spawned and name not in tasks.declared:
                out.append(Diagnostic(f"join waits for {name!r}, but no @async({name}) "
                                      "declares it", step.span, code="unknown-task"))
    if plan.kind == "middleware" and step.config_kind is n.ConfigKind.IDENT \
            and step.name in VARIABLE_MIDDLEWARE and plan.auto_name is None:
        hint = did_you_mean(step.config or "", env.index.variable_names(module, step.name))
        out.append(Diagnostic(f"unknown {step.name} variable {step.config!r}{hint}", step.span,
                              code="unknown-variable"))
    out += check_hedge_method(plan)
    if plan.kind == "middleware" and plan.middleware is not None:  # its own rules
        out += plan.middleware.check(plan.prepared, plan.config, step.span)
    return out


_LITERAL_METHOD = re.compile(r'(?:\bmethod|\bfetchMethod)\s*:\s*"([A-Za-z]+)"')


def check_hedge_method(plan: StepPlan) -> list[Diagnostic]:
    """`@hedge` on a step whose literal method is not idempotent, without `idempotent`."""
    if plan.tags.hedge is None or plan.tags.hedge_unsafe:
        return []
    from webpipe.executor.hedge import IDEMPOTENT

    texts = list(plan.step.args)
    methods = {m.group(1).upper() for text in texts for m in _LITERAL_METHOD.finditer(text)}
    return [Diagnostic(f"@hedge would repeat a {method} request, which is not idempotent; "
                       "write @hedge(n, ms, idempotent) if repeating it is safe",
                       plan.step.span, code="bad-tag")
            for method in sorted(methods - IDEMPOTENT)]


# tag -> (does it apply to this plan?, where it is allowed): spec/tasks.md, one table
def _allowed(plan: StepPlan) -> dict[str, tuple[bool, str]]:
    tags, kind = plan.tags, plan.kind
    call = kind in ("middleware", "pipeline")
    shaped = not tags.background  # a background step's output is discarded
    return {
        "async": (call, "on a middleware or pipeline step (a join cannot run as a task)"),
        "background": (call, "on a middleware or pipeline step"),
        "failfast": (kind == "join", "only on join"),
        "first": (kind == "join" and not tags.failfast,
                  "only on join, and not with @failfast (one policy per join)"),
        "hedge": (kind == "middleware" and plan.middleware is not None
                  and plan.middleware.hedgeable
                  and not tags.background,
                  "only on a fetch step whose output is used (not @background)"),
        "retry": (call, "on a middleware or pipeline step (not on join)"),
        "dedup": (kind == "middleware", "only on a middleware step"),
        "detached": (tags.async_name is not None and not tags.background,
                     "only with @async(name) on a step that is not @background"),
        "onError": (tags.background, "only with @background"),
        "durable": (tags.background, "only with @background"),
        "result": (kind != "join" and shaped,
                   "on a step whose output is used (not on join or a @background step)"),
        "error": (kind != "join" and shaped,
                  "on a step whose output is used (not on join or a @background step)"),
    }


def check_placement(plan: StepPlan) -> list[Diagnostic]:
    """Every task tag either works where it stands or is an error naming where it would."""
    out: list[Diagnostic] = []
    tags = walk_tags(plan.step.tags)
    if not tags:  # most steps: no table to build
        return out
    allowed = _allowed(plan)
    for tag in tags:
        if tag.negated and tag.name not in GATE_TAGS and tag.name in KNOWN_TAGS \
                and tag.name != "async":
            out.append(Diagnostic(f"@!{tag.name} has no meaning: only @env, @flag, @when "
                                  "and @guard can be negated", tag.span, code="bad-tag"))
            continue
        ok, where = allowed.get(tag.name, (True, ""))
        if not ok:
            out.append(Diagnostic(f"@{tag.name} has no effect here: it is allowed {where}",
                                  tag.span, code="bad-tag"))
    return out


def _unknown_tag(name: str) -> str:
    known = {"@" + t for t in KNOWN_TAGS}
    hint = did_you_mean("@" + name, known)
    return f"unknown tag @{name}{hint or ' (known: ' + ', '.join(sorted(known)) + ')'}"


def check_tags(expr: n.TagExpr) -> list[Diagnostic]:
    out = []
    for tag in walk_tags(expr):
        if tag.name not in KNOWN_TAGS:
            out.append(Diagnostic(_unknown_tag(tag.name), tag.span, code="unknown-tag"))
        elif tag.name in ONE_ARG_TAGS and len(tag.args) != 1:
            out.append(Diagnostic(f"@{tag.name} takes exactly one argument", tag.span,
                                  code="bad-tag"))
        elif tag.name == "async" and tag.negated:
            out.append(Diagnostic("@!async has no meaning; the step runs synchronously",
                                  tag.span, code="bad-tag"))
        elif tag.name == "dedup" and len(tag.args) > 1:
            out.append(Diagnostic("@dedup takes at most one argument (a jq key)", tag.span,
                                  code="bad-tag"))
        elif tag.name in ("timeout", "retry") and not is_count(tag.args[0]):
            out.append(Diagnostic(f"@{tag.name} needs a whole number of at most 9 digits",
                                  tag.span, code="bad-tag"))
        elif tag.name == "hedge" and hedge_args(tag.args) is None:
            out.append(Diagnostic("@hedge takes (copies, delay ms) or (copies, delay ms, "
                                  "idempotent); copies is at least 1", tag.span,
                                  code="bad-tag"))
    return out
