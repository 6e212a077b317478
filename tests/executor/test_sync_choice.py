"""The sync fast path is a load-time choice (`StepPlan.run_sync`, issue 19): a step whose
middleware offers `run_sync` runs without a coroutine, and answers exactly as through `run`.
The differential: the same program served with the choice taken and with it undone."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from webpipe.program import program_from_text
from webpipe.routes import FastPaths
from webpipe.server import build_served, create_app

# handlebars renders here also go through the closures alone (tests/templating/differential.py)
pytestmark = pytest.mark.usefixtures("closures_agree")

APP = r'''
handlebars card = `<b>{{name}}</b>`

GET /a/:w
  |> jq: `{ name: .params.w, n: (.params.w | length) }`
  |> handlebars: `<p>{{> card}} {{n}}</p>`

GET /err/:w
  |> jq: `{ n: (.params.w + 1) }` @error(bad)
  |> result
    bad(422):
      |> jq: `{ failed: .errors[0].type }`
    ok(200):
      |> jq: `.`

GET /lua/:n
  |> lua: `return { n = tonumber(request.params.n) * 3 }`
  |> jq: `.n + 1` @result(r)

GET /cache/:w
  |> cache: `ttl: 60`
  |> jq: `{ w: .params.w }`

GET /tasks
  |> jq: `{ a: 1 }` @async(one)
  |> jq: `{ b: 2 }` @async(two)
  |> join: one, two

GET /dedup/:w
  |> jq: `{ w: .params.w }` @dedup
'''

URLS = ("/a/ada", "/a/%3Cx%3E", "/err/x", "/err/3", "/lua/4", "/cache/q", "/cache/q",
        "/tasks", "/dedup/z")


def _client(tmp_path: Path, sync: bool) -> tuple[httpx.AsyncClient, int]:
    env = program_from_text(APP, base_dir=tmp_path)
    chosen = [plan for plan in env.step_plans if plan.run_sync is not None]
    assert all(plan.run_sync is None for plan in env.step_plans if plan.tags.dedup)
    if not sync:
        for plan in chosen:  # undo the load-time choice: every call goes through `run`
            plan.run_sync = None
    # every step through the step loop, so the two differ only in the sync choice
    served = build_served(env, fast=FastPaths(plain=False, front=False))
    app = create_app(served)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                             base_url="http://t"), len(chosen)


async def test_sync_steps_answer_like_their_run(tmp_path: Path) -> None:
    (fast, chosen), (slow, _) = _client(tmp_path, True), _client(tmp_path, False)
    # the jq, handlebars, lua and cache steps chose `run_sync`; the `@dedup` step did not
    assert chosen == 11
    for url in URLS:
        got, want = await fast.get(url), await slow.get(url)
        assert (got.status_code, got.headers["content-type"], got.content) == (
            want.status_code, want.headers["content-type"], want.content), url
    assert (await fast.get("/err/x")).json() == {"failed": "bad"}
    assert (await fast.get("/lua/4")).json() == 13
    assert (await fast.get("/tasks")).json()["async"] == {"one": {"a": 1}, "two": {"b": 2}}
