"""W10: load + check of a generated ~150 KB `.wp` file using every construct.

Run: python benchmarks/parse_check.py  (prints the size and the best of 5 timings)
     python benchmarks/parse_check.py --phases  (and where the time goes: best and median
     of 7 runs of each phase of `check_file`, collector off, process CPU time)
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

BLOCK = '''
config cache{i} {{
  enabled: true  # ttl below
  defaultTtl: 30
  host: $HOST_{i} || "localhost"
}}

pg byId{i} = `SELECT id, label FROM shelves WHERE id = $1`
handlebars card{i} = `<div class="card">{{{{title}}}}</div>`

pipeline load{i} =
  |> pg([.params.id]): byId{i}
  |> jq: `{{ shelf: .data.byId{i}.rows[0] }}`

GET /shelves{i}/:id
  |> load{i}
  |> jq: `. + {{ late: true }}` @guard(`.x == 1`) @!env(demo)
  |> fetch("http://example/" + (.params.id | tostring)) @async(up{i}) @timeout(500)
  |> join: `up{i}` @failfast
  |> if
    |> jq: `.late`
    then:
      |> jq: `{{ size: "big" }}`
    else:
      |> jq: `{{ size: "small" }}`
    end
  |> dispatch
    case @flag(beta) and @!when(quiet):
      |> jq: `{{ banner: "beta" }}`
    default:
      |> jq: `{{ banner: null }}`
  end
  |> foreach items
    |> jq: `. + {{ seen: true }}`
  end
  |> handlebars: `{{{{> card{i}}}}}`
  |> result
    ok(200):
      |> jq: `.`
    sqlError(500):
      |> jq: `{{ problem: .errors[0].message }}`

query q{i} =
  |> jq: `[{{ id: {i} }}]`

describe "shelves {i}"
  let id = {i}
  with mock pg returning `{{ rows: [{{ id: $id }}] }}`

  it "loads shelf {i}"
    when calling GET /shelves{i}/{{{{id}}}}
    with headers `{{ "x-k": "v" }}`
    then status is 200
    and output `.size` equals "small"
    and selector `div.card` exists
'''


def generate(target_bytes: int = 150_000) -> str:
    parts, size, i = [], 0, 0
    while size < target_bytes:
        block = BLOCK.format(i=i)
        parts.append(block)
        size += len(block)
        i += 1
    return "".join(parts)


def main() -> None:
    from webpipe.check import check_file

    text = generate()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.wp"
        path.write_text(text)
        check_file(path)  # warm caches (grammar tables, imports)
        runs = {}
        # as `webpipe check` runs (the CLI turns the cyclic GC off: a one-shot process),
        # and with the collector on, as a long-running process (serve, the LSP) loads
        for label, collector in (("as `webpipe check`", False), ("cyclic GC on", True)):
            gc.collect()
            (gc.enable if collector else gc.disable)()
            timings = []
            for _ in range(5):
                start = time.perf_counter()
                diagnostics = check_file(path)
                timings.append(time.perf_counter() - start)
            runs[label] = timings
        gc.enable()
    errors = [d for d in diagnostics if d.severity == "error"]
    print(f"size {len(text) / 1024:.0f} KiB, {len(errors)} errors", file=sys.stdout)
    for label, timings in runs.items():
        print(f"  {label}: best {min(timings) * 1000:.0f} ms, "
              f"median {sorted(timings)[2] * 1000:.0f} ms", file=sys.stdout)


def phases(path: Path, rounds: int = 7) -> dict[str, list[float]]:
    """Milliseconds of each phase of `check_file(path)`, in the order it runs them."""
    from webpipe.check import check_env, check_file
    from webpipe.executor.env import build_env
    from webpipe.loader import load_file
    from webpipe.middleware import Registry
    from webpipe.server import build_served
    from webpipe.syntax.parser import parse

    source = load_file(path).main.source
    times: dict[str, list[float]] = {}

    def timed(label: str, work: Callable[..., T], *args: object) -> T:
        start = time.process_time()
        done = work(*args)
        times.setdefault(label, []).append((time.process_time() - start) * 1000)
        return done

    gc.disable()
    for _ in range(rounds):
        timed("parse (driver + AST)", parse, source)
        index = timed("load_file (read, parse, imports)", load_file, path)
        registry = timed("Registry() (entry points)", Registry)
        env = timed("build_env (plan and compile steps)", build_env, index, registry)
        timed("build_served (routes, GraphQL)", build_served, env)
        timed("check_env (the checks)", check_env, env)
        timed("check_file (all of it, as W10)", check_file, path)
    gc.enable()
    return times


def main_phases() -> None:
    from webpipe.check import check_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.wp"
        path.write_text(generate())
        check_file(path)  # warm caches
        for label, times in phases(path).items():
            times.sort()
            print(f"  {label:36s} best {times[0]:6.1f} ms, median {times[len(times) // 2]:6.1f} ms")


if __name__ == "__main__":
    main_phases() if "--phases" in sys.argv[1:] else main()
