"""Micro benchmark: µs per `JqProgram.first` call, fast path vs libjq, on the W0-W3 programs.

Run on demand:  python benchmarks/jq_fast.py [--number 20000]

Each jq step of workloads W0-W3 runs on the state it sees in the real route (a request
state of about 300 bytes; for W2 the 1.3 KB order body; for W3 the output of the previous
step). Both engines go through `webpipe.jqlib.JqProgram`, so the numbers include what a
route pays per step: the fast path's output conversion, libjq's JSON round trip.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import timeit
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workloads import _BODY, W0, W1, W2, W3, Workload  # noqa: E402

from webpipe.jqlib import JqProgram  # noqa: E402

_JQ_STEP = re.compile(r"\|> jq: `([^`]*)`")


def request_state(method: str, path: str, params: dict[str, Any], body: Any = None) -> Any:
    """The initial state of a route (webpipe.http), with typical browser headers."""
    headers = {"host": "localhost:8080", "user-agent": "wrk/4.2", "accept": "*/*",
               "accept-encoding": "gzip"}
    return {"method": method, "path": path, "query": {}, "params": params,
            "headers": headers, "cookies": {}, "body": body,
            "originalRequest": {"method": method, "params": dict(params), "query": {}}}


STATES: dict[str, Any] = {
    "W0": request_state("GET", "/hello/world", {"w": "world"}),
    "W1": request_state("GET", "/page/world", {"w": "world"}),
    "W2": request_state("POST", "/orders", {}, json.loads(_BODY)),
    "W3": request_state("GET", "/three/7", {"n": 7}),
}


def steps(workload: Workload) -> list[tuple[str, Any]]:
    """(program, input state) for each jq step, feeding each step the previous output."""
    state = STATES[workload.name]
    out: list[tuple[str, Any]] = []
    for text in _JQ_STEP.findall(workload.wp):
        out.append((text, state))
        state = JqProgram(text, force_libjq=True).first(state)
    return out


def per_call_us(program: JqProgram, state: Any, number: int) -> float:
    best = min(timeit.repeat(lambda: program.first(state), number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'workload':8} {'program':60} {'fast µs':>8} {'libjq µs':>9} {'speedup':>8}")
    for workload in (W0, W1, W2, W3):
        for text, state in steps(workload):
            fast, slow = JqProgram(text), JqProgram(text, force_libjq=True)
            assert fast.fast and fast.first(state) == slow.first(state), text
            f_us = per_call_us(fast, state, args.number)
            s_us = per_call_us(slow, state, args.number // 4)
            label = text if len(text) <= 60 else text[:57] + "..."
            print(f"{workload.name:8} {label:60} {f_us:8.2f} {s_us:9.2f} {s_us / f_us:7.1f}x")


if __name__ == "__main__":
    main()
