"""The `fetch` middleware against real aiohttp servers on 127.0.0.1 (middleware.md §3)."""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.support import SimpleHost
from webpipe.errors import StepError
from webpipe.executor.context import RequestContext
from webpipe.executor.pipeline import run_body
from webpipe.middleware import fetch as fetch_module
from webpipe.middleware.base import Behavior, StepCall
from webpipe.middleware.fetch import FetchConfig, FetchMiddleware
from webpipe.middleware.fetch_response import parse_body
from webpipe.program import program_from_text

JSON = Any


@dataclass
class Upstream:
    """A live test server: its base URL plus what it observed."""

    url: str
    seen: list[dict[str, JSON]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


def _routes(up: Upstream) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        seen = {"method": request.method, "path": request.path,
                "query": request.rel_url.raw_query_string,
                "headers": {k.lower(): v for k, v in request.headers.items()}, "body": body}
        up.seen.append(seen)
        return web.json_response(seen)

    async def slow(request: web.Request) -> web.Response:
        up.in_flight += 1
        up.max_in_flight = max(up.max_in_flight, up.in_flight)
        try:
            await asyncio.sleep(0.1)
        finally:
            up.in_flight -= 1
        return web.json_response({"slow": True})

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    async def stall_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b"partial")
        await asyncio.sleep(30)
        return response

    async def headers(request: web.Request) -> web.Response:
        response = web.Response(text="ok", headers={"X-Ascii": "plain", "X-Utf8": "caf\u00e9"})
        response.headers.add("X-Twice", "first")
        response.headers.add("X-Twice", "second")
        return response

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b'{"zipped": true}'), headers={
            "Content-Encoding": "gzip", "Content-Type": "application/json"})

    async def set_cookie(request: web.Request) -> web.Response:
        response = web.json_response({"set": True})
        response.set_cookie("session", "secret")
        return response

    def fixed(body: bytes, status: int = 200, content_type: str = "text/plain",
              ) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, status=status, headers={"Content-Type": content_type})
        return handler

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/json")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    json_ct = "application/json"
    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/json", fixed(b'{"temp": 21, "tags": ["a"]}', content_type=json_ct))
    app.router.add_get("/text", fixed(b"hello world"))
    app.router.add_get("/number-text", fixed(b"42"))
    app.router.add_get("/bad-json", fixed(b'{"temp": 21', content_type=json_ct))
    app.router.add_get("/nan", fixed(b"NaN", content_type=json_ct))
    app.router.add_get("/empty", fixed(b""))
    app.router.add_get("/latin1", fixed("caf\u00e9".encode("latin-1"),
                                        content_type="text/plain; charset=iso-8859-1"))
    app.router.add_get("/bom", fixed(b'\xef\xbb\xbf{"bom": 1}', content_type=json_ct))
    app.router.add_get("/fail", fixed(b'{"reason": "boom"}', 500, json_ct))
    app.router.add_get("/missing", fixed(b"no such thing", 404))
    app.router.add_get("/created", fixed(b'{"id": 7}', 201, json_ct))
    app.router.add_get("/slow", slow)
    app.router.add_get("/hang", hang)
    app.router.add_get("/stall-body", stall_body)
    app.router.add_get("/headers", headers)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/set-cookie", set_cookie)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    return app


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # As the reference's e2e tests do: keep 127.0.0.1 traffic off any system proxy.
    monkeypatch.setenv("WEBPIPE_DISABLE_SYSTEM_PROXY", "1")


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream("")
    runner, port = await _serve(_routes(up))
    up.url = f"http://127.0.0.1:{port}"
    yield up
    await runner.cleanup()


@pytest.fixture
async def fetch() -> AsyncIterator[FetchMiddleware]:
    middleware = FetchMiddleware(SimpleHost())
    yield middleware
    await middleware.aclose()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def inline(fetch: FetchMiddleware, *args: JSON, state: JSON = None,
                 target: str | None = "r") -> JSON:
    call = StepCall(name="fetch", config="", args=args, target=target)
    result = await fetch.run({} if state is None else state, fetch.prepare("", None), call)
    assert result.content_type == "application/json"
    return result.value


async def from_state(fetch: FetchMiddleware, state: JSON, config: str = "",
                     target: str | None = "r") -> JSON:
    call = StepCall(name="fetch", config=config, target=target)
    return (await fetch.run(state, fetch.prepare(config, None), call)).value


def error_of(value: JSON) -> dict[str, JSON]:
    assert set(value) == {"errors"}
    assert len(value["errors"]) == 1
    error: dict[str, JSON] = value["errors"][0]
    return error


# ---- contract ------------------------------------------------------------------------------


def test_contract_and_prepare() -> None:
    assert FetchMiddleware.behavior is Behavior.MERGE
    assert FetchMiddleware.wraps_data is True
    fetch = FetchMiddleware(SimpleHost())
    assert fetch.prepare("  https://example.test/x \n", None) == FetchConfig("https://example.test/x")
    # Not rejected at load: a state `fetchUrl` may replace it (middleware.md §3 example).
    text = "ignored-because-fetchUrl-wins"
    assert fetch.prepare(text, None).url == text


# ---- success shapes --------------------------------------------------------------------------


async def test_json_response(fetch: FetchMiddleware, upstream: Upstream) -> None:
    value = await inline(fetch, upstream.url + "/json")
    assert list(value) == ["response", "status", "headers"]
    assert value["response"] == {"temp": 21, "tags": ["a"]}
    assert value["status"] == 200
    assert value["headers"]["content-type"] == "application/json"
    assert value["headers"]["content-length"] == "27"


async def test_text_response(fetch: FetchMiddleware, upstream: Upstream) -> None:
    value = await inline(fetch, upstream.url + "/text")
    assert value["response"] == "hello world"
    assert value["headers"]["content-type"].startswith("text/plain")


async def test_body_typing_ignores_content_type(fetch: FetchMiddleware, upstream: Upstream) -> None:
    # Valid JSON is parsed whatever the content type; invalid JSON stays text.
    assert (await inline(fetch, upstream.url + "/number-text"))["response"] == 42
    assert (await inline(fetch, upstream.url + "/bad-json"))["response"] == '{"temp": 21'
    assert (await inline(fetch, upstream.url + "/nan"))["response"] == "NaN"
    assert (await inline(fetch, upstream.url + "/empty"))["response"] == ""


async def test_charset_and_bom(fetch: FetchMiddleware, upstream: Upstream) -> None:
    assert (await inline(fetch, upstream.url + "/latin1"))["response"] == "caf\u00e9"
    assert (await inline(fetch, upstream.url + "/bom"))["response"] == {"bom": 1}


async def test_non_200_success_status(fetch: FetchMiddleware, upstream: Upstream) -> None:
    value = await inline(fetch, upstream.url + "/created")
    assert value["status"] == 201
    assert value["response"] == {"id": 7}


async def test_response_headers(fetch: FetchMiddleware, upstream: Upstream) -> None:
    headers = (await inline(fetch, upstream.url + "/headers"))["headers"]
    assert headers["x-ascii"] == "plain"
    assert headers["x-twice"] == "second"  # a repeated header keeps its last value
    assert headers["x-utf8"] == ""  # non-text values become ""
    assert all(name == name.lower() for name in headers)


async def test_gzip_is_decoded(fetch: FetchMiddleware, upstream: Upstream) -> None:
    value = await inline(fetch, upstream.url + "/gzip")
    assert value["response"] == {"zipped": True}
    assert "content-encoding" not in value["headers"]
    assert "content-length" not in value["headers"]


async def test_redirect_is_followed(fetch: FetchMiddleware, upstream: Upstream) -> None:
    value = await inline(fetch, upstream.url + "/redirect")
    assert value["status"] == 200
    assert value["response"]["temp"] == 21


async def test_without_target_replaces_data_on_a_copy(fetch: FetchMiddleware,
                                                       upstream: Upstream) -> None:
    state = {"keep": 1, "data": {"earlier": True}, "fetchUrl": upstream.url + "/json"}
    before = copy.deepcopy(state)
    value = await from_state(fetch, state, target=None)
    assert state == before  # the input state is not mutated
    assert value["keep"] == 1
    assert value["fetchUrl"] == upstream.url + "/json"
    assert value["data"]["response"] == {"temp": 21, "tags": ["a"]}
    assert "earlier" not in value["data"]


async def test_without_target_on_a_non_object_state(fetch: FetchMiddleware,
                                                    upstream: Upstream) -> None:
    value = await inline(fetch, upstream.url + "/text", state="a string", target=None)
    assert value == {"data": {"response": "hello world", "status": 200,
                              "headers": value["data"]["headers"]}}


# ---- request options -------------------------------------------------------------------------


async def test_default_request(fetch: FetchMiddleware, upstream: Upstream) -> None:
    seen = (await inline(fetch, f"  {upstream.url}/echo?a=1  "))["response"]
    assert seen["method"] == "GET"
    assert seen["query"] == "a=1"
    assert seen["body"] == ""
    assert seen["headers"]["user-agent"] == "WebPipe/1.0"
    assert "content-type" not in seen["headers"]


async def test_method(fetch: FetchMiddleware, upstream: Upstream) -> None:
    url = upstream.url + "/echo"
    assert (await inline(fetch, url, {"method": "PUT"}))["response"]["method"] == "PUT"
    assert (await inline(fetch, url, {"method": "post"}))["response"]["method"] == "POST"
    assert (await inline(fetch, url, {"method": "NOT A METHOD"}))["response"]["method"] == "GET"
    assert (await inline(fetch, url, {"method": 5}))["response"]["method"] == "GET"


async def test_headers(fetch: FetchMiddleware, upstream: Upstream) -> None:
    headers = {"X-Key": "demo", "User-Agent": "custom/2", "X-Num": 5, "bad name": "x",
               "X-Newline": "a\r\nInjected: yes"}
    seen = (await inline(fetch, upstream.url + "/echo", {"headers": headers}))["response"]
    assert seen["headers"]["x-key"] == "demo"
    assert seen["headers"]["user-agent"] == "custom/2"
    for dropped in ("x-num", "bad name", "x-newline", "injected"):
        assert dropped not in seen["headers"]


async def test_json_body(fetch: FetchMiddleware, upstream: Upstream) -> None:
    opts = {"method": "POST", "body": {"name": "caf\u00e9", "n": [1, 2.5]}}
    seen = (await inline(fetch, upstream.url + "/echo", opts))["response"]
    assert seen["body"] == '{"name":"caf\u00e9","n":[1,2.5]}'
    assert seen["headers"]["content-type"] == "application/json"


async def test_string_body_is_a_json_string(fetch: FetchMiddleware, upstream: Upstream) -> None:
    seen = (await inline(fetch, upstream.url + "/echo", {"method": "POST", "body": "hi"}))
    assert seen["response"]["body"] == '"hi"'


async def test_supplied_content_type_wins(fetch: FetchMiddleware, upstream: Upstream) -> None:
    opts = {"method": "POST", "body": {"a": 1}, "headers": {"Content-Type": "text/x-mine"}}
    seen = (await inline(fetch, upstream.url + "/echo", opts))["response"]
    assert seen["headers"]["content-type"] == "text/x-mine"
    assert seen["body"] == '{"a":1}'


async def test_query_option(fetch: FetchMiddleware, upstream: Upstream) -> None:
    query = {"q": "a b&c", "n": 3, "flag": True, "tag": ["x", "y"], "skip": None}
    seen = (await inline(fetch, upstream.url + "/echo?keep=1", {"query": query}))["response"]
    assert seen["query"] == "keep=1&q=a+b%26c&n=3&flag=true&tag=x&tag=y"


async def test_state_form(fetch: FetchMiddleware, upstream: Upstream) -> None:
    state = {"fetchUrl": upstream.url + "/echo", "fetchMethod": "PATCH",
             "fetchHeaders": {"X-From": "state"}, "fetchBody": [1, 2], "fetchTimeout": 5}
    seen = (await from_state(fetch, state, config="http://ignored.invalid/"))["response"]
    assert (seen["method"], seen["body"]) == ("PATCH", "[1,2]")
    assert seen["headers"]["x-from"] == "state"


async def test_state_form_null_body_is_sent(fetch: FetchMiddleware, upstream: Upstream) -> None:
    state = {"fetchUrl": upstream.url + "/echo", "fetchMethod": "POST", "fetchBody": None}
    seen = (await from_state(fetch, state))["response"]
    assert seen["body"] == "null"
    assert seen["headers"]["content-type"] == "application/json"


async def test_config_url_when_no_fetch_url(fetch: FetchMiddleware, upstream: Upstream) -> None:
    value = await from_state(fetch, {"fetchUrl": 7}, config=f"\n  {upstream.url}/json \n")
    assert value["response"]["temp"] == 21


async def test_inline_form_ignores_state_keys(fetch: FetchMiddleware, upstream: Upstream) -> None:
    state = {"fetchMethod": "DELETE", "fetchBody": {"x": 1}, "fetchUrl": "http://no.invalid/"}
    seen = (await inline(fetch, upstream.url + "/echo", state=state))["response"]
    assert (seen["method"], seen["body"]) == ("GET", "")


async def test_bad_inline_arguments_are_step_errors(fetch: FetchMiddleware) -> None:
    with pytest.raises(StepError, match="fetch argument 0 must evaluate to a string, got: 5"):
        await inline(fetch, 5)
    with pytest.raises(StepError, match=r'argument 1 must evaluate to an object, got: \["a"\]'):
        await inline(fetch, "http://127.0.0.1/", ["a"])


# ---- errors ----------------------------------------------------------------------------------


async def test_missing_url(fetch: FetchMiddleware) -> None:
    expected = {"type": "networkError", "message": "Missing URL for fetch middleware"}
    assert error_of(await inline(fetch, "   ")) == expected
    assert error_of(await from_state(fetch, {"keep": 1}, config="  ")) == expected


async def test_connection_refused(fetch: FetchMiddleware, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/x"
    error = error_of(await inline(fetch, url))
    assert list(error) == ["type", "message", "url"]
    assert error["type"] == "networkError"
    assert error["message"].startswith(f"error sending request for url ({url}): ")
    assert error["url"] == url


async def test_invalid_url_is_a_network_error(fetch: FetchMiddleware) -> None:
    for url in ("not a url", "ftp://example.test/file", "http://"):
        error = error_of(await inline(fetch, url))
        assert error == {"type": "networkError", "url": url,
                         "message": f"error sending request for url ({url}): invalid URL"}


async def test_too_many_redirects(fetch: FetchMiddleware, upstream: Upstream) -> None:
    error = error_of(await inline(fetch, upstream.url + "/loop"))
    assert error["type"] == "networkError"


async def test_http_error_carries_the_body_text(fetch: FetchMiddleware, upstream: Upstream) -> None:
    url = upstream.url + "/fail"
    error = error_of(await inline(fetch, url))
    assert list(error) == ["type", "status", "message", "url"]
    assert error == {"type": "httpError", "status": 500, "message": '{"reason": "boom"}',
                     "url": url}
    assert error_of(await inline(fetch, upstream.url + "/missing"))["message"] == "no such thing"


async def test_error_without_target_is_the_bare_envelope(fetch: FetchMiddleware,
                                                         upstream: Upstream) -> None:
    # The executor merges it into the state (Merge rule); the middleware returns only the envelope.
    value = await inline(fetch, upstream.url + "/missing", state={"keep": 1}, target=None)
    assert error_of(value)["type"] == "httpError"


async def test_per_request_timeout(fetch: FetchMiddleware, upstream: Upstream) -> None:
    started = time.monotonic()
    error = error_of(await inline(fetch, upstream.url + "/hang", {"timeout": 1}))
    assert 0.9 < time.monotonic() - started < 5
    assert list(error) == ["type", "message"]
    assert error["type"] == "timeoutError"
    assert error["message"].startswith("error sending request for url (")


async def test_default_timeout(fetch: FetchMiddleware, upstream: Upstream,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_module, "DEFAULT_TIMEOUT", 0.2)
    error = error_of(await from_state(fetch, {"fetchUrl": upstream.url + "/hang"}))
    assert error["type"] == "timeoutError"


async def test_zero_timeout_and_ignored_timeouts(fetch: FetchMiddleware,
                                                 upstream: Upstream) -> None:
    url = upstream.url + "/slow"
    assert error_of(await inline(fetch, url, {"timeout": 0}))["type"] == "timeoutError"
    assert upstream.seen == []
    for ignored in (0.5, -1, True, "1"):
        value = await from_state(fetch, {"fetchUrl": url, "fetchTimeout": ignored})
        assert value["status"] == 200, ignored


async def test_stalled_body_is_a_read_failure(fetch: FetchMiddleware, upstream: Upstream,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_module, "DEFAULT_TIMEOUT", 0.3)
    url = upstream.url + "/stall-body"
    error = error_of(await inline(fetch, url))
    assert error["type"] == "networkError"
    assert error["message"].startswith("Failed to read response body: ")
    assert error["url"] == url


# ---- session ---------------------------------------------------------------------------------


async def test_concurrent_fetches_are_not_serialised(fetch: FetchMiddleware,
                                                     upstream: Upstream) -> None:
    started = time.monotonic()
    values = await asyncio.gather(*(inline(fetch, upstream.url + "/slow") for _ in range(50)))
    elapsed = time.monotonic() - started
    assert all(value["response"] == {"slow": True} for value in values)
    assert elapsed < 2.0  # serialised would be 50 x 100 ms = 5 s
    assert upstream.max_in_flight == 50


async def test_one_session_per_instance_and_aclose(upstream: Upstream) -> None:
    fetch = FetchMiddleware(SimpleHost())
    await fetch.aclose()  # closing before first use is fine
    await inline(fetch, upstream.url + "/json")
    session = fetch.session()
    await inline(fetch, upstream.url + "/json")
    assert fetch.session() is session
    await fetch.aclose()
    assert session.closed
    await fetch.aclose()  # idempotent
    assert (await inline(fetch, upstream.url + "/json"))["status"] == 200  # reopens lazily
    assert fetch.session() is not session
    await fetch.aclose()


async def test_cookies_are_not_shared(fetch: FetchMiddleware, upstream: Upstream) -> None:
    await inline(fetch, upstream.url + "/set-cookie")
    seen = (await inline(fetch, upstream.url + "/echo"))["response"]
    assert "cookie" not in seen["headers"]


async def test_system_proxy_unless_disabled(upstream: Upstream,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = Upstream("")

    async def proxied(request: web.Request) -> web.Response:
        return web.json_response({"via": "proxy", "target": str(request.url)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxied)
    runner, port = await _serve(app)
    proxy.url = f"http://127.0.0.1:{port}"
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", proxy.url)
    try:
        monkeypatch.delenv("WEBPIPE_DISABLE_SYSTEM_PROXY")
        via_proxy = FetchMiddleware(SimpleHost())
        value = await inline(via_proxy, upstream.url + "/json")
        await via_proxy.aclose()
        assert value["response"] == {"via": "proxy", "target": upstream.url + "/json"}
        monkeypatch.setenv("WEBPIPE_DISABLE_SYSTEM_PROXY", "1")
        direct = FetchMiddleware(SimpleHost())
        value = await inline(direct, upstream.url + "/json")
        await direct.aclose()
        assert value["response"]["temp"] == 21
    finally:
        await runner.cleanup()


# ---- through the executor --------------------------------------------------------------------


async def run_named(text: str, name: str, state: JSON) -> JSON:
    env = program_from_text(text)
    try:
        body = env.named[env.index.main.path, name]
        return (await run_body(body, state, env, RequestContext())).state
    finally:
        await env.aclose()


async def test_executor_places_results(upstream: Upstream) -> None:
    text = f"""
pipeline wrapped =
  |> fetch("{upstream.url}/json" + .suffix) @result(wx)

pipeline failing =
  |> fetch("{upstream.url}/fail") @result(wx)

pipeline unnamed =
  |> fetch: `{upstream.url}/text`
"""
    wrapped = await run_named(text, "wrapped", {"suffix": "", "keep": 1})
    assert wrapped["keep"] == 1
    assert wrapped["data"]["wx"]["response"]["temp"] == 21
    failing = await run_named(text, "failing", {"keep": 1})
    assert failing["keep"] == 1
    assert failing["errors"][0]["type"] == "httpError"
    assert "data" not in failing
    unnamed = await run_named(text, "unnamed", {"keep": 1})
    assert unnamed["data"]["response"] == "hello world"
    assert unnamed["keep"] == 1


async def test_executor_async_tasks(upstream: Upstream) -> None:
    text = f"""
pipeline fanout =
  |> fetch("{upstream.url}/slow") @async(a)
  |> fetch("{upstream.url}/slow") @async(b)
  |> fetch("{upstream.url}/missing") @async(c)
  |> join: `a, b, c`
"""
    started = time.monotonic()
    state = await run_named(text, "fanout", {"keep": 1})
    assert time.monotonic() - started < 1.0
    assert state["async"]["a"]["data"]["response"] == {"slow": True}
    assert state["async"]["a"]["keep"] == 1  # snapshot plus data (concurrency.md §3)
    assert state["async"]["c"] == {"errors": [{"type": "httpError", "status": 404,
                                               "message": "no such thing",
                                               "url": upstream.url + "/missing"}]}
    assert json.dumps(state)  # plain JSON throughout


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a": [1, 2.5, "x", null, true]}', {"a": [1, 2.5, "x", None, True]}),
    ('{"a": 1, "a": 2}', {"a": 2}),
    ("123456789012345678901234567890", 123456789012345678901234567890),  # exact, not a float
    ('{"n": 18446744073709551615}', {"n": 18446744073709551615}),
    ("NaN", "NaN"),                      # not strict JSON: the text
    ('{"a": Infinity}', '{"a": Infinity}'),
    ('"\\ud800"', "\ud800"),             # a lone surrogate escape: the json module's reading
    ("not json", "not json"),
    (" 5 ", 5),
])
def test_response_bodies_parse_as_strict_json(text: str, expected: Any) -> None:
    got = parse_body(text)
    assert got == expected and type(got) is type(expected)
