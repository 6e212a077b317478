"""Hostile `js` steps over HTTP (issue 18 outcome 4): against a real `webpipe serve`, a
spinning script and a memory hog each get 4 concurrent requests while `/health` is probed.
Each hostile request ends within its budget plus slack with the `timeout` or `limitError`
envelope, `/health` keeps answering, and SIGTERM stops the server within the grace."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hostile.harness import health_while, serve
from tests.hostile.responsive import assert_responsive

SLACK_S = 2.0

HOSTILE = [  # path, script, the envelope it ends with, its time budget (jsTimeoutMs)
    ("/spin", "while (true) {}", "timeout", 1000),
    # the hog's time budget is long so that a loaded machine still reaches the memory limit
    ("/hog", 'const a = []; while (true) { a.push("x".repeat(4096) + a.length); }',
     "limitError", 5000),
]


async def timed_get(client: httpx.AsyncClient, path: str) -> tuple[float, Any]:
    start = time.monotonic()
    response = await client.get(path, timeout=30.0)
    return time.monotonic() - start, response.json()


@pytest.mark.parametrize(("path", "source", "kind", "budget_ms"), HOSTILE,
                         ids=[h[0] for h in HOSTILE])
async def test_hostile_js_is_bounded(tmp_path: Path, path: str, source: str,
                                     kind: str, budget_ms: int) -> None:
    text = (f"config limits {{\n  jsMemoryMb: 64\n  jsTimeoutMs: {budget_ms}\n}}\n\n"
            "GET /health\n  |> jq: `{ok: true}`\n\n"
            f"GET {path}\n  |> js: `{source}`\n")
    async with serve(tmp_path, text) as served:
        async with httpx.AsyncClient(base_url=served.base) as client:
            (await client.get("/health")).raise_for_status()
            hostile = asyncio.gather(*(timed_get(client, path) for _ in range(4)))
            probes, results = await health_while(served, hostile)
        assert isinstance(results, list)
        kinds = [body["errors"][0]["type"] for _, body in results]
        # runs queued behind a killed worker may reach the time budget first
        assert set(kinds) <= {kind, "timeout"} and kind in kinds, results
        assert all(took < budget_ms / 1000 + SLACK_S for took, _ in results), results
        assert_responsive(probes)
        assert await served.stop(grace_s=5.0) < 5.0
