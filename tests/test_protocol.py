"""webpipe.protocol: the connection cap and the settings, through a real uvicorn server
in the test's loop (the timeouts are tested against `webpipe serve` in tests/hostile)."""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.hostile.harness import free_port
from webpipe.limits import Limits
from webpipe.program import program_from_text
from webpipe.protocol import (
    RESERVED_FILES,
    BoundedHttpProtocol,
    configure_connections,
    raise_file_limit,
)
from webpipe.server import build_served, create_app


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    env = program_from_text("GET /hi\n  |> jq: `{ hi: 1 }`\n", base_dir=tmp_path)
    port = free_port()
    config = uvicorn.Config(create_app(build_served(env)), host="127.0.0.1", port=port,
                            http=BoundedHttpProtocol, lifespan="off", log_level="warning")
    running = uvicorn.Server(config)
    task = asyncio.ensure_future(running.serve())
    while not running.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    await task


@pytest.fixture
def settings() -> Iterator[None]:
    saved = (BoundedHttpProtocol.header_timeout_s, BoundedHttpProtocol.keep_alive_s,
             BoundedHttpProtocol.max_connections)
    yield None
    (BoundedHttpProtocol.header_timeout_s, BoundedHttpProtocol.keep_alive_s,
     BoundedHttpProtocol.max_connections) = saved


async def test_connections_beyond_the_cap_are_refused_with_a_log_line(
        server: str, settings: None, caplog: pytest.LogCaptureFixture) -> None:
    BoundedHttpProtocol.max_connections = 3
    BoundedHttpProtocol._last_refusal = 0.0
    host, port = server.removeprefix("http://").split(":")
    held = [await asyncio.open_connection(host, int(port)) for _ in range(3)]
    with caplog.at_level(logging.WARNING, logger="webpipe.connections"):
        reader, writer = await asyncio.open_connection(host, int(port))
        with pytest.raises(ConnectionError):  # aborted: a reset, or an immediate EOF
            if await asyncio.wait_for(reader.read(), 5) == b"":
                raise ConnectionResetError
        writer.close()
    assert "connection refused: 4 connections open, the cap is 3" in caplog.text
    for _, held_writer in held:
        held_writer.close()
    async with httpx.AsyncClient(base_url=server) as client:
        for _ in range(50):  # the server notices the closed ones on its next loop passes
            try:
                response = await client.get("/hi")
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
        assert response.json() == {"hi": 1}


def test_configure_connections(settings: None) -> None:
    configure_connections(Limits(header_timeout_ms=1500, keep_alive_ms=250))
    assert (BoundedHttpProtocol.header_timeout_s, BoundedHttpProtocol.keep_alive_s) == (1.5, 0.25)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert BoundedHttpProtocol.max_connections == max(1, soft - RESERVED_FILES)


def test_raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 200), hard))
        before, after = raise_file_limit()
        assert before == min(soft, 200)
        assert after == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert after == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
