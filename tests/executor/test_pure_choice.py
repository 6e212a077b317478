"""`StepPlan.run_pure` (issue 23): a plain body applies a jq or lua step's value directly, without a
`StepCall`, a `StepResult` or `settle`. The differential: the same program served with the
choice taken and with it undone (every step then through `run_sync` and `settle`), on
routes that exercise every state rule the shortcut takes over."""

from __future__ import annotations

from pathlib import Path

import httpx

from webpipe.executor.env import Env
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

APP = r'''
handlebars card = `<b>{{name}}</b>`

GET /chain/:n
  |> jq: `{ n: .params.n }`
  |> jq: `{ n: (.n * 2), again: .params.n, q: .query }`
  |> jq: `{ result: (.n + 1), again: .again, q: .q }`

GET /restored/:n
  |> jq: `{ only: 1 }`
  |> jq: `{ kept: .params, m: .method, only: .only }`

GET /context/:w
  |> jq: `{ w: .params.w, env: $context.env }`
  |> jq: `.`

GET /fails/:w
  |> jq: `{ x: (.params.w | tonumber) }`
  |> jq: `{ never: true }`

GET /fails-last/:w
  |> jq: `{ w: .params.w }`
  |> jq: `{ x: (.w | tonumber) }`

GET /worker/:w
  |> jq: `{ w: .params.w }`
  |> jq: `{ down: (.w | ascii_downcase), has: (.w | test("a")) }`
  |> jq: `{ both: [.down, .has] }`

GET /scalars/:w
  |> jq: `.params.w`
  |> jq: `[., "x"]`
  |> jq: `length`

GET /empty
  |> jq: `empty`
  |> jq: `{ after: . }`

GET /envelope
  |> jq: `{ errors: [{ type: "made", message: "by hand" }] }`
  |> jq: `{ never: true }`

GET /html/:w
  |> jq: `{ name: .params.w }`
  |> handlebars: `<p>{{> card}}</p>`
  |> jq: `{ wrapped: . }`

GET /named/:w
  |> jq: `{ w: .params.w, resultName: "r" }`
  |> jq: `.`

GET /lua/:n
  |> lua: `local out = {} for i = 1, request.params.n do out[i] = i * i end return {squares = out}`

GET /lua-chain/:n
  |> jq: `{ n: .params.n }`
  |> lua: `return { m = request.n * 2, q = request.query, f = 1.5 }`
  |> jq: `{ result: .m, q: .q, f: .f }`

GET /lua-restored/:n
  |> lua: `return { only = 1 }`
  |> jq: `{ kept: .params, only: .only }`

GET /lua-fails/:w
  |> lua: `error("bad " .. request.params.w)`
  |> jq: `{ never: true }`

GET /lua-nil
  |> lua: `return nil`
  |> jq: `{ after: . }`

GET /lua-worker/:n
  |> lua: `local x = 0 for i = 1, 3e6 do x = x + i end return { x = x, n = request.params.n }`
  |> jq: `{ x: .x, n: .n }`

GET /lua-flag
  |> lua: `setFlag("beta", true) return { flagged = getFlag("beta"), text = "é\\0" }`
'''

URLS = ("/chain/7?a=1", "/chain/x", "/restored/3?z=9", "/context/q", "/fails/abc",
        "/fails-last/abc", "/fails/12", "/worker/BaNaNa", "/scalars/abc", "/empty",
        "/envelope", "/html/%3Cx%3E", "/named/n", "/lua/5", "/lua/0", "/lua-chain/4?a=1",
        "/lua-chain/x", "/lua-restored/3", "/lua-fails/w", "/lua-nil", "/lua-worker/2",
        "/lua-worker/2", "/lua-flag")


def _client(tmp_path: Path, pure: bool) -> tuple[httpx.AsyncClient, int, Env]:
    env = program_from_text(APP, base_dir=tmp_path)
    chosen = [plan for plan in env.step_plans if plan.run_pure is not None]
    if not pure:
        for plan in chosen:  # undo the load-time choice: `run_sync` and `settle`
            plan.run_pure = None
    app = create_app(build_served(env))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                             base_url="http://t"), len(chosen), env


async def test_pure_steps_answer_like_settled_ones(tmp_path: Path) -> None:
    (fast, chosen, fast_env), (slow, _, slow_env) = (_client(tmp_path, True),
                                                     _client(tmp_path, False))
    assert chosen == 31 + 7  # every jq and lua step of the program
    try:
        for url in URLS:
            got, want = await fast.get(url), await slow.get(url)
            assert (got.status_code, got.headers["content-type"], got.content) == (
                want.status_code, want.headers["content-type"], want.content), url
        assert (await fast.get("/chain/7?a=1")).json() == {
            "result": 15, "again": 7, "q": {"a": 1}}
        assert (await fast.get("/restored/3")).json() == {
            "kept": {"n": 3}, "m": "GET", "only": 1}
        assert (await fast.get("/fails/abc")).status_code == 500
        assert (await fast.get("/worker/BaNaNa")).json() == {"both": ["banana", True]}
        assert (await fast.get("/lua/3")).json() == {"squares": [1, 4, 9]}
        assert (await fast.get("/lua-restored/3")).json() == {"kept": {"n": 3}, "only": 1}
    finally:
        await fast_env.aclose()
        await slow_env.aclose()
