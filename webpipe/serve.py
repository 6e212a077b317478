"""`webpipe serve`: load the program, bind, reload on edits, shut down cleanly.

`.env` handling (spec/decisions.md): real environment > `.env.local` > `.env`, in every
mode; files are read from the directory of the main `.wp` file. Bind address (spec §9.1):
`--port P` → 127.0.0.1:P; `--address HOST:PORT`; env `PORT` → 0.0.0.0:PORT; else
127.0.0.1:7770. Hot reload is in-process: a broken edit prints its diagnostic and the last
good program keeps serving (the reference exits instead).
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from starlette.types import ASGIApp

from webpipe.errors import WebpipeError
from webpipe.executor.env import Env
from webpipe.executor.process_tasks import PROCESS_TASKS, TaskLimits
from webpipe.oplog import LogSettings, announce, configure_logging
from webpipe.program import load_program
from webpipe.protocol import PROTOCOL, configure_connections, raise_file_limit
from webpipe.serve_watch import SourceFilter, ensure_port_free, load_checked
from webpipe.server import Served, WebpipeApp, build_served, create_app
from webpipe.tracing import tracing_for

log = logging.getLogger("webpipe.serve")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7770
INSPECT_HOST = "127.0.0.1"  # the debugger edits requests: loopback only (spec/debugger.md)


# Requests allocate many short-lived containers: a 200-way `@async` fan-out ~100 per branch,
# all alive through the branch's upstream wait. At CPython's default first threshold (700)
# they set off a young collection every few branches and a middle one (which walks every
# in-flight branch's objects) every ~70. At 2 000: ~5 % less CPU per fan-out branch, for
# young pauses of ~0.5 ms instead of ~0.15 ms on a plain route; 20 000 saved ~12 % but
# paused ~5 ms, which a busy server's p99 would show (spec/decisions.md "Cyclic GC").
GC_THRESHOLDS = (2_000, 10, 10)


def settle_heap() -> None:
    """After the program is loaded: collect once, freeze what is alive (the program is
    long-lived: it stays out of every later pass, for p99) and set `GC_THRESHOLDS`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def load_dotenv_files(directory: Path) -> None:
    """Fill unset variables from `.env.local`, then `.env` (real env always wins)."""
    for name in (".env.local", ".env"):
        path = directory / name
        if path.is_file():
            for key, value in dotenv_values(path).items():
                if value is not None and key not in os.environ:
                    os.environ[key] = value


def bind_address(host: str | None, port: int | None, address: str | None) -> tuple[str, int]:
    if port is not None:
        return host or DEFAULT_HOST, port
    if address:
        addr_host, _, addr_port = address.rpartition(":")
        return addr_host.strip("[]") or DEFAULT_HOST, int(addr_port)
    if re.fullmatch(r"[0-9]{1,5}", os.environ.get("PORT", "")):
        return host or "0.0.0.0", int(os.environ["PORT"])
    return host or DEFAULT_HOST, DEFAULT_PORT


def load_served(path: Path, *, quiet: bool = False) -> Served:
    """Load the program for serving: diagnostics printed (unless `quiet`: a worker, whose
    parent checked and printed them), its connection bounds applied."""
    env = load_program(path)
    served = build_served(env)
    for diagnostic in () if quiet else env.diagnostics:
        print(diagnostic.render(), file=sys.stderr)
    configure_connections(served.limits)
    return served


def _signature(paths: list[Path]) -> list[tuple[int, int] | None]:
    out: list[tuple[int, int] | None] = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            out.append(None)
        else:
            out.append((st.st_mtime_ns, st.st_size))
    return out


async def wait_until_settled(paths: list[Path], quiet: float = 0.1, limit: float = 2.0) -> None:
    """Wait until the watched files stop changing for `quiet` seconds (at most `limit`), so
    an editor's truncate-then-write is never loaded half written."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    before = _signature(paths)
    while loop.time() < deadline:
        await asyncio.sleep(quiet)
        after = _signature(paths)
        if after == before:
            return
        before = after


def make_reloader(path: Path) -> Callable[[WebpipeApp], Coroutine[Any, Any, None]]:
    async def reloader(app: WebpipeApp) -> None:
        from watchfiles import awatch

        sources = SourceFilter(path, lambda: [m.path for m in app.served.env.index.modules])
        async for _changes in awatch(*sources.roots(), watch_filter=sources, debounce=150):
            await wait_until_settled([path, *(m.path for m in app.served.env.index.modules)])
            try:
                load_dotenv_files(path.parent)
                served = load_checked(path)
            except WebpipeError as exc:
                print(f"{exc}\nreload failed; still serving the last good version",
                      file=sys.stderr)
                continue
            old, app.served = app.served, served  # compiled for --inspect/tracing there
            await old.env.aclose()
            del old
            gc.unfreeze()  # let the old program's cycles be collected, then freeze the new one
            gc.collect()
            gc.freeze()
            announce(f"reloaded {path}")

    return reloader


def wait_for_fix(path: Path, problem: WebpipeError) -> Served:
    """`serve --reload` of a program that fails its checks at start: print the problems and
    load it again after each edit of its sources until it passes (spec/server.md §4)."""
    from watchfiles import watch

    sources = SourceFilter(path, lambda: [path])
    print(f"{problem}\nwaiting for a fix (--reload)", file=sys.stderr)
    for _changes in watch(*sources.roots(), watch_filter=sources, debounce=150):
        try:
            load_dotenv_files(path.parent)
            return load_checked(path)
        except WebpipeError as exc:
            print(f"{exc}\nstill waiting for a fix", file=sys.stderr)
    raise problem  # the watcher stopped (interrupted)


def checked_at_start(path: Path, reload: bool) -> Served:
    """The program, checked; with `--reload` a failing one waits for a fix."""
    try:
        return load_checked(path)
    except WebpipeError as exc:
        if not reload:
            raise
        return wait_for_fix(path, exc)


def app_factory() -> ASGIApp:
    """uvicorn factory for `--workers N`: the file comes from WEBPIPE_APP_FILE; each worker
    is a fresh process, so it sets up the parent's logging first (spec/server.md §2)."""
    configure_logging(LogSettings.from_env())
    path = Path(os.environ["WEBPIPE_APP_FILE"])
    app = create_app(load_served(path, quiet=True),
                     metrics=bool(os.environ.get("WEBPIPE_METRICS")),
                     tracing=tracing_for(bool(os.environ.get("WEBPIPE_TRACE"))))
    settle_heap()  # as one process does (run_server)
    log.info("worker %d serving %s", os.getpid(), path)
    return app


def run_server(path: Path, host: str, port: int, *, reload: bool = False,
               workers: int = 1, metrics: bool = False, logs: LogSettings | None = None,
               inspect_port: int | None = None, trace: bool = False) -> None:
    """Serve `path`; `inspect_port`: with the step debugger listening there (one worker);
    `trace`: print each request's step timings (spec/tracing.md)."""
    import uvicorn

    ensure_port_free(host, port)  # before any output: one clear line, exit 1
    if inspect_port is not None:
        ensure_port_free(INSPECT_HOST, inspect_port)
    load_dotenv_files(path.parent)
    settings = logs or LogSettings.from_env()
    settings.export()  # the workers read it from the environment
    configure_logging(settings)
    before, after = raise_file_limit()  # before any worker starts: they inherit it
    if after != before:
        log.info("open-file limit raised from %d to %d", before, after)
    if workers > 1:
        os.environ["WEBPIPE_APP_FILE"] = str(path.resolve())
        os.environ["WEBPIPE_METRICS"] = "1" if metrics else ""
        os.environ["WEBPIPE_TRACE"] = "1" if trace else ""
        if metrics:
            share_worker_metrics()
        announce(f"webpipe serving {path} on http://{host}:{port} with {workers} workers")
        from webpipe.workers import run_workers

        run_workers("webpipe.serve:app_factory", host=host, port=port, workers=workers,
                    log_level="warning", http=PROTOCOL, log_config=None, proxy_headers=False,
                    timeout_graceful_shutdown=shutdown_wait_s(checked_at_start(path, False).env))
        return
    debugger = None
    if inspect_port is not None:
        from webpipe.debugger import Debugger

        debugger = Debugger(inspect_port, INSPECT_HOST)
    app = create_app(checked_at_start(path, reload),
                     reloader=make_reloader(path) if reload else None, metrics=metrics,
                     debugger=debugger, tracing=tracing_for(trace))
    settle_heap()
    announce(f"webpipe serving {path} on http://{host}:{port}")
    if inspect_port is not None:
        announce(f"debugger (DAP) listening on {INSPECT_HOST}:{inspect_port}: attach with "
                 "the `webpipe` debug configuration or any DAP client")
    # log_config=None: uvicorn's own warnings go through our handler (same format, JSON too);
    # proxy_headers=False: the `ip` key reads X-Forwarded-For itself (spec/http.md), and
    # nothing reads the scope's client or scheme, so uvicorn's layer would only cost a call
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, http=PROTOCOL,
                log_config=None, proxy_headers=False,
                timeout_graceful_shutdown=math.ceil(PROCESS_TASKS.limits.shutdown_grace_ms / 1000))


def shutdown_wait_s(env: Env) -> int:
    """The grace period of `config async { shutdownGraceMs }`: uvicorn waits at most this
    long for requests in flight, and the task drain gets only what is left of it
    (`ProcessTasks.grace_left`), so a shutdown takes the grace, not twice the grace."""
    return math.ceil(TaskLimits.from_config(env.configs.get("async")).shutdown_grace_ms / 1000)


def share_worker_metrics() -> None:
    """`--workers N --metrics`: the workers write their samples into one fresh directory
    (prometheus-client's multiprocess mode), so any worker's `/metrics` counts them all.
    Set before the workers start (they are spawned, so they import the client afresh)."""
    directory = tempfile.mkdtemp(prefix="webpipe-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
