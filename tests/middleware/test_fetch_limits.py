"""`fetch` response bounds (issue 22 outcome 5, spec/limits.md): `fetchMaxBytes` and the
per-request `maxBytes` / `fetchMaxBytes` option, JSON depth, large bodies parsed off the loop;
against a real aiohttp upstream on 127.0.0.1."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.support import SimpleHost
from webpipe.errors import StepError
from webpipe.middleware.base import StepCall
from webpipe.middleware.fetch import FetchMiddleware
from webpipe.middleware.fetch_response import parse_body
from webpipe.wire import JsonTooDeep

KIB = 1024


def _app() -> web.Application:
    async def streamed(request: web.Request) -> web.StreamResponse:
        """`n` KiB in 1 KiB chunks, chunked (no Content-Length), as a JSON string."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'"')
        for _ in range(int(request.query["n"])):
            await response.write(b"a" * KIB)
        await response.write(b'"')
        return response

    async def announced(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query["n"]))

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b" " * (4 * KIB * KIB)),
                            headers={"Content-Encoding": "gzip"})

    async def deep(request: web.Request) -> web.Response:
        depth = int(request.query["d"])
        return web.Response(body=b"[" * depth + b"]" * depth)

    app = web.Application()
    app.router.add_get("/streamed", streamed)
    app.router.add_get("/announced", announced)
    app.router.add_get("/bomb", bomb)
    app.router.add_get("/deep", deep)
    return app


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBPIPE_DISABLE_SYSTEM_PROXY", "1")


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    runner = web.AppRunner(_app(), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def run(limits: dict[str, Any], *args: Any, state: Any = None) -> Any:
    fetch = FetchMiddleware(SimpleHost(configs={"limits": limits}))
    try:
        call = StepCall(name="fetch", config="", args=args, target="r")
        return (await fetch.run(state or {}, fetch.prepare("", None), call)).value
    finally:
        await fetch.aclose()


async def too_large(limits: dict[str, Any], *args: Any, state: Any = None) -> StepError:
    with pytest.raises(StepError) as caught:
        await run(limits, *args, state=state)
    assert caught.value.error_type == "responseTooLarge"
    return caught.value


async def test_a_streamed_body_stops_at_the_cap(upstream: str) -> None:
    url = upstream + "/streamed?n=64"
    error = await too_large({"fetchMaxBytes": 16 * KIB}, url)
    assert error.message == f"fetch response from {url} exceeds {16 * KIB} bytes (fetchMaxBytes)"
    allowed = await run({"fetchMaxBytes": 70 * KIB}, url)
    assert allowed["response"] == "a" * 64 * KIB


async def test_an_announced_length_over_the_cap_is_refused_unread(upstream: str) -> None:
    await too_large({"fetchMaxBytes": 1000}, upstream + "/announced?n=1001")
    assert (await run({"fetchMaxBytes": 1000}, upstream + "/announced?n=1000"))["response"] \
        == "x" * 1000


async def test_the_cap_counts_decompressed_bytes(upstream: str) -> None:
    await too_large({}, upstream + "/bomb?x=1", {"maxBytes": KIB * KIB})
    assert len((await run({}, upstream + "/bomb"))["response"]) == 4 * KIB * KIB


async def test_the_request_option_replaces_the_app_cap(upstream: str) -> None:
    url = upstream + "/streamed?n=8"
    await too_large({}, url, {"maxBytes": 4 * KIB})
    assert (await run({"fetchMaxBytes": 4 * KIB}, url, {"maxBytes": 9 * KIB}))["response"]
    await too_large({}, state={"fetchUrl": url, "fetchMaxBytes": 4 * KIB})
    # not a non-negative integer: ignored, as `timeout` is
    assert (await run({}, url, {"maxBytes": "10"}))["status"] == 200


async def test_the_default_cap_is_ten_mebibytes(upstream: str) -> None:
    await too_large({}, upstream + f"/announced?n={10 * KIB * KIB + 1}")
    # large but allowed: parsed on a worker thread, the same value
    assert (await run({}, upstream + f"/streamed?n={9 * KIB}"))["response"] == "a" * 9 * KIB * KIB


async def test_json_deeper_than_max_json_depth_is_a_limit_error(upstream: str) -> None:
    assert (await run({}, upstream + "/deep?d=512"))["response"] is not None
    for depth, limits in ((513, {}), (5000, {}), (11, {"maxJsonDepth": 10})):
        with pytest.raises(StepError) as caught:
            await run(limits, upstream + f"/deep?d={depth}")
        assert caught.value.error_type == "limitError"
        assert "JSON nested deeper than" in caught.value.message


def test_parse_body_depth() -> None:
    assert parse_body("[[1]]", 2) == [[1]]
    assert parse_body('"[[[["', 2) == "[[[["
    for text in ("[[[1]]]", "[" * 2000 + "]" * 2000, "[" * 600 + '"\\ud800"' + "]" * 600):
        with pytest.raises(JsonTooDeep):
            parse_body(text, 2 if len(text) < 10 else 512)
