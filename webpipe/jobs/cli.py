"""`webpipe worker APP [--concurrency N]` and `webpipe jobs status|list|retry|purge APP`.

The worker loads the app like `webpipe serve` does (`.env` files, diagnostics, limits),
runs only a job consumer against the app's database, and on SIGTERM/SIGINT stops taking
jobs, lets running ones finish within `config async { shutdownGraceMs }` and hands the rest
back. The `jobs` commands print JSON with `--json`, a plain table otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from webpipe.cli import PROJECT_APP
from webpipe.errors import WebpipeError

APP = click.argument("app", type=click.Path(exists=True, dir_okay=False, path_type=Path))


@click.command("worker")
@PROJECT_APP
@click.option("--concurrency", type=click.IntRange(1), default=None,
              help="Jobs run at once (default: config jobs { concurrency }, 10).")
def worker_command(app: Path, concurrency: int | None) -> None:
    """Run the durable jobs of APP (no HTTP server)."""
    from webpipe.serve import load_dotenv_files, load_served

    load_dotenv_files(app.parent)
    logging.basicConfig(level=os.environ.get("WEBPIPE_LOG", "INFO").upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        served = load_served(app)
    except WebpipeError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    asyncio.run(_work(served.env, app, concurrency))


async def _work(env: Any, app: Path, concurrency: int | None) -> None:
    from webpipe.executor.process_tasks import PROCESS_TASKS, TaskInfo
    from webpipe.jobs.run import start_jobs, stop_jobs
    from webpipe.tracing import tracing_for

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    tracing = tracing_for(False)  # OTEL_* configure a worker's spans as a server's
    running = start_jobs(lambda: env, concurrency, force=True, tracing=tracing)
    assert running is not None
    print(f"webpipe worker for {app} (concurrency {running.consumer.concurrency})",
          file=sys.stderr, flush=True)
    waiting = PROCESS_TASKS.start(stopping.wait(), TaskInfo("", "signal", "internal", ""))
    await asyncio.wait([running.task, waiting], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    await stop_jobs(running, PROCESS_TASKS.limits.shutdown_grace_ms / 1000)
    await PROCESS_TASKS.drain(5.0)
    await env.aclose()
    if tracing is not None:
        await asyncio.to_thread(tracing.shutdown)
    if "webpipe.pgembed" in sys.modules:
        from webpipe.pgembed import stop_embedded

        await asyncio.to_thread(stop_embedded)


def _with_conn(app: Path, work: Callable[[Any], Awaitable[Any]]) -> Any:
    from webpipe.jobs.store import connect, ensure_schema
    from webpipe.program import load_program

    async def run() -> Any:
        conn = await connect(load_program(app))
        try:
            await ensure_schema(conn)
            return await work(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    except (WebpipeError, RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


@click.group("jobs")
def jobs_group() -> None:
    """Inspect and manage the durable jobs of an app."""


@jobs_group.command("status")
@PROJECT_APP
@click.option("--json", "as_json", is_flag=True)
def status_command(app: Path, as_json: bool) -> None:
    """Queue depth, running, done, failed (retried) and dead-lettered jobs."""
    from webpipe.jobs import admin

    counts = _with_conn(app, admin.status)
    click.echo(json.dumps(counts) if as_json else
               "  ".join(f"{k}: {v}" for k, v in counts.items()))


@jobs_group.command("list")
@PROJECT_APP
@click.option("--status", "state", type=click.Choice(["queued", "running", "dead"]))
@click.option("--limit", type=int, default=100)
@click.option("--json", "as_json", is_flag=True)
def list_command(app: Path, state: str | None, limit: int, as_json: bool) -> None:
    """Jobs in the queue with their step (file:line), attempts and last error."""
    from webpipe.jobs import admin

    rows = _with_conn(app, lambda c: admin.listing(c, state, limit))
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        click.echo(f"{r['id']}\t{r['status']}\t{r['attempts']}\t{r['step']}\t{r['route']}"
                   f"\t{r['error'] or ''}")


@jobs_group.command("retry")
@APP
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every dead-lettered job.")
def retry_command(app: Path, ids: tuple[int, ...], every: bool) -> None:
    """Put dead-lettered jobs back in the queue."""
    from webpipe.jobs import admin

    if not ids and not every:
        raise click.UsageError("give job IDs or --all")
    count = _with_conn(app, lambda c: admin.retry(c, None if every else list(ids)))
    click.echo(f"re-queued {count} job(s)")
    if ids and count < len(ids):
        sys.exit(1)  # some of the ids were not dead-lettered jobs


@jobs_group.command("purge")
@PROJECT_APP
@click.option("--all", "every", is_flag=True, help="Every job, queued and running too.")
def purge_command(app: Path, every: bool) -> None:
    """Remove the dead-lettered jobs (every job with --all)."""
    from webpipe.jobs import admin

    count = _with_conn(app, lambda c: admin.purge(c, every))
    click.echo(f"removed {count} job(s)")
