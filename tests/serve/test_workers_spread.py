"""`webpipe serve --workers 2` spreads a burst of connections over both workers (issue 23,
W11): each worker listens on its own `SO_REUSEPORT` socket (webpipe/workers.py), so the
kernel hashes connections onto the workers instead of the first worker to wake accepting
most of them. The worker that served a request is read from the JSON access line's `pid`.
Also: a killed worker's replacement, workers that stop when their supervisor is killed,
and the pending-task gauges under two workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.hostile.harness import Served, serve

APP = """
GET /ok
  |> jq: `{ ok: true }`
"""
BURST = 64  # what benchmarks/run.py's wrk opens at once


def served_by(served: Served) -> dict[str, int]:
    """Request id → pid of the worker whose access line names it."""
    out = {}
    for line in served.log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record["logger"] == "webpipe.access":
                out[record["requestId"]] = record["pid"]
    return out


async def one_request(served: Served, rid: str) -> None:
    """A request on a connection of its own, opened by the caller's burst."""
    host, port = served.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET /ok HTTP/1.1\r\nHost: t\r\nX-Request-Id: {rid}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
    finally:
        writer.close()


async def wait_for_ids(served: Served, ids: set[str]) -> dict[str, int]:
    for _ in range(200):  # access lines are written after the answer: poll for them
        seen = served_by(served)
        if ids <= seen.keys():
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"access lines missing for {sorted(ids - served_by(served).keys())}")


async def workers_ready(served: Served, count: int) -> set[int]:
    """Poll the log until `count` workers said they serve (a worker's start can take
    seconds on a loaded machine; until then its socket is not there to be hashed onto);
    their pids."""
    for _ in range(600):
        ready = {json.loads(line)["pid"] for line in served.log.read_text().splitlines()
                 if line.startswith("{") and " serving " in line
                 and json.loads(line)["message"].startswith("worker ")}
        if len(ready) >= count:
            return ready
        await asyncio.sleep(0.05)
    raise AssertionError("workers did not start: " + served.log.read_text())


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody reaped yet has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_a_burst_of_connections_is_spread_over_both_workers(tmp_path: Path) -> None:
    async with serve(tmp_path, APP, "--workers", "2", "--log-format", "json") as served:
        await workers_ready(served, 2)
        # both workers listening: fresh connections until each has answered one
        for attempt in range(100):
            rid = f"warm-{attempt}"
            await one_request(served, rid)
            if len(set((await wait_for_ids(served, {rid})).values())) == 2:
                break
        else:
            raise AssertionError("only one worker ever answered: " + served.log.read_text())
        ids = {f"burst-{i}" for i in range(BURST)}
        await asyncio.gather(*(one_request(served, rid) for rid in ids))
        seen = await wait_for_ids(served, ids)
    per_worker = Counter(seen[rid] for rid in ids)
    assert len(per_worker) == 2, per_worker
    # a hash of 64 connections onto two sockets: below 16 on one side has odds of ~1e-5
    assert min(per_worker.values()) >= 16, per_worker


async def test_a_killed_worker_takes_its_socket_along(tmp_path: Path) -> None:
    """The parent holds no socket: once a killed worker's socket is closed, every new
    connection is answered by the other worker (none waits on a socket nobody accepts on),
    and the supervisor's replacement binds a socket of its own and serves."""
    async with serve(tmp_path, APP, "--workers", "2", "--log-format", "json") as served:
        await one_request(served, "first")
        first = (await wait_for_ids(served, {"first"}))["first"]
        os.kill(first, signal.SIGKILL)
        # For a few milliseconds after the process is gone the kernel still closes its
        # socket, and connections hashed to it are refused or reset (spec/server.md §2):
        # poll until a whole burst is answered, then require the next one to be.
        for settle in range(100):
            results = await asyncio.gather(*(one_request(served, f"settle-{settle}-{i}")
                                             for i in range(32)), return_exceptions=True)
            if not any(isinstance(r, BaseException) for r in results):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"connections still failing after the kill: {results}")
        ids = {f"after-kill-{i}" for i in range(32)}
        await asyncio.wait_for(asyncio.gather(*(one_request(served, rid) for rid in ids)), 20)
        survivors = {pid for rid, pid in (await wait_for_ids(served, ids)).items()
                     if rid in ids}
        assert first not in survivors
        for attempt in range(200):  # the replacement: a pid not seen before
            rid = f"later-{attempt}"
            await one_request(served, rid)
            pid = (await wait_for_ids(served, {rid}))[rid]
            if pid not in survivors | {first}:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("no replacement worker answered: " + served.log.read_text())


async def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """A supervisor killed outright (SIGKILL: no chance to stop its workers) leaves no
    worker serving on with nobody to restart or stop it: each gets SIGTERM from the kernel
    and stops, and the port is free again."""
    async with serve(tmp_path, APP, "--workers", "2", "--log-format", "json") as served:
        workers = await workers_ready(served, 2)
        assert all(running(pid) for pid in workers)
        served.proc.kill()
        await served.proc.wait()
        for _ in range(400):
            if not any(running(pid) for pid in workers):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("workers still running: " + served.log.read_text())
        with pytest.raises(OSError):
            await one_request(served, "after-the-supervisor")


async def test_pending_gauges_under_two_workers(tmp_path: Path) -> None:
    """Under `--workers N` each worker still writes its pending gauges (one process reads
    them when the page is rendered instead): a step pending in one worker shows on the
    page, whichever worker renders it, and is gone once it ended."""
    from aiohttp import web
    from prometheus_client.parser import text_string_to_metric_families

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.json_response({"slept": True})

    upstream = web.Application()
    upstream.router.add_get("/slow", slow)
    runner = web.AppRunner(upstream, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    app = f"""
GET /pending
  |> jq: `{{ ok: true }}`
  |> fetch: `{base}/slow` @background
"""
    try:
        async with serve(tmp_path, app, "--workers", "2", "--metrics") as served, \
                httpx.AsyncClient(base_url=served.base) as client:

            async def gauges() -> dict[str, float]:
                page = (await client.get("/metrics")).text
                return {s.name: s.value for f in text_string_to_metric_families(page)
                        for s in f.samples if s.name.startswith("webpipe_tasks_")}

            assert (await client.get("/pending")).json() == {"ok": True}
            for _ in range(100):
                seen = await gauges()
                if seen.get("webpipe_tasks_oldest_pending_age_seconds", 0) >= 0.2:
                    break
                await asyncio.sleep(0.02)
            assert seen["webpipe_tasks_pending"] >= 1, seen
            assert 0.2 <= seen["webpipe_tasks_oldest_pending_age_seconds"] < 30, seen
            for _ in range(200):  # the upstream answers after 1.5 s: the step ends
                seen = await gauges()
                if seen["webpipe_tasks_pending"] == 0:
                    break
                await asyncio.sleep(0.05)
            assert seen["webpipe_tasks_pending"] == 0, seen
            assert seen["webpipe_tasks_oldest_pending_age_seconds"] == 0, seen
    finally:
        await runner.cleanup()
