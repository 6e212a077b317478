"""W8's two steps alone, µs per call: its jq program (fast path) and its template's render.

The in-process request figure (`inprocess.py W8`) is these two plus the framework's share.
Compare checkouts A/B, alternating runs in one session:

    python benchmarks/w8_parts.py [--number 5000] [--repeat 7]
    PYTHONPATH=/path/to/other/checkout python benchmarks/w8_parts.py
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

from webpipe.jqlib import JqProgram
from webpipe.templating import Environment

JQ = "{ items: [range(20) | { name: (\"item \" + tostring), qty: . }] }"
TEMPLATE = "{{#> layout}}<ul>{{#each items}}{{> row}}{{/each}}</ul>{{/layout}}"
PARTIALS = {"layout": "<html><body>{{> @partial-block}}</body></html>",
            "row": "<li>{{name}} ({{qty}})</li>"}


def best_us(fn: object, number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    program = JqProgram(JQ)
    data = program.first_inline({})
    template = Environment(PARTIALS).compile(TEMPLATE)
    print(f"jq     {best_us(lambda: program.first_inline({}), args.number, args.repeat):6.1f} us")
    print(f"render {best_us(lambda: template.render(data), args.number, args.repeat):6.1f} us")
    print("webpipe from", Path(sys.modules["webpipe"].__file__ or "").parent)


if __name__ == "__main__":
    main()
