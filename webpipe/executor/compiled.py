"""Compiled bodies: every pipeline body of a program as objects the interpreter runs.

Loading turns each body (a route's, a named pipeline's, each branch, condition, case and
`foreach` item) into a `Body`: its steps compiled one object per kind (`Call` for a regular
step, holding its `StepPlan`; `Result`, `If`, `Dispatch`, `Foreach` holding their compiled
child bodies). A route body of untagged middleware calls may also be compiled `plain`,
the load-time choice to run it in one coroutine (`routes.py` makes it). A named-pipeline
call's plan holds its callee's `Body`, so the interpreter never looks a step or a body up
while it runs. The syntax nodes compare by
value (two equal steps at different places are equal), so bodies are linked by reference,
never found by a node; `Env.body` finds the body of a program's pipeline node once, at an
entry point (a test, a hook, a handler), by the node's identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from webpipe.executor.branches import selector_path
from webpipe.executor.plan import StepPlan
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.executor.env import Env


@dataclass(frozen=True, slots=True, eq=False)
class Call:
    """A regular step (`|> name: config`): a middleware, pipeline, `join`, loader or
    missing call, as its plan says."""

    node: n.MiddlewareStep
    plan: StepPlan


@dataclass(frozen=True, slots=True, eq=False)
class Result:
    node: n.ResultStep
    branches: tuple[Body, ...]  # one per `node.branches`, in order


@dataclass(frozen=True, slots=True, eq=False)
class If:
    node: n.IfStep
    condition: Body
    then: Body
    else_: Body | None


@dataclass(frozen=True, slots=True, eq=False)
class Dispatch:
    node: n.DispatchStep
    cases: tuple[tuple[n.TagExpr, Body], ...]
    default: Body | None


@dataclass(frozen=True, slots=True, eq=False)
class Foreach:
    node: n.ForeachStep
    path: tuple[str | int, ...]
    body: Body


Compiled = Call | Result | If | Dispatch | Foreach


@dataclass(frozen=True, slots=True, eq=False)
class Body:
    """One pipeline body. `plain`: its plans when it runs in one coroutine (a route body of
    untagged middleware calls, compiled with that fast path: `pipeline._run_plain`), else
    None (the step loop)."""

    node: n.Pipeline
    steps: tuple[Compiled, ...]
    plain: tuple[StepPlan, ...] | None

    def as_plain(self) -> Body:
        """This body, run in one coroutine when it is plain (a route body's choice)."""
        plain = _plain(self.steps)
        return self if plain is None else Body(self.node, self.steps, plain)


def compile_body(pipeline: n.Pipeline, env: Env) -> Body:
    """Compile `pipeline` from the plans in `env` (each body of the program once, at load),
    to run step by step; `as_plain` makes the one-coroutine choice."""
    steps = tuple(_compile_step(step, env) for step in pipeline.steps)
    return Body(pipeline, steps, None)


def _compile_step(step: n.Step, env: Env) -> Compiled:
    match step:
        case n.MiddlewareStep():
            return Call(step, env.plans[id(step)])
        case n.ResultStep(branches=branches):
            return Result(step, tuple(env.body(b.pipeline) for b in branches))
        case n.IfStep(condition=c, then=t, else_=e):
            return If(step, env.body(c), env.body(t), env.body(e) if e else None)
        case n.DispatchStep(cases=cases, default=d):
            return Dispatch(step, tuple((c.condition, env.body(c.pipeline)) for c in cases),
                            env.body(d) if d else None)
        case n.ForeachStep(selector=selector, pipeline=p):
            return Foreach(step, tuple(selector_path(selector)), env.body(p))
    raise AssertionError(step)


def _plain(steps: tuple[Compiled, ...]) -> tuple[StepPlan, ...] | None:
    plans = []
    for step in steps:
        if not isinstance(step, Call) or step.node.tags is not None \
                or step.plan.kind != "middleware":
            return None
        plans.append(step.plan)
    return tuple(plans) if plans else None

