"""`@guard` programs are compiled once per text at load (issue 19: no `id()`-keyed table);
a guard that does not compile is reported at every tag that has it, and is false."""

from __future__ import annotations

import httpx

from webpipe.check import check_env
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

APP = r'''
GET /a/:n
  |> jq: `{ big: true }` @guard(`.params.n == 7`)
  |> jq: `{ bad: true }` @guard(`.params.n ==`)

GET /b/:n
  |> jq: `{ big: true }` @guard(`.params.n == 7`)
  |> jq: `{ bad: true }` @!guard(`.params.n ==`)
'''


async def test_guards_are_compiled_once_per_text_and_bad_ones_reported_everywhere() -> None:
    env = program_from_text(APP)
    assert sorted(env.guards) == [".params.n ==", ".params.n == 7"]
    bad = [d for d in check_env(env) if d.code == "bad-guard"]
    assert [(d.span.line, d.severity) for d in bad if d.span] == [(4, "error"), (8, "error")]
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(build_served(env))),
                               base_url="http://t")
    assert (await client.get("/a/7")).json() == {"big": True}
    assert (await client.get("/a/6")).json()["params"] == {"n": 6}
    assert (await client.get("/b/7")).json() == {"big": True}  # false even negated
