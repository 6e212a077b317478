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

from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

from webpipe.executor.branches import selector_path
from webpipe.executor.plan import StepPlan
from webpipe.syntax import nodes as n

# the planner: a regular step's plan (and, for any step, its guards compiled), at load
PlanOf = Callable[[n.Step], StepPlan | None]


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
    untagged middleware calls, compiled with that fast path: `pipeline.run_body`), else
    None (the step loop)."""

    node: n.Pipeline
    steps: tuple[Compiled, ...]
    plain: tuple[StepPlan, ...] | None

    def as_plain(self) -> Body:
        """This body, run in one coroutine when it is plain (a route body's choice)."""
        plain = _plain(self.steps)
        return self if plain is None else Body(self.node, self.steps, plain)


def compile_body(pipeline: n.Pipeline, plan_of: PlanOf,
                 on_body: Callable[[Body], None] | None = None) -> Body:
    """Compile `pipeline` and the bodies inside it, to run step by step (`as_plain` makes
    the one-coroutine choice). `plan_of` sees every step in program order, each before the
    steps inside it, and plans each regular one; `on_body` sees every body made."""
    steps = tuple(_compile_step(step, plan_of, on_body) for step in pipeline.steps)
    body = Body(pipeline, steps, None)
    if on_body is not None:
        on_body(body)
    return body


def _compile_step(step: n.Step, plan_of: PlanOf, on_body: Callable[[Body], None] | None,
                  ) -> Compiled:
    plan = plan_of(step)

    def inner(pipeline: n.Pipeline) -> Body:
        return compile_body(pipeline, plan_of, on_body)

    match step:
        case n.MiddlewareStep():
            assert plan is not None
            return Call(step, plan)
        case n.ResultStep(branches=branches):
            return Result(step, tuple(inner(b.pipeline) for b in branches))
        case n.IfStep(condition=c, then=t, else_=e):
            condition, then = inner(c), inner(t)
            return If(step, condition, then, inner(e) if e else None)
        case n.DispatchStep(cases=cases, default=d):
            compiled = tuple((c.condition, inner(c.pipeline)) for c in cases)
            return Dispatch(step, compiled, inner(d) if d else None)
        case n.ForeachStep(selector=selector, pipeline=p):
            return Foreach(step, tuple(selector_path(selector)), inner(p))
    assert_never(step)


def children(step: Compiled) -> tuple[Body, ...]:
    """The bodies directly inside `step` (none for a regular step: a callee is not inside)."""
    match step:
        case Call():
            return ()
        case Result(branches=branches):
            return branches
        case If(condition=c, then=t, else_=e):
            return (c, t) if e is None else (c, t, e)
        case Dispatch(cases=cases, default=d):
            found = tuple(body for _, body in cases)
            return found if d is None else (*found, d)
        case Foreach(body=body):
            return (body,)
    assert_never(step)


def _plain(steps: tuple[Compiled, ...]) -> tuple[StepPlan, ...] | None:
    plans = []
    for step in steps:
        if not isinstance(step, Call) or step.node.tags is not None \
                or step.plan.kind != "middleware":
            return None
        plans.append(step.plan)
    return tuple(plans) if plans else None

