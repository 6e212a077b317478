"""Every jq run on a request's path is bounded (issue 22): `jq` steps, `@guard`s, inline
arguments and `dispatch` conditions run inline under the fast path's budget or on libjq in
a sandbox worker (real worker processes here), with the app's `config limits`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

# The budget is generous: runs that must finish on a worker do so on a loaded machine too.
APP = '''
config limits {
  jqTimeoutMs: 1500
  jqMemoryMb: 64
}

pipeline echo =
  |> jq: `{ got: .n }`

GET /regex/:w
  |> jq: `{ hit: (.params.w | test("^a+$")) }`

GET /context
  |> jq: `{ flags: $context.flags, w: .query.w }`

GET /guard/:w
  |> jq: `{ w: .params.w }`
  |> jq: `{ matched: true }` @guard(`.w | test("^a")`)

GET /guard-loop
  |> jq: `{ before: true }`
  |> jq: `{ matched: true }` @guard(`def f: f; f`)

GET /arg/:w
  |> echo({ n: (.params.w | test("b")) })

GET /arg-loop
  |> echo({ n: ([limit(1e9; repeat(1))] | length) })

GET /dispatch/:w
  |> jq: `{ w: .params.w }`
  |> dispatch
    case @guard(`.w | test("^x")`):
      |> jq: `{ picked: "x" }`
    default:
      |> jq: `{ picked: "default" }`
  end

GET /loop
  |> jq: `until(false; .)`

GET /memory/:n
  |> jq: `"x" * (.params.n | tonumber) | length`

GET /big/:n
  |> jq: `[range(.params.n | tonumber)] | length`
'''


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    env = program_from_text(APP, base_dir=tmp_path)
    app = create_app(build_served(env))
    await env.sandbox().warm()  # as serve's startup does: a worker's start is not a run's
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        yield c
    await env.aclose()


async def get(client: httpx.AsyncClient, path: str, status: int = 200) -> object:
    response = await client.get(path, timeout=30)
    assert response.status_code == status, response.text
    return response.json()


async def test_libjq_programs_run_in_a_worker(client: httpx.AsyncClient) -> None:
    assert await get(client, "/regex/aaa") == {"hit": True}
    assert await get(client, "/regex/ab") == {"hit": False}
    assert await get(client, "/context?w=1") == {"flags": {}, "w": 1}


async def test_a_fast_program_past_its_inline_budget_finishes_on_a_worker(
        client: httpx.AsyncClient) -> None:
    assert await get(client, "/big/20000") == 20000  # well past 2 ms inline


async def test_guard_on_a_worker(client: httpx.AsyncClient) -> None:
    assert await get(client, "/guard/abc") == {"matched": True}
    assert await get(client, "/guard/xyz") == {"w": "xyz"}


async def test_a_guard_past_its_budget_is_false(client: httpx.AsyncClient) -> None:
    assert await get(client, "/guard-loop") == {"before": True}


async def test_inline_argument_on_a_worker(client: httpx.AsyncClient) -> None:
    for word, got in (("abc", True), ("xyz", False)):
        body = await get(client, f"/arg/{word}")
        assert isinstance(body, dict) and body["got"] is got  # a call merges into the state


async def test_inline_argument_past_its_budget_is_a_timeout_envelope(
        client: httpx.AsyncClient) -> None:
    body = await get(client, "/arg-loop", 504)  # unhandled timeout (spec/server.md §1)
    assert isinstance(body, dict)
    assert body["errors"][0]["type"] == "timeout"
    assert body["errors"][0]["message"] == "jq program exceeded its 1500 ms time budget"


async def test_dispatch_condition_on_a_worker(client: httpx.AsyncClient) -> None:
    assert await get(client, "/dispatch/xy") == {"picked": "x"}
    assert await get(client, "/dispatch/ab") == {"picked": "default"}


async def test_time_and_memory_bounds_from_config_limits(client: httpx.AsyncClient) -> None:
    body = await get(client, "/loop", 504)
    assert isinstance(body, dict)
    assert body["errors"][0] == {"type": "timeout", "step": "jq",
                                 "message": "jq program exceeded its 1500 ms time budget",
                                 "location": body["errors"][0]["location"]}
    body = await get(client, "/memory/1000000000", 500)
    assert isinstance(body, dict)
    assert body["errors"][0]["type"] == "limitError"
    assert body["errors"][0]["message"] == "jq program exceeded its 64 MB memory budget"
    assert await get(client, "/regex/aaa") == {"hit": True}  # the workers were replaced
