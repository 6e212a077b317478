"""Issue 22 outcome 1: hostile jq programs against a real `webpipe serve` (run on demand).

For each program, 8 concurrent requests while `/health` is probed every 50 ms: how many
probes answered within 100 ms, how long the hostile requests took (cut off at `--window`
seconds), the status and error type they got, the server's RSS before and after, and how
long SIGTERM took to stop the server (cut off at 10 s). Prints one table row per program.

    python benchmarks/hostile_jq.py [--window 30]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.hostile.harness import health_while, serve

PROGRAMS = {
    "/recurse": "def f: f; f",
    "/until": "until(false; .)",
    "/limit": "[limit(1e8; repeat(1))]",
    "/range?n=30000000": "[range(.query.n)]",
    "/repeat?n=1000000000": "\"x\" * .query.n | length",
}


def app_text() -> str:
    routes = []
    for path, program in PROGRAMS.items():
        routes.append(f"GET {path.split('?')[0]}\n  |> jq: `{program}`\n")
    return "GET /health\n  |> jq: `{ok: true}`\n\n" + "\n".join(routes)


async def one(client: httpx.AsyncClient, path: str, window: float) -> tuple[float, str]:
    start = time.monotonic()
    try:
        response = await client.get(path, timeout=window)
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        label = f"{response.status_code} {errors[0]['type'] if errors else 'ok'}"
    except httpx.HTTPError as exc:
        label = type(exc).__name__
    return time.monotonic() - start, label


async def measure(path: str, window: float) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        async with serve(Path(tmp), app_text()) as served:
            async with httpx.AsyncClient(base_url=served.base) as client:
                await client.get("/health")
            rss_before = served.rss_kb()
            async with httpx.AsyncClient(base_url=served.base) as client:
                hostile = asyncio.gather(*(one(client, path, window) for _ in range(8)))
                probes, results = await health_while(served, hostile)
            assert isinstance(results, list)
            await asyncio.sleep(0.5)
            rss_after = served.rss_kb()
            try:
                stop = f"{await served.stop(10.0):.2f} s"
            except TimeoutError:
                stop = "> 10 s (killed)"
    fast = sum(1 for p in probes if p < 0.1)
    durations = sorted(d for d, _ in results)
    labels = sorted({label for _, label in results})
    return (f"| `{PROGRAMS[path]}` | {fast}/{len(probes)} | {max(probes) * 1000:.0f} ms | "
            f"{durations[0]:.2f}-{durations[-1]:.2f} s | {', '.join(labels)} | "
            f"{rss_before // 1024} -> {rss_after // 1024} MB | {stop} |")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("paths", nargs="*", default=list(PROGRAMS))
    args = parser.parse_args()
    print("| program | health < 100 ms | slowest probe | 8 requests took | answers | RSS "
          "| SIGTERM |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for path in args.paths:
        print(await measure(path, args.window), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
