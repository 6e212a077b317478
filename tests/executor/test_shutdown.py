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
    assert "shutdown: abandoned task GET /long @async(long) at " in text
    assert upstream.finished == []




def drain_app(base: str) -> str:
    steps = "\n".join(f"  |> fetch: `{base}/slow/{2000 + j}` @background" for j in range(10))
    return f'''
config async {{
  shutdownGraceMs: 3000
  maxBackground: 40
}}

GET /bg
  |> jq: `{{ accepted: true }}`
{steps}

GET /long
  |> jq: `{{ accepted: true }}`
  |> fetch: `{base}/slow/60000` @background @async(long)

GET /late
  |> fetch: `{base}/slow/800`
  |> jq: `{{ accepted: true }}`
  |> fetch: `{base}/slow/300` @background
'''


async def test_sigterm_names_every_background_step_it_does_not_run(
        tmp_path: Path, upstream: Upstream) -> None:  # noqa: F811
    """100 background steps of 2 s (ten requests with ten queued steps each) and ten of
    60 s, grace 3 s: each step is seen by the upstream or named in the log, and the process
    exits within 4 s of SIGTERM. A request in flight at the signal still answers, and the
    background step it starts during the shutdown runs."""
    from tests.hostile.harness import serve

    async with serve(tmp_path, drain_app(upstream.base)) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        for _ in range(10):
            assert (await client.get("/bg")).json() == {"accepted": True}
            assert (await client.get("/long")).json() == {"accepted": True}
        late = asyncio.ensure_future(client.get("/late"))
        while "/slow/800" not in upstream.hits:  # the request is in flight at the signal
            await asyncio.sleep(0.02)
        exited_after = await served.stop(grace_s=10)
        assert (await late).json() == {"accepted": True}
    log = served.log.read_text()
    assert exited_after < 4.0, f"exit took {exited_after:.2f} s"
    lines = (tmp_path / "app.wp").read_text().splitlines()
    for j in range(10):
        line = next(i for i, text in enumerate(lines, 1) if f"/slow/{2000 + j}`" in text)
        seen = upstream.hits.count(f"/slow/{2000 + j}")
        named = log.count(f"abandoned task GET /bg @background at {tmp_path}/app.wp:{line} ")
        assert seen + named >= 10 and named <= 10, (j, seen, named)
    long_line = next(i for i, t in enumerate(lines, 1) if "/slow/60000" in t)
    assert log.count("abandoned task GET /long @background @async(long) at "
                     f"{tmp_path}/app.wp:{long_line} ") == 10
    assert "/slow/300" in upstream.finished  # started during the shutdown, finished in it


async def test_sigterm_names_an_abandoned_dedup_call_with_its_route_and_line(
        tmp_path: Path, upstream: Upstream) -> None:  # noqa: F811
    from tests.hostile.harness import serve

    text = f'''
config async {{
  shutdownGraceMs: 1000
}}

GET /shared
  |> fetch: `{upstream.base}/slow/60000` @dedup
  |> jq: `{{ never: true }}`
'''
    async with serve(tmp_path, text) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        pending = asyncio.ensure_future(client.get("/shared"))
        while "/slow/60000" not in upstream.hits:
            await asyncio.sleep(0.02)
        exited_after = await served.stop(grace_s=10)
        await asyncio.gather(pending, return_exceptions=True)  # cut by the shutdown
    assert exited_after < 2.0, f"exit took {exited_after:.2f} s with a 1 s grace"
    app = tmp_path / "app.wp"
    line = next(i for i, t in enumerate(app.read_text().splitlines(), 1) if "@dedup" in t)
    assert f"shutdown: abandoned task GET /shared @dedup at {app}:{line} " \
        in served.log.read_text()
