"""W5: fork/join fan-out. N `fetch @async` steps to a loopback upstream that sleeps 50 ms,
then one `join`; compared with a hand-written Starlette handler doing the same N requests
with `asyncio.gather` on one aiohttp session (what the machine and upstream allow), and
with the same N fetches run sequentially.

Everything runs on uvloop, as `webpipe serve` does (uvicorn picks it when installed), and
the process's GC is set up as `webpipe serve` sets it up after loading (`like_serve`).

Run: python benchmarks/fanout.py [--cpu [N] | --clients [N]]  (`--cpu`: CPU µs per branch
only, see `cpu_per_branch`; `--clients`: p50 of the route with fetch's fast client and with
aiohttp alone, and of the hand-written handler, alternating in one process, see
`clients_p50`; without either, prints p50/p99 per N and the ratio to the slowest branch:
the nominal 50 ms, and one branch measured alone, a GET straight to the upstream). The row
`50/16` is N = 50 under `config async { maxGlobal: 16 }`: four waves, so ~200 ms at best;
its hand-written baseline holds an asyncio.Semaphore(16).
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import socket
import statistics
import subprocess
import sys
import time

import httpx

from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

SLEEP_MS = 50


# The upstream stands for a service 50 ms away: it answers every request 50 ms after it
# arrived, however many are in flight. A bare asyncio protocol (a few µs per request) rather
# than a web framework, whose ~150 µs per request would queue 200 simultaneous answers over
# ~30 ms and measure the fixture instead of the fan-out.
UPSTREAM = """
import asyncio, sys
import uvloop

ANSWER = (b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
          b"Content-Length: 11\\r\\n\\r\\n" b'{"ok":true}')
DELAY = float(sys.argv[2]) / 1000


class Slow(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.pending = transport, b""

    def data_received(self, data):
        self.pending += data
        while b"\\r\\n\\r\\n" in self.pending:  # GETs only: a request ends at its blank line
            _head, _, self.pending = self.pending.partition(b"\\r\\n\\r\\n")
            if DELAY:
                asyncio.get_running_loop().call_later(DELAY, self.answer)
            else:
                self.answer()

    def answer(self):
        if not self.transport.is_closing():
            self.transport.write(ANSWER)


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Slow, "127.0.0.1", int(sys.argv[1]), backlog=2048)
    await server.serve_forever()

uvloop.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def upstream(delay_ms: int = SLEEP_MS) -> tuple[subprocess.Popen[bytes], str]:
    """The upstream, answering `delay_ms` after each request (also `fetch_clients.py`'s), runs
    in its own process (pinned to CPU 1 when taskset exists), so its work is not counted
    against webpipe's event loop."""
    port = free_port()
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    proc = subprocess.Popen([*pin, sys.executable, "-c", UPSTREAM, str(port), str(delay_ms)])
    url = f"http://127.0.0.1:{port}/slow"
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                await client.get(url)
                return proc, url
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    raise RuntimeError("upstream did not start")


def program(url: str, n: int, cap: int = 0) -> str:
    names = [f"t{i}" for i in range(n)]
    config = f"config async {{\n  maxGlobal: {cap}\n}}\n\n" if cap else ""
    forks = "\n".join(f"  |> fetch: `{url}` @async({name})" for name in names)
    sequential = "\n".join(f"  |> fetch: `{url}` @result(s{i})" for i in range(n))
    return (f"{config}GET /fan\n{forks}\n  |> join: `{', '.join(names)}`\n"
            f"  |> jq: `.async | length`\n\nGET /seq\n{sequential}\n  |> jq: `.data | length`\n")


def hand_app(url: str, n: int, cap: int = 0) -> object:
    """The hand-written baseline: N concurrent aiohttp GETs, JSON-decoded, then a count;
    with `cap`, at most that many at once (an asyncio.Semaphore)."""
    import aiohttp
    import orjson
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    holder: dict[str, aiohttp.ClientSession] = {}

    limit = asyncio.Semaphore(cap or n)

    async def one(session: aiohttp.ClientSession) -> object:
        async with limit, session.get(url) as response:
            return orjson.loads(await response.read())

    async def fan(_request: object) -> Response:
        session = holder.get("s")
        if session is None:
            session = holder["s"] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0))
        results = await asyncio.gather(*(one(session) for _ in range(n)))
        return Response(orjson.dumps(len(results)), media_type="application/json")

    app = Starlette(routes=[Route("/fan", fan)])
    app.state.holder = holder
    return app


def like_serve() -> None:
    """The process as `webpipe serve` leaves it after loading (program frozen out of the
    GC, its thresholds); the hand-written handler shares the process, so it gets the same.
    A checkout from before `settle_heap` (A/B runs with PYTHONPATH) gets what serve did
    then: collect and freeze."""
    try:
        from webpipe.serve import settle_heap
    except ImportError:
        gc.collect()
        gc.freeze()
        return
    settle_heap()


async def measure(client: httpx.AsyncClient, path: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = await client.get(path)
        response.raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    return times


async def branch_p50(url: str) -> float:
    """One branch on its own: the p50 of a single GET to the upstream (aiohttp, pooled)."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        times = []
        for _ in range(25):
            start = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[5:])


async def cpu_per_branch(n: int, rounds: int = 12, batch: int = 4) -> None:
    """`--cpu N`: CPU µs per branch of the N-way fan-out route and of the hand-written
    handler, both in this process, in alternating batches (the machine's drift hits both
    alike): the figure the wall-clock p50 hides under the upstream's 50 ms and this
    machine's noise. Alternate runs with PYTHONPATH=OTHER_CHECKOUT to compare checkouts."""
    proc, url = await upstream()
    env = program_from_text(program(url, n))
    hand = hand_app(url, n)
    like_serve()
    cpu: dict[str, list[float]] = {"webpipe": [], "hand": []}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(
            build_served(env))), base_url="http://t", timeout=120) as wp, \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=hand),  # type: ignore[arg-type]
                              base_url="http://t", timeout=120) as hw:
        clients = {"webpipe": wp, "hand": hw}
        for client in clients.values():
            await measure(client, "/fan", 3)
        for r in range(rounds):
            for side in (("webpipe", "hand") if r % 2 else ("hand", "webpipe")):
                start = time.process_time()
                await measure(clients[side], "/fan", batch)
                cpu[side].append((time.process_time() - start) * 1e6 / batch / n)
    await env.aclose()
    await hand.state.holder["s"].close()  # type: ignore[attr-defined]
    proc.terminate()
    proc.wait()
    for side, values in cpu.items():
        print(f"N={n} {side:>8}: CPU per branch best {min(values):.0f} µs, "
              f"median {statistics.median(values):.0f} µs")


async def clients_p50(n: int, rounds: int = 12, batch: int = 5) -> None:
    """`--clients N`: the N-way route with fetch's fast client and the same route with
    every request through aiohttp (`WEBPIPE_FETCH_AIOHTTP`, spec/fetch.md "Fast client"),
    and the hand-written handler, in alternating batches in one process: their p50s side
    by side, which separate checkouts run minutes apart on this machine cannot give."""
    import os

    proc, url = await upstream()
    branch = await branch_p50(url)
    fast = program_from_text(program(url, n))
    os.environ["WEBPIPE_FETCH_AIOHTTP"] = "1"  # read when the app's fetch is created
    aiohttp_only = program_from_text(program(url, n))
    del os.environ["WEBPIPE_FETCH_AIOHTTP"]
    hand = hand_app(url, n)
    like_serve()
    apps = {"fast": create_app(build_served(fast)),
            "aiohttp": create_app(build_served(aiohttp_only)), "hand": hand}
    clients = {side: httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                       base_url="http://t", timeout=120)
               for side, app in apps.items()}
    times: dict[str, list[float]] = {side: [] for side in clients}
    for client in clients.values():
        await measure(client, "/fan", 3)
    for r in range(rounds):
        for side in (list(clients) if r % 2 == 0 else list(reversed(clients))):
            times[side] += await measure(clients[side], "/fan", batch)
    for client in clients.values():
        await client.aclose()
    await fast.aclose()
    await aiohttp_only.aclose()
    await hand.state.holder["s"].close()  # type: ignore[attr-defined]
    proc.terminate()
    proc.wait()
    print(f"N={n}, one branch alone p50 {branch:.1f} ms")
    for side, values in times.items():
        p50 = statistics.median(values)
        print(f"{side:>9}: p50 {p50:.1f} ms ({p50 / branch:.2f} x the branch)")


async def main() -> None:
    if "--clients" in sys.argv:
        await clients_p50(int(sys.argv[-1]) if sys.argv[-1].isdigit() else 200)
        return
    if "--cpu" in sys.argv:
        await cpu_per_branch(int(sys.argv[-1]) if sys.argv[-1].isdigit() else 200)
        return
    proc, url = await upstream()
    branch = await branch_p50(url)
    print(f"one branch alone (a GET straight to the upstream): p50 {branch:.1f} ms")
    print(f"{'N':>5}{'fan p50':>10}{'fan p99':>10}{'vs 50ms':>9}{'vs branch':>11}{'hand p50':>10}"
          f"{'vs hand':>9}{'seq p50':>10}{'~Nx50':>8}")
    # the last case: N = 50 under `config async { maxGlobal: 16 }` (four waves of 16)
    for n, cap in ((1, 0), (10, 0), (50, 0), (200, 0), (50, 16)):
        env = program_from_text(program(url, n, cap))
        app = create_app(build_served(env))
        like_serve()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t", timeout=120) as client:
            await measure(client, "/fan", 3)
            fan = await measure(client, "/fan", 20)
            seq = await measure(client, "/seq", 3 if n >= 50 else 5)
        await env.aclose()
        hand = hand_app(url, n, cap)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hand),  # type: ignore[arg-type]
                                     base_url="http://t", timeout=120) as client:
            await measure(client, "/fan", 3)
            hand_times = await measure(client, "/fan", 20)
        await hand.state.holder["s"].close()  # type: ignore[attr-defined]
        fan_p50, hand_p50 = statistics.median(fan), statistics.median(hand_times)
        label = f"{n}/{cap}" if cap else str(n)
        print(f"{label:>5}{fan_p50:>9.1f}m{max(fan):>9.1f}m{fan_p50 / SLEEP_MS:>9.2f}"
              f"{fan_p50 / branch:>11.2f}{hand_p50:>9.1f}m{fan_p50 / hand_p50:>9.2f}"
              f"{statistics.median(seq):>9.0f}m{statistics.median(seq) / (n * SLEEP_MS):>8.2f}")
    proc.terminate()
    proc.wait()


if __name__ == "__main__":
    import uvloop  # what `webpipe serve` runs on (uvicorn[standard]); both sides share it

    uvloop.run(main())
