"""The embedded PostgreSQL that `pg` falls back to when no server is configured.

`pgserver` ships real PostgreSQL binaries; `embedded_url(data_dir)` runs `initdb` on first
use, starts the server (listening on a Unix socket inside the data directory, trust auth)
and returns its connection URL. Starting blocks for a second or two, so async callers use
`start_embedded()`, which runs it in a worker thread. There is one server per data
directory per process; pgserver's own exit hook stops it when the last process using that
directory exits (spec/pg.md "Embedded server"). `pgserver` is imported here only, on first
use, so `import webpipe` stays light.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import threading
import time
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("webpipe.pg")
# spec/pg.md: the state folder next to the main .wp file
STATE_DIR = ".webpipe"
DATA_DIR = "pgdata"

_LOCK = threading.Lock()
_URLS: dict[Path, str] = {}
_SERVERS: list[Any] = []  # servers this process stops when it ends


class EmbeddedUnavailable(RuntimeError):
    """pgserver is missing or the server would not start."""


def default_data_dir(base_dir: Path) -> Path:
    """`<base_dir>/.webpipe/pgdata`, the data directory for an app in `base_dir`."""
    return base_dir / STATE_DIR / DATA_DIR


def embedded_url(data_dir: Path, *, keep_running: bool = False) -> str:
    """Start (once per process) the server for `data_dir` and return its URL. Blocking.

    With `keep_running` the server outlives this process (for `webpipe db url`); the next
    webpipe process that uses the directory adopts it and stops it when it exits.
    """
    key = Path(data_dir).expanduser().resolve()
    with _LOCK:
        url = _URLS.get(key)
        if url is None:
            url = _URLS[key] = _start(key, keep_running)
        return url


async def start_embedded(data_dir: Path) -> str:
    """`embedded_url()` off the event loop."""
    return await asyncio.to_thread(embedded_url, data_dir)


def _start(data_dir: Path, keep_running: bool) -> str:
    pgserver = _import_pgserver()
    # spec/server.md §9: the first start runs initdb (seconds): say so, and how long it took
    first = not (data_dir / "PG_VERSION").exists()
    log.info("%s embedded PostgreSQL in %s%s", "creating and starting" if first else
             "starting", data_dir, " (first start: initdb)" if first else "")
    started = time.monotonic()
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        _traversable_prefixes(data_dir.parent)
        server = pgserver.get_server(data_dir, cleanup_mode=None if keep_running else "stop")
        if not keep_running:
            _SERVERS.append(server)
        log.info("embedded PostgreSQL ready in %.1fs", time.monotonic() - started)
        return str(server.get_uri())
    except Exception as exc:  # initdb/pg_ctl failures surface as many exception types
        raise EmbeddedUnavailable(f"embedded PostgreSQL in {data_dir} did not start: "
                                  f"{exc}") from exc


def stop_embedded() -> None:
    """Stop the embedded servers this process started (also done at exit by pgserver, but
    a process ended by a re-raised SIGTERM, as uvicorn does, never runs exit handlers)."""
    with _LOCK:
        servers, _SERVERS[:] = list(_SERVERS), []
        _URLS.clear()
    for server in servers:
        server.cleanup()


def _traversable_prefixes(path: Path) -> None:
    """As root, pgserver runs postgres as the `pgserver` user, which must be able to walk
    down to the data directory. pgserver does this once per process; other tools (pytest
    re-chmods its base temp dir to 0700 at each session start) can undo it, so redo it."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    for prefix in (path, *path.parents):
        mode = prefix.stat().st_mode
        if mode & _GROUP_OTHER_RX != _GROUP_OTHER_RX:
            prefix.chmod(mode | _GROUP_OTHER_RX)


_GROUP_OTHER_RX = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


def _import_pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine for us
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as exc:
        raise EmbeddedUnavailable("the embedded database needs `pip install pgserver`") from exc
    return pgserver
