"""`webpipe serve --workers N`: uvicorn's supervisor, with a listening socket per worker.

uvicorn's multiprocess supervisor binds one socket in the parent and every worker accepts
on it. When many connections arrive at once (a load balancer's pool, wrk's 64), the worker
that wakes first accepts most of them, and keep-alive pins them there: measured here, 64
connections split 59/5 and 39/25 between two workers. Instead each worker binds its own
socket with `SO_REUSEPORT`, and the kernel spreads new connections over the workers'
sockets by a hash of the connection's addresses and ports (Linux; other systems that have
the option may not balance). The parent holds no socket: a worker that dies closes its
own, so no connection is queued where nobody accepts, and the supervisor's replacement
binds a fresh one. uvicorn's supervisor is kept for the rest (health checks, restarts,
signals, `SIGHUP`). Without `SO_REUSEPORT`, or for `--port 0` (each worker would get a
port of its own), the workers share the parent's socket as uvicorn does by default.

A worker outlives nothing: if the supervisor dies without stopping it (SIGKILL, the OOM
killer), Linux sends the worker SIGTERM (`PR_SET_PDEATHSIG`), which stops it the graceful
way, so no orphan keeps serving (or holding the port) with nobody to restart or stop it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
from typing import Any

from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

log = logging.getLogger("webpipe.serve")


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class SupervisedWorker(multiprocess.Process):
    """One worker process that stops when its supervisor dies (module docstring)."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # in the worker
        stop_with_parent()
        super().target(sockets)


class ReusePortWorker(SupervisedWorker):
    """A worker that binds its own `SO_REUSEPORT` socket, then serves on it."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # in the worker
        super().target([reuse_port_socket(self.config.host, self.config.port)])


def stop_with_parent() -> None:
    """Ask Linux for SIGTERM when this process's parent dies; if it died already (before
    the request took effect), stop now. Elsewhere nothing changes (uvicorn's behaviour)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("worker %d will not stop with its supervisor: prctl failed (errno %d)",
                    os.getpid(), ctypes.get_errno())
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        log.error("worker %d: its supervisor is gone; stopping", os.getpid())
        signal.raise_signal(signal.SIGTERM)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` in the port's `SO_REUSEPORT` group (not yet listening:
    uvicorn's server listens on it with its backlog)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn binds
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:  # a worker that cannot bind would fail the same way each restart
        log.error("worker cannot bind %s:%d: %s", host, port, exc)
        sock.close()
        sys.exit(STARTUP_FAILURE)
    return sock


def balanced(port: int) -> bool:
    """Whether the workers get a socket each (see the module docstring)."""
    return hasattr(socket, "SO_REUSEPORT") and port != 0


def run_workers(app: str, **options: Any) -> None:
    """Serve the import string `app` (a factory) under uvicorn's supervisor."""
    config = Config(app, factory=True, **options)
    # The supervisor makes its workers with its module's `Process`; it runs for the rest of
    # this (parent) process's life.
    if balanced(config.port):
        multiprocess.Process = ReusePortWorker  # type: ignore[misc]
        sockets = []
    else:
        multiprocess.Process = SupervisedWorker  # type: ignore[misc]
        sockets = [config.bind_socket()]
    # as uvicorn.run: an interrupt ends the supervisor, which has stopped its workers
    with contextlib.suppress(KeyboardInterrupt):
        multiprocess.Multiprocess(config, sockets=sockets).run()
