"""The price of the tracing hook when tracing is off (issue 21; spec/tracing.md §5).

The step loop (`executor/pipeline._run_steps`) asks `ctx.tracer` once per body and tests it
twice per step. This script runs each workload through the in-process ASGI app with the
loop as it is and with the same loop without the hook (`_run_body_unhooked` below, the loop
before issue 21), alternating short batches of each and keeping each side's best batch:
both sides see the same machine load, which on a shared 2-core box swings by 3x within a
minute and drowns a comparison of separate runs.

Workloads: W3L (W3's three jq steps in a called pipeline: 4 steps, 2 bodies, all through
the step loop) and W5j (a fan-out of 10 `jq @async` steps and a `join`, in-process: the
task code paths without network).

Run: python benchmarks/trace_off.py [--number 200] [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from webpipe.executor import pipeline
from webpipe.executor.compiled import Body, Call, Dispatch, Foreach, If, Result
from webpipe.executor.state import JSON_CT, Outcome, error_type
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

W3L = ("/loop/7", 'pipeline three =\n  |> jq: `{ n: .params.n }`\n'
       '  |> jq: `{ n: (.n * 2), doubled: true }`\n'
       '  |> jq: `{ result: (.n + 1), doubled: .doubled }`\n\n'
       'GET /loop/:n\n  |> pipeline: three\n')
W5J = ("/fan", "GET /fan\n" + "".join(f"  |> jq: `{{ v: {i} }}` @async(t{i})\n"
                                      for i in range(10))
       + "  |> join: " + ", ".join(f"t{i}" for i in range(10)) + "\n")


async def _run_body_unhooked(compiled: Body, state: Any, env: Any, ctx: Any,
                             handling: str | None) -> Outcome:
    """`_run_steps` without the tracing hook (the control for this benchmark)."""
    from webpipe.executor import pipeline as run

    out = Outcome(state, JSON_CT, None)
    body = compiled.steps
    for index, step in enumerate(body):
        kind = error_type(out.state)
        if kind is not None and kind != handling and not isinstance(step, Result):
            continue
        match step:
            case Call():
                if await run.run_regular_step(step, body, index, out, env, ctx):
                    return out
            case Result():
                return await run.run_result(step, out, env, ctx)
            case If():
                await run.run_if(step, out, env, ctx)
            case Dispatch():
                await run.run_dispatch(step, out, env, ctx)
            case Foreach():
                await run.run_foreach(step, out, env, ctx)
    return out


async def compare(path: str, text: str, number: int, rounds: int) -> tuple[float, float]:
    """Best µs per request with the hook (tracing off) and without it."""
    env = program_from_text(text)
    app = create_app(build_served(env))
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [], "http_version": "1.1", "scheme": "http",
             "server": ("t", 80), "client": ("c", 1), "root_path": ""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    hooked = pipeline._run_steps
    for _ in range(number):  # warm: jq compiled, task slots made, caches filled
        await app(scope, receive, send)
    best = {"hook": float("inf"), "none": float("inf")}
    sides = [("hook", hooked), ("none", _run_body_unhooked)]
    for i in range(rounds):
        for side, loop in sides if i % 2 else sides[::-1]:  # neither side always first
            pipeline._run_steps = loop  # type: ignore[assignment]
            start = time.perf_counter()
            for _ in range(number):
                await app(scope, receive, send)
            best[side] = min(best[side], (time.perf_counter() - start) / number * 1e6)
    pipeline._run_steps = hooked
    await env.aclose()
    return best["hook"], best["none"]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    print(f"{'workload':<8} {'hook, off':>10} {'no hook':>10} {'ratio':>6}")
    for name, (path, text) in (("W3L", W3L), ("W5j", W5J)):
        hook, none = await compare(path, text, args.number, args.rounds)
        print(f"{name:<8} {hook:>8.1f}us {none:>8.1f}us {hook / none:>6.3f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
