"""Compiled bodies (executor/compiled.py): one object per step kind, linked at load."""

from __future__ import annotations

from tests.support import body_of
from webpipe.executor.compiled import Body, Call, Dispatch, Foreach, If, Result, children
from webpipe.executor.env import Env
from webpipe.program import program_from_text
from webpipe.routes import STEP_LOOP_ONLY, compile_route, compile_routes
from webpipe.syntax import nodes as n

APP = '''pipeline count =
  |> jq: `{ n: (.n - 1) }`
  |> if
    |> jq: `.n > 0`
    then:
      |> pipeline: count
  end

GET /flow
  |> jq: `{ n: 3, xs: [1, 2] }`
  |> pipeline: count
  |> if
    |> jq: `true`
    then:
      |> jq: `{ a: 1 }`
    else:
      |> jq: `{ b: 1 }`
  end
  |> dispatch
    case @env(production):
      |> jq: `{ p: 1 }`
    default:
      |> jq: `{ d: 1 }`
  end
  |> foreach xs
    |> jq: `{ x: . }`
  end
  |> result
    ok(200):
      |> jq: `{ ok: true }`

GET /plain
  |> jq: `{ a: 1 }`
  |> jq: `{ b: .a }`
'''


def _route(env: Env, path: str) -> n.Route:
    return next(r for _m, r in env.index.routes() if r.path == path)


def test_each_step_kind_compiles_to_its_class_holding_its_bodies() -> None:
    env = program_from_text(APP)
    body = body_of(env, _route(env, "/flow"))
    kinds = [type(step) for step in body.steps]
    assert kinds == [Call, Call, If, Dispatch, Foreach, Result]
    assert body.plain is None
    flow_if = body.steps[2]
    assert isinstance(flow_if, If) and flow_if.else_ is not None
    assert children(flow_if) == (flow_if.condition, flow_if.then, flow_if.else_)
    foreach = body.steps[4]
    assert isinstance(foreach, Foreach) and foreach.path == ("xs",)
    # an entry point holds its body from load: the route table runs this very body
    found = compile_routes(env).match("GET", "/flow")
    assert found is not None and found[0].body is body


def test_a_pipeline_call_holds_its_callee_body_even_a_recursive_one() -> None:
    env = program_from_text(APP)
    count = env.index.pipeline(env.index.main, "count")
    assert count is not None
    callee = body_of(env, count)
    call = body_of(env, _route(env, "/flow")).steps[1]
    assert isinstance(call, Call) and call.plan.callee_body is callee
    inner_if = callee.steps[1]
    assert isinstance(inner_if, If)
    recursive = inner_if.then.steps[0]
    assert isinstance(recursive, Call) and recursive.plan.callee_body is callee
    # every plan is held by a compiled step, in program order
    plans = [step.plan for step in callee.steps if isinstance(step, Call)]
    assert env.step_plans[:1] == plans


def test_a_plain_route_body_is_a_compile_time_choice() -> None:
    env = program_from_text(APP)
    route = _route(env, "/plain")
    stepwise: Body = body_of(env, route)
    assert stepwise.plain is None  # bodies are compiled for the step loop
    fast = compile_route(route, body_of(env, route))
    slow = compile_route(route, body_of(env, route), STEP_LOOP_ONLY)
    assert fast.plain and not slow.plain
    flow = _route(env, "/flow")
    assert compile_route(flow, body_of(env, flow)).plain is False
