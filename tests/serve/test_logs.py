"""Issue 17 outcomes 2 and 3 against a real `webpipe serve`: access and error lines (text
and JSON, one and two workers), request ids, and production bodies without internals."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.hostile.harness import Served, serve

APP = """
GET /ok
  |> jq: `{ ok: true, rid: $context.requestId }`

GET /lua
  |> lua: `return { rid = context.requestId }`

GET /jq
  |> jq: `error("secret detail /srv/app/keys.txt")`

GET /missing
  |> jq: `{ errors: [{ type: "notFound", message: "no such thing" }] }`
"""


async def lines(served: Served, *needles: str, timeout_s: float = 15.0) -> str:
    """The server's log once every needle is in it (polled: the lines are written after
    the response)."""
    for _ in range(int(timeout_s / 0.05)):
        text = served.log.read_text()
        if all(needle in text for needle in needles):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{needles} not in log:\n{served.log.read_text()}")


async def test_text_access_and_error_lines(tmp_path: Path) -> None:
    async with serve(tmp_path, APP) as served, httpx.AsyncClient(base_url=served.base) as c:
        ok = await c.get("/ok", headers={"x-request-id": "req-42"})
        assert ok.headers["x-request-id"] == "req-42"
        assert ok.json() == {"ok": True, "rid": "req-42"}
        assert (await c.get("/lua", headers={"x-request-id": "l-1"})).json() == {"rid": "l-1"}
        failed = await c.get("/jq")
        rid = failed.headers["x-request-id"]
        assert len(rid) == 32  # generated
        assert "secret detail" in failed.text  # development: details stay in the body
        await c.get("/missing", headers={"x-request-id": "x" * 200})  # too long: replaced
        # the error lines too: each is written just after its access line, not with it
        text = await lines(served, "GET /ok 200", "GET /jq 500", "GET /missing 404",
                           "GET /jq 500 jqError", "GET /missing 404 notFound")
    assert "id=req-42" in text
    errors = [line for line in text.splitlines() if "webpipe.error" in line]
    assert len(errors) == 2  # once per unhandled error
    assert "ERROR webpipe.error: GET /jq 500 jqError at " in errors[0]
    assert errors[0].endswith(f"app.wp:9: JQ execution error: secret detail /srv/app/keys.txt "
                              f"id={rid}")
    assert "WARNING webpipe.error: GET /missing 404 notFound: no such thing" in errors[1]


async def test_json_lines_from_two_workers(tmp_path: Path) -> None:
    async with serve(tmp_path, APP, "--workers", "2", "--log-format", "json") as served, \
            httpx.AsyncClient(base_url=served.base) as c:
        for _ in range(6):
            await c.get("/ok")
        await c.get("/jq")
        await lines(served, '"status": 500', '"errorType": "jqError"')
        for _ in range(300):  # both workers have started once two banners are in
            if served.log.read_text().count('"message": "worker ') >= 2:
                break
            await asyncio.sleep(0.05)
        records = [json.loads(line) for line in served.log.read_text().splitlines()
                   if line.startswith("{")]
    banners = [r for r in records if r["message"].startswith("worker ")]
    assert len({r["message"] for r in banners}) == 2  # every worker logs
    access = [r for r in records if r["logger"] == "webpipe.access"]
    assert {r["path"] for r in access} >= {"/ok", "/jq"}
    assert all({"method", "status", "durationMs", "requestId"} <= r.keys() for r in access)
    [error] = [r for r in records if r["logger"] == "webpipe.error"]
    assert error["location"].endswith("app.wp:9")
    assert (error["status"], error["level"]) == (500, "error")


async def test_no_access_log_and_level(tmp_path: Path) -> None:
    async with serve(tmp_path, APP, "--no-access-log") as served, \
            httpx.AsyncClient(base_url=served.base) as c:
        await c.get("/ok")
        await c.get("/jq")
        text = await lines(served, "GET /jq 500 jqError")
    assert "webpipe.access" not in text
    async with serve(tmp_path, APP, "--log-level", "error") as served, \
            httpx.AsyncClient(base_url=served.base) as c:
        await c.get("/missing")
        await c.get("/jq")
        text = await lines(served, "GET /jq 500 jqError")
    assert "webpipe.access" not in text and "GET /missing" not in text


async def test_production_bodies_hide_internals(tmp_path: Path) -> None:
    async with serve(tmp_path, APP, "--production") as served, \
            httpx.AsyncClient(base_url=served.base) as c:
        failed = await c.get("/jq", headers={"x-request-id": "r-1"})
        missing = await c.get("/missing")
        text = await lines(served, "GET /jq 500")
    assert failed.status_code == 500
    assert failed.json() == {"errors": [{"type": "jqError", "requestId": "r-1",
                                         "message": "Internal server error (request id r-1)"}]}
    assert "secret" not in failed.text and "app.wp" not in failed.text
    assert "secret detail /srv/app/keys.txt" in text  # the details are in the log
    assert missing.json()["errors"][0]["message"] == "no such thing"  # 4xx: unchanged


def test_reload_with_workers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "app.wp").write_text(APP)
    done = subprocess.run([sys.executable, "-m", "webpipe", "serve", str(tmp_path / "app.wp"),
                           "--reload", "--workers", "2"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "--reload cannot be combined with --workers" in done.stderr
