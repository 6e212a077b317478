"""µs per request of a route that runs the step loop (not a plain body), in-process.

Prices what the executor does per step when no fast path applies: ten `jq` steps and a
`result` branch. Written for issue 21, where the step loop gained the debugger's
`env.debugger is not None` check (spec/debugger.md "Figures"): run it against two
checkouts, alternating, e.g.

    PYTHONPATH=/path/to/main python benchmarks/step_loop.py
    python benchmarks/step_loop.py
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inprocess import per_request_us
from workloads import Workload

STEPS = "\n".join(f"  |> jq: `. + {{s{i}: {i}}}`" for i in range(9))
LOOP = Workload(
    name="WS", title="ten jq steps and a result branch (the step loop)", path="/loop",
    wp=f"GET /loop\n{STEPS}\n  |> result\n    ok(200):\n      |> jq: `{{n: .s8}}`\n",
    starlette="")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rounds = [await per_request_us(LOOP, args.number, 1) for _ in range(args.rounds)]
    print(f"WS best {min(rounds):.1f} us/request, median {statistics.median(rounds):.1f}")
    print("webpipe from", Path(sys.modules["webpipe"].__file__ or "").parent)


if __name__ == "__main__":
    asyncio.run(main())
