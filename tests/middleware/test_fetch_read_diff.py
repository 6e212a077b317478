"""Differential test (issue 23): `read_capped` reads with `readany()` until `b""` instead of
`async for chunk in content.iter_any()`. Both readers run on the same real aiohttp
responses (one-chunk, many-chunk, empty, exactly-at-cap, past-cap streamed and announced,
gzip-decompressed) from a real upstream on 127.0.0.1 and must give the same bytes or the
same error."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from webpipe.errors import StepError
from webpipe.middleware.fetch_response import read_capped


async def read_capped_before(response: aiohttp.ClientResponse, cap: int, url: str) -> bytes:
    """The reader as it was before issue 23 (the reference for this test)."""
    declared = response.content_length
    if declared is None or declared <= cap:
        body = bytearray()
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > cap:
                break
        else:
            return bytes(body)
        del body
    response.close()
    raise StepError(f"fetch response from {url} exceeds {cap} bytes (fetchMaxBytes)",
                    error_type="responseTooLarge")


async def streamed(request: web.Request) -> web.StreamResponse:
    """`n` chunks of `size` bytes, chunked transfer (no Content-Length)."""
    response = web.StreamResponse()
    await response.prepare(request)
    for i in range(int(request.query["n"])):
        await response.write(bytes([65 + i % 26]) * int(request.query["size"]))
    return response


async def announced(request: web.Request) -> web.Response:
    return web.Response(body=b"y" * int(request.query["n"]))


async def zipped(request: web.Request) -> web.Response:
    return web.Response(body=gzip.compress(b"z" * int(request.query["n"])),
                        headers={"Content-Encoding": "gzip"})


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/streamed", streamed)
    app.router.add_get("/announced", announced)
    app.router.add_get("/zipped", zipped)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


CASES = [  # (path and query, cap, what the reader gives: the body or the cap's error)
    ("/streamed?n=1&size=10", 100, "body"), ("/streamed?n=0&size=1", 100, "body"),
    ("/streamed?n=20&size=1000", 20_000, "body"), ("/streamed?n=20&size=1000", 19_999, "error"),
    ("/streamed?n=20&size=1000", 5_500, "error"), ("/streamed?n=3&size=70000", 100_000, "error"),
    ("/announced?n=0", 0, "body"), ("/announced?n=500", 500, "body"),
    ("/announced?n=501", 500, "error"), ("/announced?n=300000", 1_000_000, "body"),
    ("/zipped?n=5000", 5000, "body"), ("/zipped?n=5001", 5000, "error"),
    ("/zipped?n=400000", 1_000_000, "body"),
]


async def outcome(reader: object, session: aiohttp.ClientSession, url: str,
                  cap: int) -> tuple[str, object]:
    async with session.get(url) as response:
        try:
            return "body", await reader(response, cap, url)  # type: ignore[operator]
        except StepError as exc:
            return "error", (exc.message, exc.error_type)


@pytest.mark.parametrize(("path", "cap", "kind"), CASES)
async def test_read_capped_reads_what_the_iterator_read(upstream: str, path: str, cap: int,
                                                        kind: str) -> None:
    async with aiohttp.ClientSession() as session:
        before = await outcome(read_capped_before, session, upstream + path, cap)
        after = await outcome(read_capped, session, upstream + path, cap)
    assert after == before
    assert before[0] == kind
