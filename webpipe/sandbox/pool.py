"""`SandboxPool`: at most N worker processes running embedded code under a time and memory
budget, spoken to from asyncio over their pipes (spec/sandbox.md).

`await pool.run(kind, payload, timeout_s=..., memory_mb=..., callback=...)` returns the
handler's value or raises `SandboxTimeout`, `SandboxMemory` or `SandboxError` (the handler's
own message). Time is enforced here: the deadline covers waiting for a free worker and the
run itself, and a worker still running at the deadline (or whose caller was cancelled) is
SIGKILLed and replaced by a fresh one on the next run. Workers start lazily, one per
concurrent run up to `size`; a run beyond that waits for one to be released.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from webpipe.sandbox.frames import HEADER, decode, encode

Callback = Callable[[str, Any], Awaitable[Any]]


class SandboxError(Exception):
    """A run failed with the handler's own error message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SandboxTimeout(SandboxError):
    """The run went past its time budget (the worker was killed)."""


class SandboxLimit(SandboxError):
    """The run hit a bound of the sandbox itself (its message says which)."""


class SandboxMemory(SandboxLimit):
    """The run went past its memory budget (or its worker died mid-run)."""


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.healthy = True

    async def exchange(self, frame: bytes, callback: Callback | None) -> dict[str, Any]:
        """Send a run and read frames until its answer, serving callbacks in between."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(frame)
        await self.proc.stdin.drain()
        while True:
            reply = await self._read()
            if reply.get("op") != "call":
                return reply
            self.proc.stdin.write(encode(await _answer(callback, reply)))
            await self.proc.stdin.drain()

    async def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            head = await self.proc.stdout.readexactly(HEADER.size)
            body = await self.proc.stdout.readexactly(HEADER.unpack(head)[0])
        except asyncio.IncompleteReadError:
            self.healthy = False
            raise SandboxMemory("the worker died during the run") from None
        message = decode(body)
        assert isinstance(message, dict)
        return message

    def kill(self) -> None:
        self.healthy = False
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


async def _answer(callback: Callback | None, request: dict[str, Any]) -> dict[str, Any]:
    if callback is None:
        return {"op": "answer", "error": "this run has no callback"}
    try:
        return {"op": "answer", "value": await callback(request["name"], request["payload"])}
    except Exception as exc:  # reported to the script, which may handle it
        return {"op": "answer", "error": str(exc) or type(exc).__name__}


def reply_error(reply: dict[str, Any]) -> SandboxError:
    """The exception for an `{"op": "error"}` reply."""
    kinds = {"memory": SandboxMemory, "limit": SandboxLimit}
    return kinds.get(str(reply.get("type")), SandboxError)(str(reply.get("message")))


class SandboxPool:
    """Worker processes owned by one app; `aclose()` ends them."""

    def __init__(self, size: int = 2, handlers: Mapping[str, str] | None = None) -> None:
        self.size = max(1, size)
        self._handlers = dict(handlers or {})
        self._slots = asyncio.Semaphore(self.size)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        # killed workers, kept until their exit is seen (a Process dropped earlier warns)
        self._dying: set[_Worker] = set()
        self._closed = False

    @property
    def live(self) -> int:
        """Worker processes alive now (idle or running)."""
        return sum(1 for w in (*self._idle, *self._busy) if w.proc.returncode is None)

    async def run(self, kind: str, payload: Any, *, timeout_s: float, memory_mb: int,
                  callback: Callback | None = None) -> Any:
        """The handler's value for `payload`; see the module docstring for the errors."""
        try:
            frame = encode({"op": "run", "kind": kind, "payload": payload,
                            "memory_mb": memory_mb})
        except (TypeError, ValueError) as exc:
            raise SandboxError(f"the input is not JSON: {exc}") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                async with self._slots:
                    if loop.time() >= deadline:  # woken as the deadline struck: no run
                        raise TimeoutError
                    return await self._run_on_worker(frame, callback)
        except TimeoutError:
            raise SandboxTimeout(f"past its {timeout_s:g} s budget") from None

    async def _run_on_worker(self, frame: bytes, callback: Callback | None) -> Any:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        worker = self._idle.pop() if self._idle else await self._spawn()
        self._busy.add(worker)
        try:
            reply = await worker.exchange(frame, callback)
            worker.healthy = not reply.get("retire")
        except BaseException:
            worker.kill()  # timeout, cancellation or death: its state is unknown
            raise
        finally:
            self._busy.discard(worker)
            self._settle(worker)
        if reply.get("op") == "done":
            return reply.get("value")
        raise reply_error(reply)

    def _settle(self, worker: _Worker) -> None:
        if worker.healthy and not self._closed and worker.proc.returncode is None:
            self._idle.append(worker)
        else:
            worker.kill()
            self._dying.add(worker)
        self._dying = {w for w in self._dying if w.proc.returncode is None}

    async def _spawn(self) -> _Worker:
        args = [sys.executable, "-m", "webpipe.sandbox.worker"]
        if self._handlers:
            args.append(orjson.dumps(self._handlers).decode())
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return _Worker(proc)

    async def warm(self) -> None:
        """Start every worker now. A worker imports its handlers (~0.3 s, over 1 s on a loaded
        machine) after its process starts, and a run waiting for that pays it from its own
        budget: started at app startup, they are ready before the first request needs them.
        Only the spawn is awaited, not the imports."""
        while not self._closed and len(self._idle) + len(self._busy) < self.size:
            self._idle.append(await self._spawn())

    async def aclose(self) -> None:
        """Kill every worker (a run in flight fails) and reap them."""
        self._closed = True
        workers = [*self._idle, *self._busy, *self._dying]
        self._idle.clear()
        self._dying.clear()
        for worker in workers:
            worker.kill()
        for worker in workers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.proc.wait(), 2.0)
