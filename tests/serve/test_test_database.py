"""Issue 17 outcomes 7 and 8: `webpipe test` runs against a database made for the run
(migrations applied, dropped afterwards), never the one `serve` uses; the todos example
gets its table from a migration, so concurrent cold-start POSTs all succeed."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from tests.hostile.harness import serve

TODOS = Path(__file__).resolve().parents[2] / "examples" / "todos"


def webpipe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webpipe", *args], capture_output=True,
                          text=True, timeout=180, env={**os.environ, **(env or {})})


async def count(c: httpx.AsyncClient) -> int:
    r = await c.get("/todos")
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


async def test_test_runs_leave_the_served_database_alone(tmp_path: Path) -> None:
    shutil.copytree(TODOS, tmp_path, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".webpipe"))  # a suite run's database
    app = str(tmp_path / "app.wp")
    migrated = webpipe("migrate", "up", app)
    assert migrated.returncode == 0, migrated.stderr
    async with serve(tmp_path, (tmp_path / "app.wp").read_text()) as served, \
            httpx.AsyncClient(base_url=served.base, timeout=60) as c:
        # cold start: six concurrent first POSTs (before: 5 of 6 failed on CREATE TABLE)
        posts = await asyncio.gather(*(c.post("/todos", json={"title": f"t{i}"})
                                       for i in range(6)))
        assert [p.status_code for p in posts] == [201] * 6, [p.text for p in posts]
        before = await count(c)
        for _ in range(2):  # twice: the second run used to fail on the first one's rows
            run = webpipe("test", app)
            assert run.returncode == 0, run.stdout + run.stderr
            assert "5/5 passed" in run.stdout
            assert "tests use database webpipe_test_" in run.stderr
        assert await count(c) == before == 6
        served_url = await asyncio.to_thread(_embedded_url, tmp_path)
        run = webpipe("test", app, env={"DATABASE_URL": served_url})
        assert run.returncode == 0, run.stdout + run.stderr
        name = urlsplit(served_url).path.lstrip("/") + "_test"
        assert f"tests use database {name}" in run.stderr
        assert await count(c) == before
        conn = await asyncpg.connect(served_url)
        try:
            names = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        finally:
            await conn.close()
        assert not [n for n in names if n.startswith("webpipe_test_") or n == name]


def _embedded_url(base: Path) -> str:
    from webpipe.pgembed import default_data_dir, embedded_url

    return embedded_url(default_data_dir(base))
