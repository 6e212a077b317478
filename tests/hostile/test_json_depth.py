"""Issue 22 outcome 4: request JSON is bounded in depth (`maxJsonDepth`, default 512).

A body nested deeper is a 400 JSON error; every step that walks the value (jq fast path and
libjq, Lua conversion, handlebars, validate, cache keys, response serialisation) handles an
accepted body of exactly the bound, through a real `webpipe serve`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.hostile.harness import health_while, serve
from tests.hostile.responsive import assert_responsive
from webpipe.check import check_file

APP = """
POST /echo
POST /jq/fast
  |> jq: `{ b: .body, n: 1 }`
POST /jq/compare
  |> jq: `{ same: (.body == .body), text: (.body | tojson | length), k: (.body | keys) }`
POST /jq/walk
  |> jq: `.body | walk(.)`
POST /lua
  |> lua: `return { n = 1, body = request.body }`
POST /handlebars
  |> jq: `{ items: [.body] }`
  |> handlebars: `<p>{{#each items}}{{this}}{{/each}}</p>`
POST /validate
  |> validate: `{ body: string }`
POST /cache
  |> cache: `ttl: 600, keyTemplate: k-{body}`
  |> jq: `.body`
POST /jq/library
  |> jq: `[([.body, .body] | sort | length), ([.body | paths] | length), ([.body | ..] | length)]`
POST /jq/text
  |> jq: `[(.body | tostring | length), ([.body] | group_by(.) | length), (.body|tojson|fromjson)]`
POST /mustache
  |> mustache: `{{body}}`
POST /log
  |> log: `level: info, includeBody: true`
  |> jq: `{ logged: true }`
GET /built/:n
  |> jq: `reduce range(.params.n) as $i (1; [.])`
"""

ROUTES = ("/echo", "/jq/fast", "/jq/compare", "/jq/walk", "/lua", "/handlebars", "/validate",
          "/cache", "/jq/library", "/jq/text", "/mustache", "/log")
JSON_CT = {"content-type": "application/json"}


def nested(depth: int, kind: str) -> str:
    if kind == "array":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("kind", ["array", "object"])
async def test_every_step_handles_the_bound_and_refuses_beyond(tmp_path: Path,
                                                               kind: str) -> None:
    async with serve(tmp_path, APP) as served, httpx.AsyncClient(base_url=served.base) as c:
        for route in ROUTES:
            for depth in (511, 512):
                r = await c.post(route, content=nested(depth, kind), headers=JSON_CT)
                # handled: a success or a step's error envelope (its status follows its
                # type, spec/server.md §1), never a hard failure
                assert r.status_code < 500 or "errors" in r.json(), (route, depth, r.text[:300])
            r = await c.post(route, content=nested(513, kind), headers=JSON_CT)
            assert r.status_code == 400, (route, r.text[:300])
            assert r.json() == {"error": "Bad Request",
                                "details": "JSON nested deeper than 512 levels"}
        # a value a jq step builds deeper than any serialiser: libjq runs in a sandbox worker
        # (spec/sandbox.md), which cannot send it back: the step's limitError, no traceback
        built = await c.get("/built/3000")
        assert built.json()["errors"][0] == {
            "type": "limitError", "step": "jq",
            "message": "jq program: its result is nested too deeply to return",
            "location": built.json()["errors"][0]["location"]}
        echoed = await c.post("/echo", content=nested(512, kind), headers=JSON_CT)
        assert echoed.json()["body"] == httpx.Response(200, content=nested(512, kind)).json()
        assert "RecursionError" not in served.log.read_text()


async def test_configured_depth_and_the_ceiling(tmp_path: Path) -> None:
    app = "config limits {\n  maxJsonDepth: 4\n}\n" + APP
    async with serve(tmp_path, app) as served, httpx.AsyncClient(base_url=served.base) as c:
        assert (await c.post("/echo", content=nested(4, "array"), headers=JSON_CT)).is_success
        r = await c.post("/echo", content=nested(5, "array"), headers=JSON_CT)
        assert r.status_code == 400
        assert r.json()["details"] == "JSON nested deeper than 4 levels"
        # brackets inside strings are not nesting
        ok = await c.post("/echo", content='["[[[[[[[[{{{{{{"]', headers=JSON_CT)
        assert ok.json()["body"] == ["[[[[[[[[{{{{{{"]
    (tmp_path / "big").mkdir()
    app = "config limits {\n  maxJsonDepth: 5000\n}\n" + APP
    async with serve(tmp_path / "big", app) as served, \
            httpx.AsyncClient(base_url=served.base) as c:
        r = await c.post("/echo", content=nested(513, "array"), headers=JSON_CT)
        assert r.status_code == 400
        assert "maxJsonDepth must be between 1 and 512" in served.log.read_text()


async def test_deep_bodies_do_not_stall_the_server(tmp_path: Path) -> None:
    """8 clients posting 1,000-deep bodies (a 500 RecursionError before) and 512-deep ones
    through Lua: /health keeps answering, RSS returns, SIGTERM is prompt."""
    async with serve(tmp_path, APP) as served:
        async with httpx.AsyncClient(base_url=served.base, timeout=30) as c:
            await c.post("/lua", content=nested(10, "array"), headers=JSON_CT)
            rss_before = served.rss_kb()

            async def hostile(i: int) -> list[int]:
                codes = []
                for _ in range(10):
                    deep = nested(1000 if i % 2 else 512, "object" if i % 4 < 2 else "array")
                    codes.append((await c.post("/lua", content=deep, headers=JSON_CT))
                                 .status_code)
                return codes

            latencies, codes = await health_while(
                served, asyncio.gather(*(hostile(i) for i in range(8))))
        assert_responsive(latencies)
        assert {code for batch in codes for code in batch} == {200, 400}  # type: ignore[union-attr]
        assert served.rss_kb() < rss_before * 1.1
        assert await served.stop() < 5


def test_check_warns_at_a_depth_past_the_ceiling(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text("config limits {\n  maxJsonDepth: 5000\n}\n" + APP)
    [warning] = [d for d in check_file(app) if d.code == "limits"]
    assert warning.severity == "warning" and warning.span is not None
    assert (warning.span.line, warning.span.column) == (2, 3)
    assert warning.message.startswith("maxJsonDepth must be between 1 and 512")


def wide(count: int) -> bytes:
    return b"[" + b",".join([b"[]"] * count) + b"]"


async def test_wide_bodies_are_refused_before_parsing(tmp_path: Path) -> None:
    """8 clients each posting a 6 MB body of two million empty arrays (each held the loop ~0.5 s
    while parsed): a 400 before any parse, /health keeps answering; a configured
    `maxJsonContainers` applies to request and fetch bodies alike.

    RSS: receiving 16 bodies of 6 MB at once leaves the process at a high-water mark
    (46 -> ~85-135 MB, by how many bodies overlap; a hand-written Starlette app on uvicorn
    that only reads such bodies goes 34 -> 79 MB), so the check is that it stays within what
    the bodies in flight take (8 x 6 MB, twice over) across three waves (288 MB in all)."""
    app = APP + "\nGET /upstream\n  |> jq: `[range(50) | [.]]`\n"
    async with serve(tmp_path, app) as served:
        async with httpx.AsyncClient(base_url=served.base, timeout=30) as c:
            await c.post("/echo", content=wide(10), headers=JSON_CT)
            rss_start = served.rss_kb()
            body = wide(2_000_000)
            rss_waves = []

            async def hostile() -> list[httpx.Response]:
                return [await c.post("/echo", content=body, headers=JSON_CT)
                        for _ in range(1)]

            for _ in range(3):
                latencies, answers = await health_while(
                    served, asyncio.gather(*(hostile() for _ in range(8))))
                assert_responsive(latencies)
                rss_waves.append(served.rss_kb())
        for batch in answers:  # type: ignore[union-attr]
            for r in batch:
                assert r.status_code == 400
                assert r.json()["details"] == "JSON has more than 200000 arrays and objects"
        assert max(rss_waves) - rss_start < 2 * 8 * len(body) // 1024, (rss_start, rss_waves)
    (tmp_path / "small").mkdir()
    app = ("config limits {\n  maxJsonContainers: 20\n}\n" + APP
           + "\nGET /upstream\n  |> jq: `[range(50) | [.]]`\n")
    async with serve(tmp_path / "small", app) as served:
        async with httpx.AsyncClient(base_url=served.base) as c:
            assert (await c.post("/echo", content=wide(19), headers=JSON_CT)).is_success
            r = await c.post("/echo", content=wide(20), headers=JSON_CT)
            assert r.status_code == 400
            app_fetch = f"GET /f\n  |> fetch: `{served.base}/upstream`\n"
            (tmp_path / "small" / "f").mkdir()
        async with serve(tmp_path / "small" / "f",
                         "config limits {\n  maxJsonContainers: 20\n}\n" + app_fetch) as other, \
                httpx.AsyncClient(base_url=other.base) as c2:
            error = (await c2.get("/f")).json()["errors"][0]
            assert error["type"] == "limitError"
            assert "more than 20 arrays and objects (maxJsonContainers)" in error["message"]
