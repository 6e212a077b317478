"""W7's Lua step alone, µs per call: `LuaMiddleware.run_sync` on W7's chunk and request (the
inline run on the event loop's state), and the same with another chunk's shapes.

The in-process request figure (`http_inprocess.py W7`) is this plus the framework's share.
A step costs more inside a request than in this loop (the request's own work pushes the Lua
state out of the CPU caches between runs): `--thrash KB` writes that many KB of memory
between calls to imitate it. Compare checkouts A/B, alternating runs in one session:

    python benchmarks/lua_step.py [W7 record] [--batch 200] [--batches 200] [--thrash 1024]
    PYTHONPATH=/path/to/other/checkout python benchmarks/lua_step.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import W7

from webpipe.executor.context import RequestContext
from webpipe.middleware.base import StepCall
from webpipe.program import program_from_text

W7_CHUNK = W7.wp.split("`")[1]
# a chunk with strings, floats, nested objects and several keys per table
RECORD_CHUNK = ("return { id = request.params.n, name = 'item ' .. request.params.n, "
                "price = request.params.n * 1.25, tags = { 'a', 'b' }, "
                "owner = { name = 'x', admin = false } }")
CHUNKS = {"W7": W7_CHUNK, "record": RECORD_CHUNK}


def per_call_us(source: str, batch: int, batches: int, thrash_kb: int) -> float:
    """The best batch's mean: on a shared machine the fastest of many short batches is the
    steadiest figure (a slow batch is someone else's work)."""
    env = program_from_text(W7.wp)
    lua: Any = env.middleware("lua")
    chunk = lua.prepare(source, None)
    state = {"params": {"n": 5}, "query": {}, "method": "GET", "headers": {"host": "t"}}
    junk = bytearray(thrash_kb * 1024)
    fill = b"x" * (len(junk) // 64)
    clock = time.perf_counter
    best = float("inf")
    for _ in range(batches):
        total = 0.0
        for _ in range(batch):
            call = StepCall("lua", source, ctx=RequestContext())
            if thrash_kb:
                junk[::64] = fill
            start = clock()
            lua.run_sync(state, chunk, call)
            total += clock() - start
        best = min(best, total)
    return best / batch * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=list(CHUNKS))
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--thrash", type=int, default=0, help="KB written between calls")
    args = parser.parse_args()
    for name in args.names:
        us = per_call_us(CHUNKS[name], args.batch, args.batches, args.thrash)
        print(f"{name:<8}{us:7.2f} us/call", flush=True)
    print("webpipe from", Path(sys.modules["webpipe"].__file__ or "").parent)


if __name__ == "__main__":
    main()
