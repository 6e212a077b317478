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
from webpipe.program import load_program
from webpipe.protocol import PROTOCOL, configure_connections, raise_file_limit
from webpipe.server import Served, WebpipeApp, build_served, create_app

log = logging.getLogger("webpipe.serve")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7770


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


def load_served(path: Path) -> Served:
    """Load the program for serving: diagnostics printed, its connection bounds applied."""
    env = load_program(path)
    served = build_served(env)
    for diagnostic in env.diagnostics:
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

        watched = {str(path.parent)} | {str(m.path) for m in app.served.env.index.modules}
        async for _changes in awatch(*watched, debounce=150):
            await wait_until_settled([path, *(m.path for m in app.served.env.index.modules)])
            try:
                load_dotenv_files(path.parent)
                served = load_served(path)
            except WebpipeError as exc:
                print(f"{exc}\nreload failed; still serving the last good version",
                      file=sys.stderr)
                continue
            old, app.served = app.served, served
            await old.env.aclose()
            del old
            gc.unfreeze()  # let the old program's cycles be collected, then freeze the new one
            gc.collect()
            gc.freeze()
            print(f"reloaded {path}", file=sys.stderr)

    return reloader


def app_factory() -> ASGIApp:
    """uvicorn factory for `--workers N`: the file comes from WEBPIPE_APP_FILE."""
    path = Path(os.environ["WEBPIPE_APP_FILE"])
    return create_app(load_served(path), metrics=bool(os.environ.get("WEBPIPE_METRICS")))


def run_server(path: Path, host: str, port: int, *, reload: bool = False,
               workers: int = 1, metrics: bool = False) -> None:
    import uvicorn

    load_dotenv_files(path.parent)
    logging.basicConfig(level=os.environ.get("WEBPIPE_LOG", "INFO").upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    before, after = raise_file_limit()  # before any worker starts: they inherit it
    if after != before:
        log.info("open-file limit raised from %d to %d", before, after)
    if workers > 1:
        os.environ["WEBPIPE_APP_FILE"] = str(path.resolve())
        os.environ["WEBPIPE_METRICS"] = "1" if metrics else ""
        if metrics:
            share_worker_metrics()
        uvicorn.run("webpipe.serve:app_factory", factory=True, host=host, port=port,
                    workers=workers, log_level="warning", http=PROTOCOL,
                    timeout_graceful_shutdown=shutdown_wait_s(load_program(path)))
        return
    app = create_app(load_served(path), reloader=make_reloader(path) if reload else None,
                     metrics=metrics)
    gc.collect()
    gc.freeze()  # the loaded program is long-lived: keep it out of every GC pass (p99)
    print(f"webpipe serving {path} on http://{host}:{port}", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, http=PROTOCOL,
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
