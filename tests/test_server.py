"""HTTP tests through the real ASGI app (httpx ASGITransport): dispatch order, bad input,
hard errors, static files, CORS, featureFlags, background steps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from webpipe.executor.process_tasks import PROCESS_TASKS
from webpipe.program import program_from_text
from webpipe.routes import FastPaths
from webpipe.server import build_served, create_app

# handlebars renders here also go through the closures alone (tests/templating/differential.py)
pytestmark = pytest.mark.usefixtures("closures_agree")

APP = r'''
featureFlags =
  |> lua: `setFlag("beta", request.headers["x-beta"] == "1")
           return { user = "u-" .. (request.query.who or "anon") }`

GET /hello/:who
  |> jq: `{ hello: .params.who }`

GET /
  |> jq: `{ root: true }`

POST /items
  |> jq: `{ got: .body }`

PATCH /items/:id
  |> jq: `{ patched: .params.id, body: .body }`

DELETE /items/:id
  |> jq: `{ deleted: .params.id }`

GET /files/*rest
  |> jq: `{ rest: .params.rest }`

GET /files/special
  |> jq: `{ special: true }`

GET /beta
  |> jq: `{ beta: true, user: .user }` @flag(beta)
  |> jq: `{ beta: false, user: .user }` @!flag(beta)

GET /page
  |> jq: `{ t: "x" }`
  |> handlebars: `<p>{{t}}</p>`

GET /foreach-bad
  |> jq: `{ items: 1 }`
  |> foreach items
    |> jq: `.`
  end

GET /unknown
  |> nosuch: `x`

GET /bg
  |> jq: `{ ok: true }`
  |> lua: `BG_MARK = true; return request` @background

GET /form
  |> jq: `.body`
'''


@pytest.fixture
def client(tmp_path: Path) -> httpx.AsyncClient:
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "style.css").write_text("body{}")
    (tmp_path / "public" / "hello").mkdir()
    (tmp_path / "secret.txt").write_text("no")
    env = program_from_text(APP, base_dir=tmp_path)
    app = create_app(build_served(env))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_route_params_and_root(client: httpx.AsyncClient) -> None:
    r = await client.get("/hello/ada%20b")
    assert (r.status_code, r.json()) == (200, {"hello": "ada b"})
    assert (await client.get("/")).json() == {"root": True}


async def test_methods(client: httpx.AsyncClient) -> None:
    assert (await client.post("/items", json={"a": 1})).json() == {"got": {"a": 1}}
    assert (await client.patch("/items/3", json=[1])).json() == {"patched": 3, "body": [1]}
    assert (await client.delete("/items/4")).json() == {"deleted": 4}


async def test_literal_beats_catch_all(client: httpx.AsyncClient) -> None:
    assert (await client.get("/files/special")).json() == {"special": True}
    assert (await client.get("/files/a/b.txt")).json() == {"rest": "a/b.txt"}


async def test_not_found_and_method_not_allowed(client: httpx.AsyncClient) -> None:
    r = await client.get("/nope")
    assert (r.status_code, r.text) == (404, "")
    assert (await client.request("OPTIONS", "/hello/x")).status_code in (200, 400, 405)
    assert (await client.post("/health")).status_code == 405


async def test_head_is_answered_like_get(client: httpx.AsyncClient) -> None:
    r = await client.head("/hello/ada")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert (await client.head("/nope")).status_code == 404


async def test_health(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/items", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "Bad Request"


async def test_form_body(client: httpx.AsyncClient) -> None:
    r = await client.request("GET", "/form", content=b"a=1&b=x+y", headers={
        "content-type": "application/x-www-form-urlencoded"})
    assert r.json() == {"a": 1, "b": "x y"}


async def test_hard_errors_are_500_with_location(client: httpx.AsyncClient) -> None:
    r = await client.get("/foreach-bad")
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == "Pipeline execution failed"
    assert body["details"].startswith("At app.wp:")
    r = await client.get("/unknown")
    assert r.status_code == 500 and "unknown middleware 'nosuch'" in r.json()["details"]


async def test_html_content_type(client: httpx.AsyncClient) -> None:
    r = await client.get("/page")
    assert r.headers["content-type"].startswith("text/html")
    assert r.text == "<p>x</p>"


async def test_static_files_and_traversal(client: httpx.AsyncClient) -> None:
    r = await client.get("/style.css")
    assert r.status_code == 200 and r.text == "body{}"
    assert (await client.get("/../secret.txt")).status_code == 404
    assert (await client.get("/%2e%2e/secret.txt")).status_code == 404


async def test_cors(client: httpx.AsyncClient) -> None:
    r = await client.get("/hello/x", headers={"origin": "http://elsewhere"})
    assert r.headers["access-control-allow-origin"] == "*"
    pre = await client.options("/hello/x", headers={
        "origin": "http://elsewhere", "access-control-request-method": "GET"})
    assert pre.status_code == 200


async def test_feature_flags_hook(client: httpx.AsyncClient) -> None:
    on = (await client.get("/beta?who=zed", headers={"x-beta": "1"})).json()
    off = (await client.get("/beta")).json()
    assert on == {"beta": True, "user": "u-zed"}
    assert off == {"beta": False, "user": "u-anon"}


async def test_background_step_is_left_out_of_the_response(client: httpx.AsyncClient) -> None:
    r = await client.get("/bg")
    assert r.json() == {"ok": True}
    await asyncio.sleep(0)
    assert await PROCESS_TASKS.drain(5.0) == []


# -- routes that read only part of the request get only that part built --------------------

PARTIAL_APP = r'''
GET /p/:w
  |> jq: `{ w: .params.w, q: .query.n, m: .method, ct: .content_type }`

POST /p
  |> jq: `{ total: ([.body.items[] | .qty] | add) }`

GET /whole
  |> jq: `.`

GET /ctx
  |> jq: `$context.request.headers["x-k"]`

GET /two
  |> jq: `{ p: .params }`
  |> jq: `.headers["x-k"]`

GET /hdr
  |> jq: `.headers["x-k"]`

GET /lua/:n
  |> lua: `return { n = request.params.n, q = request.query.q }`

GET /multi/:w
  |> jq: `{ n: (.params.w + 1) }`
  |> handlebars: `<p>{{n}}</p>`

GET /cached/:w
  |> cache: `ttl: 60`
  |> jq: `{ hello: .params.w, n: (.params.w + 1) }`

GET /merge-last
  |> jq: `{ a: .params }`
  |> cache: `ttl: 60`

GET /lua-then-jq/:n
  |> lua: `return { n = request.params.n }`
  |> jq: `{ n: .n }`

GET /lua-whole
  |> lua: `local r = request return r.headers["x-k"]`

GET /lua-ctx
  |> lua: `return context.request.headers["x-k"]`
'''


@pytest.fixture
def partial(tmp_path: Path) -> tuple[httpx.AsyncClient, object]:
    served = build_served(program_from_text(PARTIAL_APP, base_dir=tmp_path))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(served)),
                               base_url="http://t")
    return client, served


async def test_only_the_read_keys_are_planned(partial: tuple[httpx.AsyncClient, Any]) -> None:
    _client, served = partial
    planned = {c.route.path: c.reads for c in served.routes()}
    assert planned == {"/p/:w": frozenset({"params", "query", "method", "content_type"}),
                       "/p": frozenset({"body"}), "/whole": None, "/ctx": None,
                       "/two": frozenset({"params", "headers"}), "/hdr": frozenset({"headers"}),
                       "/multi/:w": frozenset({"params", "n"}),
                       "/cached/:w": frozenset({"method", "path", "query", "params"}),
                       "/merge-last": None,       # the last step passes the state on
                       "/lua-then-jq/:n": None,   # Lua is not rerunnable
                       "/lua/:n": frozenset({"params", "query"}), "/lua-whole": None,
                       "/lua-ctx": None}


async def test_partial_requests_answer_like_full_ones(
        partial: tuple[httpx.AsyncClient, Any]) -> None:
    client, _served = partial
    r = await client.get("/p/ada%20b?n=3", headers={"x-k": "v"})
    assert r.json() == {"w": "ada b", "q": 3, "m": "GET", "ct": "application/json"}
    r = await client.post("/p", json={"items": [{"qty": 2}, {"qty": 5}]})
    assert r.json() == {"total": 7}
    whole = (await client.get("/whole?a=1", headers={"x-k": "v"})).json()
    assert whole["headers"]["x-k"] == "v" and whole["query"] == {"a": 1}
    assert whole["originalRequest"] == {"method": "GET", "params": {}, "query": {"a": 1}}
    assert (await client.get("/ctx", headers={"x-k": "c"})).json() == "c"
    assert (await client.get("/two", headers={"x-k": "t"})).json() == "t"
    assert (await client.get("/hdr", headers={"x-k": "h"})).json() == "h"
    assert (await client.get("/lua/4?q=x")).json() == {"n": 4, "q": "x"}
    assert (await client.get("/lua-whole", headers={"x-k": "w"})).json() == "w"
    assert (await client.get("/lua-ctx", headers={"x-k": "c"})).json() == "c"


async def test_multi_step_partial_routes_answer_like_the_whole_request_even_on_errors(
        tmp_path: Path) -> None:
    """An early step's error envelope gets request keys restored into it (§6.3): the partial
    run is redone on the whole request, so both answer byte for byte alike."""
    def client(partial: bool) -> httpx.AsyncClient:
        served = build_served(program_from_text(PARTIAL_APP, base_dir=tmp_path),
                              fast=FastPaths(reads=partial))
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(served)),
                                 base_url="http://t")

    cut, whole = client(True), client(False)
    for url in ("/multi/3", "/multi/x?q=1", "/cached/4", "/cached/y?z=2", "/cached/y?z=2"):
        got, want = await cut.get(url, headers={"x-k": "v"}), await whole.get(
            url, headers={"x-k": "v"})
        assert (got.status_code, got.headers["content-type"], got.content) == (
            want.status_code, want.headers["content-type"], want.content), url
    failed = await cut.get("/multi/x", headers={"x-k": "v"})
    error = failed.json()
    assert error["errors"][0]["type"] == "jqError"
    assert failed.status_code == 500  # unhandled (spec/server.md §1)
    assert "headers" not in error  # restored by §6.3, not the route's answer (server.md §6)
    assert (await cut.get("/multi/3")).text == "<p>4</p>"


async def test_partial_requests_still_refuse_bad_bodies(
        partial: tuple[httpx.AsyncClient, Any]) -> None:
    client, _served = partial
    r = await client.post("/p", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "Bad Request"
    r = await client.post("/p", content=b"items=1",
                          headers={"content-type": "application/x-www-form-urlencoded"})
    # the form body was parsed and handed over: jq sees `items` as the number 1
    assert r.json()["errors"][0]["message"] == "JQ execution error: Cannot iterate over number (1)"


# -- routes of plain middleware steps run in the lighter loop, answering the same -----------

SYNC_APP = r'''
handlebars card = `<b>{{name}}</b>`

GET /a/:w
  |> jq: `{ name: .params.w, n: (.params.w | length) }`
  |> handlebars: `<p>{{> card}} {{n}}</p>`

GET /err/:w
  |> jq: `{ n: (.params.w + 1) }`
  |> jq: `{ m: .n }`

GET /envelope
  |> jq: `{ errors: [{ type: "mine", message: "made by hand" }] }`
  |> jq: `{ never: true }`

GET /scalar
  |> jq: `[1, 2, .method]`
  |> jq: `length`

GET /named
  |> jq: `{ resultName: "x", v: 1 }`
  |> jq: `{ v: (.v + 1), kept: .params }`

GET /html-then-json
  |> handlebars: `<i>{{path}}</i>`
  |> jq: `{ page: . }`

GET /tagged
  |> jq: `{ a: 1 }` @result(r)

GET /lua/:n
  |> lua: `return { n = request.params.n }`
  |> jq: `.n * 2`

GET /cache/:w
  |> cache: `ttl: 60`
  |> jq: `{ w: .params.w }`

GET /flow
  |> jq: `{ a: 1 }`
  |> result
    ok(200):
      |> jq: `.`
'''


async def test_plain_routes_answer_like_the_step_loop(tmp_path: Path) -> None:
    def client(use_plain: bool) -> tuple[httpx.AsyncClient, Any]:
        served = build_served(program_from_text(SYNC_APP, base_dir=tmp_path),
                              fast=FastPaths(plain=use_plain))
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(served)),
                                 base_url="http://t"), served

    (fast, served), (loop, _) = client(True), client(False)
    assert sorted(c.route.path for c in served.routes() if c.plain) == [
        "/a/:w", "/cache/:w", "/envelope", "/err/:w", "/html-then-json", "/lua/:n", "/named",
        "/scalar"]
    for url in ("/a/ada", "/a/%3Cx%3E", "/err/x", "/err/3", "/envelope", "/scalar", "/named",
                "/html-then-json", "/lua/4", "/cache/q", "/cache/q", "/tagged", "/flow"):
        got, want = await fast.get(url), await loop.get(url)
        assert (got.status_code, got.headers["content-type"], got.content) == (
            want.status_code, want.headers["content-type"], want.content), url
    assert (await fast.get("/a/ada")).text == "<p><b>ada</b> 3</p>"
    assert (await fast.get("/err/x")).json()["errors"][0]["type"] == "jqError"


# -- cache hits answered before the pipeline ------------------------------------------------

FRONT_APP = r'''
GET /c/:w
  |> cache: `ttl: 60`
  |> jq: `{ w: .params.w, q: .query, at: now }`

GET /page/:w
  |> cache: `ttl: 60, keyTemplate: page-{params.w}`
  |> jq: `{ w: .params.w, setHeaders: { "x-made": "once" } }`
  |> handlebars: `<p>{{w}}</p>`

GET /by-header
  |> cache: `ttl: 60, keyTemplate: h-{headers.x-k}`
  |> jq: `{ k: .headers["x-k"] }`

GET /short
  |> cache: `ttl: 1`
  |> jq: `{ at: now }`
'''


async def test_front_cache_answers_hits_like_the_pipeline(tmp_path: Path) -> None:
    served = build_served(program_from_text(FRONT_APP, base_dir=tmp_path))
    assert sorted(c.route.path for c in served.routes() if c.front) == [
        "/c/:w", "/page/:w", "/short"]
    plain = build_served(program_from_text(FRONT_APP, base_dir=tmp_path),
                         fast=FastPaths(front=False))
    fast, slow = (httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(s)),
                                    base_url="http://t") for s in (served, plain))
    for url in ("/c/a", "/c/a?x=1", "/page/p", "/by-header"):
        first = await fast.get(url, headers={"x-k": "1"})
        for _ in range(2):  # hits: the same bytes and headers as the first answer
            again = await fast.get(url, headers={"x-k": "1"})
            assert (again.status_code, again.headers.get("content-type"), again.content,
                    again.headers.get("x-made")) == (
                first.status_code, first.headers.get("content-type"), first.content,
                first.headers.get("x-made")), url
        # and the same as a server without the front path, hit for hit
        await slow.get(url, headers={"x-k": "1"})
        twin = await slow.get(url, headers={"x-k": "1"})
        assert (twin.status_code, twin.headers.get("content-type")) == (
            again.status_code, again.headers.get("content-type")), url
    # a different query string is another key; HEAD is answered too
    assert (await fast.get("/c/a?x=2")).json()["q"] == {"x": 2}
    assert (await fast.head("/c/a")).status_code == 200
    # a request announcing a body goes through the pipeline (its body is checked first)
    bad = await fast.request("GET", "/c/a", content=b"{nope",
                             headers={"content-type": "application/json"})
    assert bad.status_code == 400


async def test_front_cache_leaves_stale_entries_to_the_pipeline(tmp_path: Path) -> None:
    served = build_served(program_from_text(FRONT_APP, base_dir=tmp_path))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(served)),
                               base_url="http://t")
    first = (await client.get("/short")).json()
    assert (await client.get("/short")).json() == first  # a hit
    await asyncio.sleep(1.1)
    # stale: the pipeline runs (serving the stale value while it refreshes, §8.3)
    assert (await client.get("/short")).status_code == 200
    front = next(c.front for c in served.routes() if c.route.path == "/short")
    assert front is not None and len(front.keys) == 1
