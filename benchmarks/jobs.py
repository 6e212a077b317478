"""W12: durable jobs. (1) rps of a route with one `@background @durable` step vs the same
route without it (`wrk` with 16 and with 64 connections, alternating rounds, medians; the
server runs `--no-jobs` so only the enqueue is measured); (2) request latency p50/p99 of
both routes, one request at a time (the difference is the enqueue: one INSERT, committed);
(3) job throughput: the jobs written in (1) and (2) drained by two `webpipe worker`
processes (jobs/s). (1) and (2) run with `config jobs { syncCommit: true }` (the default: the
enqueue waits for the WAL flush) and `false` (it does not).

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
from typing import Any

import asyncpg
import httpx

from webpipe.db import connection_url

APP = """config jobs {
  concurrency: 10
  syncCommit: SYNC
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


def measure(app: Path, rounds: int, duration: int) -> dict[str, object]:
    """rps (16 and 64 connections) and sequential latency of both routes."""
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "webpipe", "serve",
                               str(app), "--port", str(port), "--no-jobs"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    rps: dict[str, list[float]] = {"plain16": [], "durable16": [], "plain64": [],
                                   "durable64": []}
    try:
        for _ in range(100):
            try:
                httpx.get(base + "/health")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        httpx.get(base + "/durable").raise_for_status()  # schema installed, pool warm
        for _ in range(rounds):
            for name in rps:
                route, conns = name[:-2], int(name[-2:])
                rps[name].append(wrk(f"{base}/{route}", duration, conns))
        lat_plain = asyncio.run(latencies(base, "/plain", 1000))
        lat_durable = asyncio.run(latencies(base, "/durable", 1000))
    finally:
        server.terminate()
        server.wait(30)
    return {"rps": {k: statistics.median(v) for k, v in rps.items()}, "rounds": rps,
            "plain": lat_plain, "durable": lat_durable}


def report(label: str, m: dict[str, Any]) -> None:
    rps, lp, ld = m["rps"], m["plain"], m["durable"]
    for conns in ("16", "64"):
        p, d = rps["plain" + conns], rps["durable" + conns]
        print(f"{label} rps at {conns} connections: plain {p:.0f}, durable {d:.0f}, "
              f"ratio {d / p:.2f}")
    print(f"{label} latency ms p50/p99: plain {lp[0]:.2f}/{lp[1]:.2f}, durable "
          f"{ld[0]:.2f}/{ld[1]:.2f}; enqueue adds {ld[0] - lp[0]:.2f} ms at p50")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    assert shutil.which("wrk"), "W12 needs wrk (apt-get install wrk)"
    app = Path(tempfile.mkdtemp(prefix="w12-")) / "app.wp"
    app.write_text(APP.replace("SYNC", "false"))
    url = connection_url(app, keep_running=False)  # stopped when this script exits
    relaxed = measure(app, args.rounds, args.duration)
    app.write_text(APP.replace("SYNC", "true"))
    durable = measure(app, args.rounds, args.duration)
    jobs, seconds = asyncio.run(drain(app, url))
    report("syncCommit: true (default)", durable)
    report("syncCommit: false", relaxed)
    print(f"throughput: {jobs} jobs drained by 2 workers in {seconds:.1f} s = "
          f"{jobs / seconds:.0f} jobs/s (worker start-up included)")


if __name__ == "__main__":
    main()
