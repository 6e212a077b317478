"""`@dedup` keys (spec/tasks.md §6) computed by the real planner and middleware: what a
step reads and sends decides, never the rest of the state, and credentials never merge."""

from __future__ import annotations

from typing import Any

from tests.support import body_of
from webpipe.executor.compiled import Call
from webpipe.executor.context import RequestContext
from webpipe.executor.plan import StepPlan
from webpipe.executor.singleflight import dedup_key
from webpipe.executor.steps import step_call
from webpipe.program import program_from_text

APP = '''
GET /pg/:id
  |> pg: `SELECT $1::int AS id` @dedup

GET /jq/:id
  |> jq: `{ id: .params.id }` @dedup

GET /lua/:id
  |> lua: `return { id = request.params.id }` @dedup(`.params.id`)

GET /fetch/:id
  |> fetch("http://upstream.test/x", { headers: { authorization: .headers.authorization } }) @dedup
'''


def plan_of(path: str) -> StepPlan:
    env = program_from_text(APP)
    route = next(r for _m, r in env.index.routes() if r.path == path)
    step = body_of(env, route).steps[0]
    assert isinstance(step, Call)
    return step.plan


def key(plan: StepPlan, state: dict[str, Any]) -> bytes | None:
    return dedup_key(plan, state, step_call(plan, state, None, RequestContext()))


def request(**extra: Any) -> dict[str, Any]:
    base = {"method": "GET", "params": {"id": "1"}, "query": {}, "cookies": {},
            "headers": {"x-request-id": "a"}}
    return {**base, **extra}


def test_pg_keys_on_sql_and_parameters_only() -> None:
    plan = plan_of("/pg/:id")
    one = key(plan, request(sqlParams=[1], headers={"x-request-id": "a", "cookie": "s=1"}))
    two = key(plan, request(sqlParams=[1], headers={"x-request-id": "b"}, query={"u": "2"}))
    assert one == two
    assert key(plan, request(sqlParams=[2])) != one


def test_jq_keys_on_the_input_keys_it_reads() -> None:
    plan = plan_of("/jq/:id")
    assert key(plan, request(headers={"x-request-id": "a"})) == \
        key(plan, request(headers={"x-request-id": "b"}, cookies={"s": "x"}))
    assert key(plan, request()) != key(plan, request(params={"id": "2"}))


def test_an_explicit_key_keeps_credentials_apart() -> None:
    plan = plan_of("/lua/:id")
    alice = request(headers={"authorization": "Bearer alice", "x-request-id": "a"})
    assert key(plan, alice) == key(plan, {**alice, "query": {"unused": "1"}})
    assert key(plan, alice) != key(plan, request(headers={"authorization": "Bearer bob"}))
    assert key(plan, alice) != key(plan, {**alice, "params": {"id": "2"}})


def test_fetch_keys_on_the_request_it_sends() -> None:
    plan = plan_of("/fetch/:id")
    alice = request(headers={"authorization": "Bearer alice", "x-request-id": "a"})
    assert key(plan, alice) == key(plan, {**alice, "headers": {
        "authorization": "Bearer alice", "x-request-id": "b", "cookie": "s=2"}})
    assert key(plan, alice) != key(plan, request(headers={"authorization": "Bearer bob"}))
