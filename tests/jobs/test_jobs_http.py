"""Issue 16 against real processes and the real embedded PostgreSQL: a durable step is
written before the 2xx and run by `webpipe serve`'s consumer or `webpipe worker`; `.job`;
declaration order; retries, the dead letter, `@onError` and `webpipe jobs retry`; nothing
enqueued for a non-2xx; a 5xx (and nothing written) when the database is down at enqueue;
a changed step is dead-lettered with its reason; SIGTERM hands running jobs back; metrics.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.hostile.harness import serve
from tests.jobs.apps import app_text
from tests.jobs.support import (
    Hooks,
    fetch_val,
    run_cli,
    start_worker,
    stop_worker,
    until,
    until_db,
    with_database,
)
from tests.middleware.pg_server import SOCKET_NAME, TcpProxy, socket_dir

ALL_ROWS = "SELECT (SELECT count(*) FROM pgqueuer) + (SELECT count(*) FROM pgqueuer_log)"


async def test_a_durable_step_runs_after_the_2xx_and_sees_its_job(
        tmp_path: Path, db_url: str, hooks: Hooks) -> None:
    async with serve(tmp_path, app_text(hooks.base)) as served, \
            httpx.AsyncClient(base_url=served.base) as client:
        r = await client.post("/signup", json={"k": "ann"}, headers={"x-request-id": "rq-1"})
        assert r.status_code == 200 and r.json() == {"ok": True}
        await until(lambda: len(hooks.bodies) == 1)
        body = hooks.bodies[0]
        assert body["k"] == "ann" and body["attempt"] == 1 and body["requestId"] == "rq-1"
        assert isinstance(body["jobId"], int)
        await until_db(db_url, "SELECT count(*) FROM pgqueuer_log WHERE job_id = "
                       f"{body['jobId']} AND status = 'successful'", 1)


async def test_without_sync_commit_jobs_are_still_written_and_run(
        tmp_path: Path, db_url: str, hooks: Hooks) -> None:
    async with serve(tmp_path, app_text(hooks.base, sync_commit=False)) as served, \
            httpx.AsyncClient(base_url=served.base) as client:
        for i in range(5):
            assert (await client.post("/signup", json={"k": f"s{i}"})).status_code == 200
        await until(lambda: len(hooks.counts()) == 5)


async def test_a_requests_durable_steps_run_in_declaration_order(
        tmp_path: Path, db_url: str, hooks: Hooks) -> None:
    async with serve(tmp_path, app_text(hooks.base)) as served, \
            httpx.AsyncClient(base_url=served.base) as client:
        for i in range(10):
            assert (await client.post("/two", json={"k": f"r{i}"})).status_code == 200
        await until(lambda: len(hooks.bodies) == 20)
    order = [b["k"] for b in hooks.bodies]
    for i in range(10):
        assert order.index(f"r{i}-1") < order.index(f"r{i}-2")


async def test_a_non_2xx_response_enqueues_nothing(tmp_path: Path, db_url: str,
                                                   hooks: Hooks) -> None:
    async with serve(tmp_path, app_text(hooks.base)) as served, \
            httpx.AsyncClient(base_url=served.base) as client:
        r = await client.post("/rejected", json={"k": "x"})
        assert r.status_code == 422
        # the same request with a 2xx is written: the first query proves the schema exists
        assert (await client.post("/signup", json={"k": "y"})).status_code == 200
        await until(lambda: len(hooks.bodies) == 1)
        assert await fetch_val(db_url, "SELECT count(*) FROM pgqueuer_log WHERE status = "
                               "'queued'") == 1  # one job was ever enqueued: /signup's
    assert [b["k"] for b in hooks.started] == ["y"]


async def test_a_failing_job_is_dead_lettered_then_retried_by_the_cli(
        tmp_path: Path, db_url: str, hooks: Hooks) -> None:
    app = tmp_path / "app.wp"
    async with serve(tmp_path, app_text(hooks.base)) as served, \
            httpx.AsyncClient(base_url=served.base) as client:
        assert (await client.post("/always-fails", json={"k": "f"})).status_code == 200
        await until(lambda: len(hooks.reports) == 1)
        assert [f["attempt"] for f in hooks.failures] == [1, 2]  # @retry(1): two attempts
        line = app.read_text().splitlines().index(
            "  |> pipeline: failing @background @durable @retry(1) @onError(report)") + 1
        report = hooks.reports[0]
        assert report["attempts"] == 2 and report["k"] == "f"
        assert report["location"].endswith(f"app.wp:{line}:3") and "httpError" in report["error"]
        code, out = await run_cli("jobs", "list", str(app), "--status", "dead", "--json")
        assert code == 0, out
        [dead] = json.loads(out)
        assert dead["step"] == f"app.wp:{line}" and dead["route"] == "POST /always-fails"
        assert "failed after 2 attempt(s)" in dead["error"]
        code, out = await run_cli("jobs", "status", str(app), "--json")
        assert json.loads(out)["dead"] == 1
        code, out = await run_cli("jobs", "retry", str(app), str(dead["id"]))
        assert code == 0 and "re-queued 1" in out
        await until(lambda: len(hooks.reports) == 2)  # it ran (and failed) again
        assert [f["attempt"] for f in hooks.failures] == [1, 2, 1, 2]
        await until_db(db_url, "SELECT count(*) FROM pgqueuer WHERE status = 'failed'", 1)
        code, out = await run_cli("jobs", "purge", str(app))
        assert "removed 1" in out
        assert await fetch_val(db_url, "SELECT count(*) FROM pgqueuer") == 0


async def test_a_database_down_at_enqueue_gives_a_5xx_and_writes_nothing(
        tmp_path: Path, db_url: str, jobs_server_url: str, hooks: Hooks,
        monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = TcpProxy(Path(socket_dir(jobs_server_url)) / SOCKET_NAME)
    await proxy.start()
    monkeypatch.setenv("DATABASE_URL", with_database(
        f"postgres://postgres@127.0.0.1:{proxy.port}/", urlsplit(db_url).path.strip("/")))
    try:
        async with serve(tmp_path, app_text(hooks.base), "--no-jobs") as served, \
                httpx.AsyncClient(base_url=served.base) as client:
            assert (await client.post("/signup", json={"k": "a"})).status_code == 200
            await proxy.stop()
            r = await client.post("/signup", json={"k": "b"})
            assert r.status_code == 503
            error = r.json()["errors"][0]
            assert error["type"] == "jobsError" and "could not be queued" in error["message"]
            await proxy.start()
            ok = 0
            for i in range(5):  # the pool drops its dead connections, then recovers
                ok += (await client.post("/signup", json={"k": f"c{i}"})).status_code == 200
            assert ok >= 1
    finally:
        await proxy.stop()
    assert await fetch_val(db_url, "SELECT count(*) FROM pgqueuer") == 1 + ok


async def test_a_changed_step_is_dead_lettered_and_a_moved_one_still_runs(
        tmp_path: Path, db_url: str, hooks: Hooks) -> None:
    text = app_text(hooks.base)
    async with serve(tmp_path, text, "--no-jobs") as served, \
            httpx.AsyncClient(base_url=served.base) as client:
        assert (await client.post("/signup", json={"k": "moved"})).status_code == 200
        assert (await client.post("/two", json={"k": "changed"})).status_code == 200
    app = tmp_path / "app.wp"
    edited = text.replace("POST /signup", "# a comment\n\nPOST /signup").replace(
        "  |> pipeline: first @background @durable",
        "  |> pipeline: first @background @durable @retry(3)")
    app.write_text(edited)
    worker = await start_worker(app, tmp_path / "worker.log")
    try:
        await until(lambda: len(hooks.bodies) == 1)
        await until(lambda: "no longer in the app" in worker.log.read_text())
    finally:
        await stop_worker(worker)
    assert hooks.bodies[0]["k"] == "moved"
    code, out = await run_cli("jobs", "list", str(app), "--status", "dead", "--json")
    assert code == 0, out
    [dead] = json.loads(out)
    assert "is no longer in the app" in dead["error"] and dead["route"] == "POST /two"


async def test_sigterm_hands_a_running_job_back_to_the_queue(
        tmp_path: Path, db_url: str, hooks: Hooks) -> None:
    hooks.delay_s = 5.0
    async with serve(tmp_path, app_text(hooks.base, grace_ms=500), "--no-jobs") as served, \
            httpx.AsyncClient(base_url=served.base) as client:
        assert (await client.post("/signup", json={"k": "long"})).status_code == 200
    app = tmp_path / "app.wp"
    worker = await start_worker(app, tmp_path / "w1.log")
    await until(lambda: len(hooks.started) == 1)
    await stop_worker(worker, wait_s=6)  # the grace (0.5 s) plus slack, not the 5 s job
    assert "handed back" in worker.log.read_text()
    assert await fetch_val(db_url, "SELECT status::text FROM pgqueuer") == "queued"
    hooks.delay_s = 0.0
    worker = await start_worker(app, tmp_path / "w2.log")
    try:
        await until(lambda: "long" in hooks.counts() and len(hooks.started) >= 2)
    finally:
        await stop_worker(worker)


async def test_metrics_count_jobs_by_step_and_event(tmp_path: Path, db_url: str,
                                                    hooks: Hooks) -> None:
    async with serve(tmp_path, app_text(hooks.base), "--metrics") as served, \
            httpx.AsyncClient(base_url=served.base) as client:
        assert (await client.post("/signup", json={"k": "m"})).status_code == 200
        await until(lambda: len(hooks.bodies) == 1)
        page = ""

        async def scraped() -> str:
            return (await client.get("/metrics")).text

        for _ in range(100):
            page = await scraped()
            if 'event="succeeded"' in page:
                break
        step = f"app.wp:{app_text(hooks.base).splitlines().index('POST /signup') + 3}"
        for event in ("enqueued", "started", "succeeded"):
            assert f'webpipe_jobs_total{{event="{event}",step="{step}"}} 1.0' in page, page
        assert "webpipe_jobs_queue_depth" in page
        assert "webpipe_jobs_oldest_queued_age_seconds" in page


async def test_a_worker_waits_for_its_database_and_then_consumes(
        tmp_path: Path, db_url: str, jobs_server_url: str, hooks: Hooks,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with serve(tmp_path, app_text(hooks.base), "--no-jobs") as served, \
            httpx.AsyncClient(base_url=served.base) as client:
        assert (await client.post("/signup", json={"k": "late"})).status_code == 200
    proxy = TcpProxy(Path(socket_dir(jobs_server_url)) / SOCKET_NAME)  # not started: down
    monkeypatch.setenv("DATABASE_URL", with_database(
        f"postgres://postgres@127.0.0.1:{proxy.port}/", urlsplit(db_url).path.strip("/")))
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "webpipe", "worker", str(tmp_path / "app.wp"),
            stdout=out, stderr=asyncio.subprocess.STDOUT)
    try:
        await until(lambda: "starting again in" in log.read_text())
        await proxy.start()
        await until(lambda: "late" in hooks.counts(), 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        await proxy.stop()
