"""W7 in-process: µs per request of the Lua workload through the ASGI app (no sockets), and
of the inline Lua step alone, best of 15 interleaved rounds. `python benchmarks/lua_inline.py`

Used to price the Lua bounds (spec/lua.md "Bounds"): the budget hook, the protected-call
wrappers and the check that a run left the shared tables unchanged all run on every request.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import W7

from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

ROUNDS, CALLS = 15, 2000


async def _request(app: Any, path: str) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"t")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent


async def main() -> None:
    env = program_from_text(W7.wp, base_dir=Path.cwd())
    app = create_app(build_served(env))
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(CALLS):
            await _request(app, W7.path)
        best = min(best, (time.perf_counter() - start) / CALLS)
    print(f"W7 in-process: {best * 1e6:.1f} µs per request (best of {ROUNDS} x {CALLS})")


if __name__ == "__main__":
    asyncio.run(main())
