"""µs per request of a route around one awaited step (W4's shape), in-process, no I/O.

W4 is `pg([.params.id]): userById |> jq: ...`; its `pg` step must be awaited. This prices
what webpipe does around such a step with the `pg` step replaced by a middleware of the
same shape (Transform, wrapping its result under `.data.<name>`) whose `run` returns at
once, so neither Postgres nor asyncpg is timed: `body` the route's request state, context
and compiled body (`run_body`: the step's state and arguments, the call, the state rules,
then the `jq` step); `http` the whole request through `webpipe serve`'s protocol
(`http_inprocess.py`'s harness: parsing, the connection's lane, the app, the response).

    python benchmarks/awaited_step.py [body|http ...] [--number 20000] [--rounds 9]
        [--profile FILE]

Compare checkouts with `PYTHONPATH=OTHER_CHECKOUT`, alternating runs.
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

APP = ("rows userById = `SELECT id, name FROM users WHERE id = $1`\n\n"
       "GET /user/:id\n  |> rows([.params.id]): userById\n"
       "  |> jq: `.data.userById.rows[0]`\n")


def rows_middleware() -> type:
    from webpipe.middleware.base import BaseMiddleware, Behavior, StepResult

    class Rows(BaseMiddleware):
        """`pg`'s shape without a database: one row, at once."""

        behavior: ClassVar[Behavior] = Behavior.TRANSFORM
        wraps_data: ClassVar[bool] = True

        async def run(self, state: Any, prepared: object, call: Any) -> StepResult:
            return StepResult({"rows": [{"id": int(call.args[0][0]), "name": "user 1"}],
                               "rowCount": 1})

    return Rows


def http_run(served: Any) -> Callable[[], Awaitable[None]]:
    """One whole request through `webpipe serve`'s protocol (`http_inprocess.connected`)."""
    from http_inprocess import connected

    from webpipe.protocol import PROTOCOL
    from webpipe.server import create_app

    app = create_app(served)
    try:  # what the app's lifespan startup does in `webpipe serve`
        from webpipe.protocol import set_lane
    except ImportError:  # a checkout from before the lane
        pass
    else:
        set_lane(app)  # type: ignore[arg-type]
    request, transport, _protocol = connected(
        app, PROTOCOL, b"GET /user/1 HTTP/1.1\r\nHost: t\r\nUser-Agent: wrk\r\n\r\n")

    async def one() -> None:
        await request()
        assert transport.last.startswith(b"HTTP/1.1 200"), transport.last

    return one


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("modes", nargs="*", default=["body", "http"])
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--profile", help="write a cProfile of the last round here")
    args = parser.parse_args()
    from starlette.requests import Request

    from webpipe.http import request_state_now
    from webpipe.lane import http_context
    from webpipe.middleware import Registry
    from webpipe.program import program_from_text
    from webpipe.server import build_served

    registry = Registry()
    registry.register("rows", rows_middleware())
    served = build_served(program_from_text(APP, registry=registry))
    found = served.router.match("GET", "/user/1")
    assert found is not None
    compiled, params = found
    scope = {"type": "http", "method": "GET", "path": "/user/1", "raw_path": b"/user/1",
             "query_string": b"", "headers": [(b"host", b"t")]}
    request = Request(scope)
    env = served.env

    async def once() -> Any:
        state, _ = request_state_now(request, params, "/user/1", compiled.reads)
        ctx = http_context(env, state, compiled.route, "id")
        return (await compiled.run(state, env, ctx)).state

    first = await once()
    assert first == {"id": 1, "name": "user 1"}, (first, env.diagnostics)
    runs = {"body": once, "http": http_run(served)}
    rounds: dict[str, list[float]] = {mode: [] for mode in args.modes}
    profile = cProfile.Profile() if args.profile else None
    for index in range(args.rounds):  # modes alternated round by round
        for mode in args.modes:
            last = profile is not None and index == args.rounds - 1 \
                and mode == args.modes[-1]
            if last:
                profile.enable()  # type: ignore[union-attr]
            start = time.process_time()
            for _ in range(args.number):
                await runs[mode]()
            rounds[mode].append((time.process_time() - start) / args.number * 1e6)
            if last:
                profile.disable()  # type: ignore[union-attr]
    for mode, times in rounds.items():
        print(f"{mode:<5} best {min(times):6.2f} us, median {statistics.median(times):6.2f}")
    if profile is not None:
        profile.dump_stats(args.profile)
    print("webpipe from", Path(sys.modules["webpipe"].__file__ or "").parent)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
