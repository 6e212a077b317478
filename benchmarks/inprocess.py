"""µs per request of W0-W3, W7, W8 and W3L through the ASGI app, in-process (no server).

Drives the app webpipe serves with a minimal ASGI scope, so the figure is the framework's
own cost per request. Run it against two checkouts to compare them in one session, e.g.
`PYTHONPATH=/path/to/other/checkout python benchmarks/inprocess.py`; alternate the runs,
this machine's speed drifts.

    python benchmarks/inprocess.py [W0 W1 W2 W3 W7 W8 W3L] [--number 3000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import W0, W1, W2, W3, W7, W8, Workload

from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

# W3's steps in a called pipeline: every step through the step loop (`_run_steps`, where the
# tracing hook sits; spec/tracing.md §4), not the plain-body fast path W0-W3 take
W3L = Workload(
    "W3L", "W3 in a called pipeline (the step loop)", "/loop/7",
    wp=('pipeline three =\n  |> jq: `{ n: .params.n }`\n'
        '  |> jq: `{ n: (.n * 2), doubled: true }`\n'
        '  |> jq: `{ result: (.n + 1), doubled: .doubled }`\n\n'
        'GET /loop/:n\n  |> pipeline: three\n'),
    starlette="")
WORKLOADS = {w.name: w for w in (W0, W1, W2, W3, W7, W8, W3L)}


def request_of(workload: Workload) -> tuple[dict[str, Any], bytes]:
    post = "POST" in workload.lua
    body = workload.lua.split("[[", 1)[1].rsplit("]]", 1)[0].encode() if post else b""
    headers = [(b"host", b"t"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())] if post else [(b"host", b"t")]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST" if post else "GET", "scheme": "http",
             "path": workload.path, "raw_path": workload.path.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    return scope, body


async def per_request_us(workload: Workload, number: int, repeat: int) -> float:
    env = program_from_text(workload.wp)
    app = create_app(build_served(env))
    scope, body = request_of(workload)
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            await app(scope, receive, send)
        best = min(best, time.perf_counter() - start)
    assert set(statuses) == {200}, set(statuses)
    await env.aclose()
    return best / number * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=list(WORKLOADS))
    parser.add_argument("--number", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for name in args.names:
        us = await per_request_us(WORKLOADS[name], args.number, args.repeat)
        print(f"{name} {us:.1f} us/request", flush=True)
    print("webpipe from", Path(sys.modules["webpipe"].__file__ or "").parent)


if __name__ == "__main__":
    asyncio.run(main())
