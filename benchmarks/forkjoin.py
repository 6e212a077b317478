"""CPU µs per branch of fork/join: a route with N `jq @async` branches and one `join`.

The jq branch is the cheapest step there is, so what this prices is what every `@async`
branch pays around its step: the context fork, the task and its owner's bookkeeping, the
deadline, the join's wait and the merge under `.async` (issue 23, W5 at N = 200). `--fetch`
prices the same route with `fetch` branches to `fanout.py`'s loopback upstream answering at
once (the client's cost comes on top). In-process through the ASGI app, on uvloop, with the
GC as `webpipe serve` leaves it (`fanout.like_serve`); the cyclic GC's collections per
request are printed too. `--profile` prints cProfile's top functions by own time as well.
Compare checkouts by alternating runs:

    PYTHONPATH=/work/before python benchmarks/forkjoin.py [N] [--fetch] [--profile]
    python benchmarks/forkjoin.py [N] [--fetch] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import like_serve, upstream

from webpipe.program import program_from_text
from webpipe.server import build_served, create_app


def program(n: int, url: str | None) -> str:
    step = f"fetch: `{url}`" if url else "jq: `{n: 1}`"
    forks = "\n".join(f"  |> {step} @async(t{i})" for i in range(n))
    names = ", ".join(f"t{i}" for i in range(n))
    return f"GET /fan\n{forks}\n  |> join: `{names}`\n  |> jq: `.async | length`\n"


SCOPE = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
         "scheme": "http", "path": "/fan", "raw_path": b"/fan", "query_string": b"",
         "root_path": "", "headers": [(b"host", b"t")], "client": ("127.0.0.1", 1),
         "server": ("127.0.0.1", 80)}


async def rounds(n: int, url: str | None, number: int, repeat: int,
                 profile: cProfile.Profile | None) -> list[float]:
    env = program_from_text(program(n, url))
    app = create_app(build_served(env))
    like_serve()
    bodies: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    for _ in range(3):  # warm up (the fetch client's connections too)
        await app(SCOPE, receive, send)
    per_branch = []
    collections = sum(generation["collections"] for generation in gc.get_stats())
    for _ in range(repeat):
        if profile is not None:
            profile.enable()
        start = time.process_time()
        for _ in range(number):
            await app(SCOPE, receive, send)
        per_branch.append((time.process_time() - start) * 1e6 / number / n)
        if profile is not None:
            profile.disable()
    assert set(bodies) == {str(n).encode()}, set(bodies)
    collections = sum(generation["collections"] for generation in gc.get_stats()) - collections
    print(f"cyclic GC: {collections / number / repeat:.1f} collections per request")
    await env.aclose()
    return per_branch


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=200)
    parser.add_argument("--fetch", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--number", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    proc, url = await upstream(0) if args.fetch else (None, None)
    profile = cProfile.Profile() if args.profile else None
    try:
        values = await rounds(args.n, url, args.number, args.repeat, profile)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
    kind = "fetch" if args.fetch else "jq"
    print(f"N={args.n} {kind} @async: CPU per branch best {min(values):.1f} µs, "
          f"median {statistics.median(values):.1f} µs")
    print("webpipe from", Path(sys.modules["webpipe"].__file__ or "").parent)
    if profile is not None:
        stats = pstats.Stats(profile)
        calls = args.number * args.repeat * args.n
        print(f"(cumulative/own seconds over {calls} branches)")
        stats.sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
