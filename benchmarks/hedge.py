"""W13: hedged calls (issue 25). p50/p99 of a route with `fetch … @hedge(2, 20)` against an
upstream whose latency is 10 ms for 95 % of calls and 500 ms for the other 5 % (drawn per
request), next to the same route without `@hedge`, in one run: the two routes are measured
alternately, request by request, so both see the same machine.

The upstream is a bare asyncio protocol in its own process (pinned to CPU 1 when taskset
exists), as in `fanout.py`; a hedged copy that loses has its connection dropped, which the
upstream simply forgets.

Run: python benchmarks/hedge.py [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import time

import httpx

from benchmarks.fanout import free_port
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

UPSTREAM = """
import asyncio, random, sys
import uvloop

ANSWER = (b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
          b"Content-Length: 11\\r\\n\\r\\n" b'{"ok":true}')
rng = random.Random(13)


class Tail(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.pending = transport, b""

    def data_received(self, data):
        self.pending += data
        while b"\\r\\n\\r\\n" in self.pending:  # GETs only: a request ends at its blank line
            _head, _, self.pending = self.pending.partition(b"\\r\\n\\r\\n")
            ms = 500 if rng.random() < 0.05 else 10
            asyncio.get_running_loop().call_later(ms / 1000, self.answer)

    def answer(self):
        if not self.transport.is_closing():
            self.transport.write(ANSWER)


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Tail, "127.0.0.1", int(sys.argv[1]), backlog=2048)
    await server.serve_forever()

uvloop.run(main())
"""


def program(url: str) -> str:
    return (f"GET /hedged\n  |> fetch: `{url}` @hedge(2, 20)\n  |> jq: `.data.response`\n\n"
            f"GET /plain\n  |> fetch: `{url}`\n  |> jq: `.data.response`\n")


async def start_upstream() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    proc = subprocess.Popen([*pin, sys.executable, "-c", UPSTREAM, str(port)])
    url = f"http://127.0.0.1:{port}/tail"
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                await client.get(url)
                return proc, url
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    raise RuntimeError("upstream did not start")


def quantile(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(requests: int) -> None:
    proc, url = await start_upstream()
    env = program_from_text(program(url))
    app = create_app(build_served(env))
    times: dict[str, list[float]] = {"/plain": [], "/hedged": []}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t", timeout=30) as client:
        for path in times:  # warm-up: connections, jq programs
            for _ in range(10):
                (await client.get(path)).raise_for_status()
        for _ in range(requests):
            for path, samples in times.items():
                start = time.perf_counter()
                (await client.get(path)).raise_for_status()
                samples.append((time.perf_counter() - start) * 1000)
    await env.aclose()
    proc.terminate()
    proc.wait()
    print(f"W13: {requests} requests per route; upstream 10 ms (95 %) / 500 ms (5 %)")
    print(f"{'route':<22}{'p50':>9}{'p99':>9}{'mean':>9}{'max':>9}")
    for path, samples in times.items():
        label = "fetch" if path == "/plain" else "fetch @hedge(2, 20)"
        print(f"{label:<22}{statistics.median(samples):>8.1f}m{quantile(samples, 0.99):>8.1f}m"
              f"{statistics.mean(samples):>8.1f}m{max(samples):>8.1f}m")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    import uvloop

    uvloop.run(main(parser.parse_args().requests))
