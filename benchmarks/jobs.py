"""W12: durable jobs. (1) rps of a route with one `@background @durable` step vs the same
route without it (`wrk` with 16 and with 64 connections, alternating rounds, medians; the
server runs `--no-jobs` so only the enqueue is measured); (2) request latency p50/p99 of
both routes, one request at a time (the difference is the enqueue: one INSERT, committed);
(3) job throughput: the jobs written in (1) and (2) drained by two `webpipe worker`
processes (jobs/s).

Run: python benchmarks/jobs.py [--duration 5] [--rounds 3]  (embedded Postgres in a temp
app directory, or DATABASE_URL). Needs `wrk` (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from webpipe.db import connection_url

APP = """config jobs {
  concurrency: 10
}

GET /plain
  |> jq: `{ok: true}`

GET /durable
  |> jq: `{ok: true}`
  |> jq: `{done: true}` @background @durable
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrk(url: str, seconds: int, connections: int = 16) -> float:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}",
                          f"-d{seconds}s", url],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


async def latencies(base: str, path: str, n: int) -> tuple[float, float]:
    samples = []
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(n):
            start = time.perf_counter()
            (await client.get(path)).raise_for_status()
            samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


async def queued(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pgqueuer"))
    finally:
        await conn.close()


async def drain(app: Path, url: str) -> tuple[int, float]:
    """Two workers drain the queue: (jobs, seconds from their start to an empty queue)."""
    total = await queued(url)
    start = time.monotonic()
    workers = [subprocess.Popen([sys.executable, "-m", "webpipe", "worker", str(app)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    try:
        while await queued(url) > 0:
            await asyncio.sleep(0.05)
        return total, time.monotonic() - start
    finally:
        for w in workers:
            w.terminate()
            w.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    assert shutil.which("wrk"), "W12 needs wrk (apt-get install wrk)"
    app = Path(tempfile.mkdtemp(prefix="w12-")) / "app.wp"
    app.write_text(APP)
    url = connection_url(app)
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "webpipe", "serve",
                               str(app), "--port", str(port), "--no-jobs"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(base + "/health")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        httpx.get(base + "/durable").raise_for_status()  # schema installed, pool warm
        plain, durable, plain64, durable64 = [], [], [], []
        for _ in range(args.rounds):
            plain.append(wrk(base + "/plain", args.duration))
            durable.append(wrk(base + "/durable", args.duration))
            plain64.append(wrk(base + "/plain", args.duration, 64))
            durable64.append(wrk(base + "/durable", args.duration, 64))
        lat_plain = asyncio.run(latencies(base, "/plain", 1000))
        lat_durable = asyncio.run(latencies(base, "/durable", 1000))
    finally:
        server.terminate()
        server.wait(30)
    jobs, seconds = asyncio.run(drain(app, url))
    p, d = statistics.median(plain), statistics.median(durable)
    print(f"W12 rps: plain {p:.0f}, durable {d:.0f}, ratio {d / p:.2f} "
          f"(rounds plain {[round(x) for x in plain]}, durable {[round(x) for x in durable]})")
    p64, d64 = statistics.median(plain64), statistics.median(durable64)
    print(f"W12 rps at 64 connections: plain {p64:.0f}, durable {d64:.0f}, "
          f"ratio {d64 / p64:.2f}")
    print(f"latency ms p50/p99: plain {lat_plain[0]:.2f}/{lat_plain[1]:.2f}, "
          f"durable {lat_durable[0]:.2f}/{lat_durable[1]:.2f}; enqueue adds "
          f"{lat_durable[0] - lat_plain[0]:.2f} ms at p50, "
          f"{lat_durable[1] - lat_plain[1]:.2f} ms at p99")
    print(f"throughput: {jobs} jobs drained by 2 workers in {seconds:.1f} s = "
          f"{jobs / seconds:.0f} jobs/s (worker start-up included)")


if __name__ == "__main__":
    main()
