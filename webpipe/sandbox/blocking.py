"""A sandbox worker driven with blocking calls, for tooling outside an event loop's hot path
(`webpipe test` assertions, mocks and request clauses): same process, same frames and the
same bounds as `SandboxPool`, without asyncio. `tooling_worker().run(kind, payload,
timeout_s=, memory_mb=)` blocks its caller (never a server: tooling only) for at most the
budget, killing and replacing the worker past it; errors are the pool's (`SandboxTimeout`,
`SandboxMemory`, `SandboxError`). Runs have no callbacks.
"""

from __future__ import annotations

import atexit
import select
import subprocess
import sys
import time
from typing import Any

from webpipe.sandbox.frames import read_frame, write_frame
from webpipe.sandbox.pool import SandboxMemory, SandboxTimeout, reply_error


class BlockingWorker:
    """One worker process, started on first use and after each kill."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def run(self, kind: str, payload: Any, *, timeout_s: float, memory_mb: int) -> Any:
        proc = self._started()
        assert proc.stdin is not None and proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        message = {"op": "run", "kind": kind, "payload": payload, "memory_mb": memory_mb}
        try:
            write_frame(proc.stdin.fileno(), message)
        except BrokenPipeError:
            self.close()
            raise SandboxMemory("the worker died before the run") from None
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, remaining))
            if not ready:
                self.close()
                raise SandboxTimeout(f"past its {timeout_s:g} s budget")
            reply = read_frame(proc.stdout.fileno())
            if reply is None:
                self.close()
                raise SandboxMemory("the worker died during the run")
            if reply.get("op") == "call":  # tooling runs offer no callbacks
                write_frame(proc.stdin.fileno(), {"op": "answer", "error": "no callback"})
                continue
            return _outcome(reply, self)

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "webpipe.sandbox.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return self._proc

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()


def _outcome(reply: dict[str, Any], worker: BlockingWorker) -> Any:
    if reply.get("retire"):
        worker.close()
    if reply.get("op") == "done":
        return reply.get("value")
    raise reply_error(reply)


_TOOLING: BlockingWorker | None = None


def tooling_worker() -> BlockingWorker:
    """The process's tooling worker (closed at exit)."""
    global _TOOLING
    if _TOOLING is None:
        _TOOLING = BlockingWorker()
        atexit.register(_TOOLING.close)
    return _TOOLING
