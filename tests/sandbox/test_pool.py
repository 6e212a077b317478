"""The sandbox pool with real worker processes: results, kill on timeout and respawn, the
memory bound, a crashing worker, callbacks to the parent, concurrency and queueing."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.sandbox.handlers import HANDLERS
from webpipe.sandbox.pool import (
    SandboxError,
    SandboxLimit,
    SandboxMemory,
    SandboxPool,
    SandboxTimeout,
)


@pytest.fixture
async def pool() -> AsyncIterator[SandboxPool]:
    p = SandboxPool(2, handlers=HANDLERS)
    yield p
    await p.aclose()


async def run(pool: SandboxPool, kind: str, payload: Any = None, timeout_s: float = 10.0,
              memory_mb: int = 256) -> Any:
    return await pool.run(kind, payload, timeout_s=timeout_s, memory_mb=memory_mb)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


async def wait_dead(pid: int) -> None:
    for _ in range(200):
        if not alive(pid):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"worker {pid} still alive")


async def test_values_cross_intact(pool: SandboxPool) -> None:
    value = {"a": [1, 2.5, "é", None, True], "big": 2**70, "nested": {"x": {}}}
    assert await run(pool, "echo", value) == value


async def test_starts_lazily_and_reuses_the_worker(pool: SandboxPool) -> None:
    assert pool.live == 0
    first = await run(pool, "pid")
    assert await run(pool, "pid") == first
    assert pool.live == 1


async def test_timeout_kills_the_worker_and_the_next_run_gets_a_fresh_one(
        pool: SandboxPool) -> None:
    before = await run(pool, "pid")
    start = time.monotonic()
    with pytest.raises(SandboxTimeout):
        await run(pool, "spin", timeout_s=0.3)
    assert time.monotonic() - start < 3.0
    # the spinning worker was the idle one, reused: it is the one killed
    await wait_dead(before)
    after = await run(pool, "pid")
    assert after != before


async def test_memory_bound_raises_and_the_worker_survives(pool: SandboxPool) -> None:
    with pytest.raises(SandboxMemory):
        await run(pool, "hog", 400, memory_mb=64)
    assert await run(pool, "hog", 16, memory_mb=64) == 16 * 1024 * 1024


async def test_a_worker_that_dies_is_a_limit_error_and_is_replaced(pool: SandboxPool) -> None:
    before = await run(pool, "pid")
    with pytest.raises(SandboxMemory, match="died"):
        await run(pool, "crash")
    assert await run(pool, "pid") != before


async def test_handler_error_is_reported_and_the_worker_kept(pool: SandboxPool) -> None:
    before = await run(pool, "pid")
    with pytest.raises(SandboxError) as info:
        await run(pool, "fail", "bad input")
    assert type(info.value) is SandboxError and info.value.message == "bad input"
    assert await run(pool, "pid") == before


async def test_unknown_kind_is_an_error(pool: SandboxPool) -> None:
    with pytest.raises(SandboxError, match="no sandbox handler"):
        await run(pool, "nope")


async def test_callback_to_the_parent(pool: SandboxPool) -> None:
    seen: list[Any] = []

    async def double(name: str, payload: Any) -> Any:
        seen.append((name, payload))
        await asyncio.sleep(0)
        if payload == "x":
            raise ValueError("not a number")
        return payload * 2

    result = await pool.run("ask", [1, 2, 3], timeout_s=10, memory_mb=64, callback=double)
    assert result == [2, 4, 6]
    assert seen == [("double", 1), ("double", 2), ("double", 3)]
    with pytest.raises(SandboxError, match="not a number"):
        await pool.run("ask", ["x"], timeout_s=10, memory_mb=64, callback=double)


async def test_runs_in_parallel_up_to_the_pool_size(pool: SandboxPool) -> None:
    await asyncio.gather(run(pool, "pid"), run(pool, "pid"))  # both workers started
    start = time.monotonic()
    pids = await asyncio.gather(run(pool, "sleep", 1.0), run(pool, "sleep", 1.0))
    assert len(set(pids)) == 2
    assert time.monotonic() - start < 1.9  # in parallel, not one after the other


async def test_beyond_the_pool_size_runs_queue(pool: SandboxPool) -> None:
    results = await asyncio.gather(*(run(pool, "sleep", 0.2) for _ in range(6)))
    assert len(set(results)) == 2  # never more than two workers
    assert pool.live <= 2


async def test_waiting_for_a_worker_counts_against_the_deadline(pool: SandboxPool) -> None:
    busy = [asyncio.ensure_future(run(pool, "sleep", 1.5)) for _ in range(2)]
    await asyncio.sleep(0.3)
    start = time.monotonic()
    with pytest.raises(SandboxTimeout):
        await run(pool, "echo", 1, timeout_s=0.3)
    assert time.monotonic() - start < 1.2
    await asyncio.gather(*busy)


async def test_cancelled_run_kills_its_worker(pool: SandboxPool) -> None:
    pid = await run(pool, "pid")
    task = asyncio.ensure_future(run(pool, "spin"))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_dead(pid)


async def test_aclose_kills_workers_even_mid_run() -> None:
    pool = SandboxPool(1, handlers=HANDLERS)
    pid = await run(pool, "pid")
    task = asyncio.ensure_future(run(pool, "spin"))
    await asyncio.sleep(0.2)
    start = time.monotonic()
    await pool.aclose()
    assert time.monotonic() - start < 2.5
    with pytest.raises(SandboxError):
        await task
    await wait_dead(pid)
    with pytest.raises(SandboxError, match="closed"):
        await run(pool, "pid")


def test_workers_die_with_the_server(tmp_path: Any) -> None:
    """A parent killed with SIGKILL (no cleanup at all) takes its workers with it."""
    import subprocess
    import sys

    script = (
        "import asyncio, sys\n"
        "from webpipe.sandbox.pool import SandboxPool\n"
        "from tests.sandbox.handlers import HANDLERS\n"
        "async def main():\n"
        "    pool = SandboxPool(1, handlers=HANDLERS)\n"
        "    print(await pool.run('pid', None, timeout_s=10, memory_mb=64), flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              cwd=os.getcwd(), text=True)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    assert alive(worker)
    parent.kill()
    parent.wait()
    parent.stdout.close()
    for _ in range(200):
        if not alive(worker):
            break
        time.sleep(0.02)
    assert not alive(worker)


async def test_a_payload_that_is_not_json_is_an_error(pool: SandboxPool) -> None:
    with pytest.raises(SandboxError, match="not JSON"):
        await run(pool, "echo", {"when": object()})
    assert await run(pool, "echo", [1]) == [1]


async def test_a_result_too_deep_to_send_back_is_a_limit_error(pool: SandboxPool) -> None:
    value = await run(pool, "deep", 600)  # past orjson's depth: the json codec carries it
    for _ in range(600):
        value = value[0]
    assert value == 1
    with pytest.raises(SandboxLimit, match="nested too deeply"):
        await run(pool, "deep", 5000)
    assert await run(pool, "echo", 1) == 1


async def test_warm_starts_every_worker_before_any_run(pool: SandboxPool) -> None:
    await pool.warm()
    assert pool.live == 2
    pids = set(await asyncio.gather(run(pool, "sleep", 0.3), run(pool, "sleep", 0.3)))
    assert len(pids) == 2 and pool.live == 2  # the warmed workers ran them: none spawned
    await pool.warm()  # idempotent
    assert pool.live == 2


@pytest.mark.parametrize(("app", "expected"), [
    ("GET /a\n  |> lua: `return 1`\n", True),
    ("GET /a\n  |> jq: `{ a: .params }`\n", False),  # the fast path: never a worker
    ("GET /a\n  |> jq: `[.[] | test(\"x\")]`\n", True),  # libjq
    ("GET /a\n  |> jq: `.x` @guard(`.query | test(\"y\")`)\n", True),
])
def test_an_app_uses_the_sandbox_when_a_step_may_need_it(app: str, expected: bool) -> None:
    from webpipe.program import program_from_text
    from webpipe.server import build_served

    env = build_served(program_from_text(app)).env
    assert env.uses_sandbox() is expected
