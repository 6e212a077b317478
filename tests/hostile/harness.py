"""A real `webpipe serve` process for hostile-input tests (issue 22): start it on a free
port, probe `/health` while hostile requests run, read its RSS, stop it with SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

MIN_PROBES = 5  # a median of one or two probes (a hostile run that ends at once) says little


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    base: str
    log: Path

    def rss_kb(self) -> int:
        """The server's resident set size now (Linux /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    async def stop(self, grace_s: float = 5.0) -> float:
        """SIGTERM; the seconds until the process exited (fails past `grace_s`)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.proc.wait(), grace_s)
        return time.monotonic() - start


@asynccontextmanager
async def serve(tmp_path: Path, text: str, *args: str) -> AsyncIterator[Served]:
    """`webpipe serve` of `text` (written as tmp_path/app.wp); killed if still running."""
    app = tmp_path / "app.wp"
    app.write_text(text)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "webpipe", "serve", str(app), "--port", str(port), *args,
            stdout=out, stderr=asyncio.subprocess.STDOUT)
    served = Served(proc, f"http://127.0.0.1:{port}", log)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                try:
                    await client.get(served.base + "/health")
                    break
                except httpx.HTTPError:
                    if proc.returncode is not None:
                        raise AssertionError(log.read_text()) from None
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("webpipe serve did not start: " + log.read_text())
        yield served
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def health_while(served: Served, hostile: Awaitable[object],
                       interval_s: float = 0.05) -> tuple[list[float], object]:
    """Probe `/health` every `interval_s` while `hostile` runs: each probe's latency in
    seconds (a probe that got no answer within 1 s counts as 1 s), and hostile's result."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=served.base) as client:
        # the connection is opened before the hostile work starts: probes time answers only
        (await client.get("/health", timeout=5.0)).raise_for_status()
        task = asyncio.ensure_future(hostile)
        while not task.done() or len(latencies) < MIN_PROBES:
            start = time.monotonic()
            try:
                (await client.get("/health", timeout=1.0)).raise_for_status()
                latencies.append(time.monotonic() - start)
            except httpx.HTTPError:
                latencies.append(1.0)
            await asyncio.sleep(interval_s)
    return latencies, await task
