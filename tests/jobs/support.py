"""Helpers for the durable-job tests: a fresh database per test on the session's embedded
server, a loopback upstream that records what jobs send it, and `webpipe worker`
processes that can be SIGKILLed and restarted."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from tests.support import loopback, with_database

JSON = Any


async def fresh_database(server_url: str, name: str) -> str:
    """A new, empty database on the server; its URL."""
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def fetch_val(url: str, sql: str, *args: JSON) -> JSON:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


@dataclass
class Hooks:
    """What the jobs sent: `POST /hook` bodies (by key), failures, `@onError` reports."""

    base: str = ""
    bodies: list[dict[str, JSON]] = field(default_factory=list)
    failures: list[dict[str, JSON]] = field(default_factory=list)
    reports: list[dict[str, JSON]] = field(default_factory=list)
    started: list[dict[str, JSON]] = field(default_factory=list)
    delay_s: float = 0.0

    def counts(self) -> Counter[str]:
        return Counter(str(b.get("k")) for b in self.bodies)


async def hooks_server() -> AsyncIterator[Hooks]:
    state = Hooks()

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        state.started.append(body)
        if state.delay_s:
            await asyncio.sleep(state.delay_s)
        state.bodies.append(body)
        return web.json_response({"ok": True})

    async def fail(request: web.Request) -> web.Response:
        state.failures.append(await request.json())
        return web.json_response({"broken": True}, status=500)

    async def report(request: web.Request) -> web.Response:
        state.reports.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/fail", fail)
    app.router.add_post("/report", report)
    async with loopback(app, access_log=None) as state.base:
        yield state


@dataclass
class Worker:
    proc: asyncio.subprocess.Process
    log: Path


async def start_worker(app: Path, log: Path, *args: str) -> Worker:
    """`webpipe worker app.wp`, once it says it consumes."""
    with log.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "webpipe", "worker", str(app), *args,
            stdout=out, stderr=asyncio.subprocess.STDOUT)
    await until(lambda: "consuming jobs" in log.read_text() or proc.returncode is not None,
                60)
    assert proc.returncode is None, log.read_text()
    return Worker(proc, log)


async def stop_worker(worker: Worker, sig: int = signal.SIGTERM, wait_s: float = 30) -> None:
    if worker.proc.returncode is None:
        worker.proc.send_signal(sig)
    await asyncio.wait_for(worker.proc.wait(), wait_s)


async def until(check: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll `check` (never a fixed sleep) until it holds, or fail after `seconds`."""
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.05)


async def until_db(url: str, sql: str, expected: JSON, seconds: float = 30.0) -> None:
    """Poll a query until it returns `expected` (pgqueuer writes statuses in batches)."""
    end = time.monotonic() + seconds
    while (got := await fetch_val(url, sql)) != expected:
        assert time.monotonic() < end, f"{sql!r} gave {got!r}, not {expected!r}"
        await asyncio.sleep(0.1)


async def run_cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webpipe", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()
