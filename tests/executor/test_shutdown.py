"""SIGTERM on a real `webpipe serve` process with tasks in flight: tracked work finishes
within the grace period (nothing lost silently), and work past it is cancelled and logged."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path
from typing import IO

import httpx

from tests.executor.test_tasks_http import Upstream, upstream  # noqa: F401  (fixture)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_serve(app: Path, port: int, log: IO[str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webpipe", "serve", str(app), "--port", str(port),
        stdout=log, stderr=asyncio.subprocess.STDOUT)
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                await client.get(f"http://127.0.0.1:{port}/health")
                return proc
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    raise AssertionError("webpipe serve did not start")


async def test_sigterm_waits_for_tasks_in_flight(tmp_path: Path, upstream: Upstream) -> None:  # noqa: F811
    app = tmp_path / "app.wp"
    app.write_text(f'''
GET /work
  |> jq: `{{ accepted: true }}`
  |> fetch: `{upstream.base}/slow/600` @background

GET /spawn
  |> fetch: `{upstream.base}/slow/700` @async(unjoined)
  |> jq: `{{ spawned: true }}`
''')
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        proc = await start_serve(app, port, log)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/work")).json() == {"accepted": True}
            assert (await client.get("/spawn")).json() == {"spawned": True}
        await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    assert sorted(upstream.finished) == ["/slow/600", "/slow/700"]
    assert upstream.cancelled == []


async def test_sigterm_cancels_and_logs_work_past_the_grace(tmp_path: Path,
                                                            upstream: Upstream) -> None:  # noqa: F811
    app = tmp_path / "app.wp"
    app.write_text(f'''
config async {{
  shutdownGraceMs: 200
}}

GET /long
  |> fetch: `{upstream.base}/slow/5000` @async(long)
  |> jq: `{{ spawned: true }}`
''')
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = await start_serve(app, port, out)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/long")).json() == {"spawned": True}
        await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    text = log.read_text()
    assert "shutdown: cancelling unfinished task GET /long @async(long)" in text
    assert upstream.finished == []


