"""Issue 17 outcomes 4 and 5 against a real `webpipe serve`: every `check` rule runs at start
and on reload (errors refuse the program, all at once), `--reload` on a broken file waits
for a fix, and only source edits reload (never `.webpipe/`, `public/` or swap files)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx

from tests.hostile.harness import Served, free_port, serve

GOOD = """
GET /a
  |> jq: `{ v: 1 }`
"""
BROKEN = """
GET /a
  |> nosuch: `x`

GET /b
  |> jq: `{ a: 1 `
"""
WARNED = GOOD + """
GET /w
  |> jq: `{ x: 1 }` @async(lost)
  |> jq: `{ w: 1 }`
"""


async def until_in_log(served: Served, needle: str, count: int = 1) -> str:
    for _ in range(1800):  # generous: the machine is shared
        text = served.log.read_text()
        if text.count(needle) >= count:
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{needle!r} x{count} not in log:\n{served.log.read_text()}")


def test_check_errors_refuse_to_start_all_at_once(tmp_path: Path) -> None:
    (tmp_path / "app.wp").write_text(BROKEN)
    done = subprocess.run([sys.executable, "-m", "webpipe", "serve", str(tmp_path / "app.wp"),
                           "--port", str(free_port())], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert "unknown middleware 'nosuch'" in done.stderr and "JQ compilation error" in done.stderr
    assert "2 error(s)" in done.stderr and "serving" not in done.stderr


async def test_warnings_are_printed_and_the_app_serves(tmp_path: Path) -> None:
    async with serve(tmp_path, WARNED) as served, httpx.AsyncClient(base_url=served.base) as c:
        assert (await c.get("/w")).json() == {"w": 1}
        assert "@async(lost) is never joined" in served.log.read_text()


async def test_a_reload_that_fails_checks_keeps_the_last_good_program(tmp_path: Path) -> None:
    async with serve(tmp_path, GOOD, "--reload") as served, \
            httpx.AsyncClient(base_url=served.base) as c:
        (tmp_path / "app.wp").write_text(BROKEN)
        await until_in_log(served, "still serving the last good version")
        assert "unknown middleware 'nosuch'" in served.log.read_text()
        r = await c.get("/a")
        assert (r.status_code, r.json()) == (200, {"v": 1})
        (tmp_path / "app.wp").write_text(GOOD.replace("v: 1", "v: 2"))
        await until_in_log(served, "reloaded")
        assert (await c.get("/a")).json() == {"v": 2}


async def test_reload_waits_for_a_fix_of_a_broken_start(tmp_path: Path) -> None:
    app, log = tmp_path / "app.wp", tmp_path / "serve.log"
    app.write_text(BROKEN)
    port = free_port()
    with log.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "webpipe", "serve", str(app), "--port", str(port),
            "--reload", stdout=out, stderr=asyncio.subprocess.STDOUT)
    try:
        for _ in range(1800):  # generous: the machine is shared
            if "waiting for a fix" in log.read_text():
                break
            assert proc.returncode is None, log.read_text()
            await asyncio.sleep(0.05)
        app.write_text(GOOD)
        r: httpx.Response | None = None
        async with httpx.AsyncClient() as c:
            for _ in range(1800):
                try:
                    r = await c.get(f"http://127.0.0.1:{port}/a")
                    break
                except httpx.HTTPError:
                    assert proc.returncode is None, log.read_text()
                    await asyncio.sleep(0.05)
        assert r is not None, log.read_text()
        assert r.json() == {"v": 1}
    finally:
        proc.kill()
        await proc.wait()


async def test_only_source_edits_reload(tmp_path: Path) -> None:
    (tmp_path / "lib.wp").write_text("pipeline one =\n  |> jq: `{ one: 1 }`\n")
    text = 'import "./lib.wp" as lib\n' + GOOD
    async with serve(tmp_path, text, "--reload") as served, \
            httpx.AsyncClient(base_url=served.base) as c:
        for folder in (".webpipe/pgdata/base", "public/css", "node_modules/x"):
            (tmp_path / folder).mkdir(parents=True)
        for i in range(200):  # what the embedded database and an editor write meanwhile
            (tmp_path / ".webpipe/pgdata/base" / f"{i % 7}").write_text(str(i))
            (tmp_path / "public/css" / "site.css").write_text(f"a{{n:{i}}}")
            (tmp_path / ".app.wp.swp").write_text(str(i))
            (tmp_path / "app.wp~").write_text(str(i))
            (tmp_path / "node_modules/x/i.js").write_text(str(i))
            if i % 50 == 0:
                await c.get("/a")
        await asyncio.sleep(1.0)  # longer than the watcher's debounce: any reload is in
        assert "reloaded" not in served.log.read_text()
        (tmp_path / "lib.wp").write_text("pipeline one =\n  |> jq: `{ one: 2 }`\n")
        await until_in_log(served, "reloaded", 1)
        (tmp_path / ".env").write_text("X=1\n")
        await until_in_log(served, "reloaded", 2)
        await asyncio.sleep(1.0)
        assert served.log.read_text().count("reloaded") == 2
