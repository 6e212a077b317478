"""`Debugger`: the object `--inspect` hangs on `Env.debugger`, called by the step loop.

The executor calls it in two places (webpipe/executor/pipeline.py), each behind one
`env.debugger is not None` check: `run_body` around every body (a route or named pipeline
body is a frame) and `before_step` before every step that runs. A step stops when a
breakpoint is on its line, when its thread is stepping and reaches the depth it asked
for, or when a pause was asked; the request then awaits an event that `continue`/`next`/
`stepIn`/`stepOut` set, and the state the client edited meanwhile replaces its own. Only
that request waits. With no client attached nothing stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from webpipe.debugger.breakpoints import Breakpoints, LineIndex
from webpipe.debugger.threads import THREAD_KEY, Frame, Mode, Thread, frame_names, step_label
from webpipe.debugger.variables import RefTable
from webpipe.source import Span

if TYPE_CHECKING:
    from webpipe.debugger.session import DapSession
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env
    from webpipe.executor.state import Outcome
    from webpipe.source import Span
    from webpipe.syntax import nodes as n

log = logging.getLogger("webpipe.debugger")
T = TypeVar("T")
DEFAULT_PORT = 5858
NEXT_REQUEST = 1  # the thread id standing for "the next request" (pause before it starts)


class Debugger:
    """Breakpoints, threads and the DAP listener of one `--inspect` process."""

    def __init__(self, port: int = DEFAULT_PORT, host: str = "127.0.0.1", *,
                 tests: bool = False) -> None:
        self.host, self.port, self.tests = host, port, tests
        self.breakpoints = Breakpoints()
        self.index = LineIndex()
        self.frames: dict[Span, str] = {}
        self.threads: dict[int, Thread] = {}
        self.refs = RefTable()
        self.session: DapSession | None = None
        self.pause_next = False
        self.stopping = False  # the process is shutting down: nothing stops any more
        self._next_thread = NEXT_REQUEST + 1
        self._server: asyncio.Server | None = None
        self._configured: asyncio.Event | None = None
        self._signals: dict[int, Any] = {}
        self._client_task: asyncio.Task[Any] | None = None

    # ---- the program ----------------------------------------------------------------

    def attach(self, env: Env) -> None:
        """Debug `env` (a newly loaded or reloaded program); breakpoints whose step moved
        are bound again and the client is told."""
        env.debugger = self
        self.index.add(env.index, self.tests)
        self.frames = frame_names(env)
        for changed in self.breakpoints.rebind(self.index):
            self.emit("breakpoint", {"reason": "changed", "breakpoint": changed})

    # ---- hooks called by the executor -----------------------------------------------

    async def run_body(self, body: n.Pipeline, state: Any, ctx: RequestContext,
                       run: Callable[[Any], Awaitable[T]]) -> T:
        """Run a body; a route or named pipeline body is a frame of the thread."""
        name = self.frames.get(body.span)
        thread: Thread | None = ctx.extras.get(THREAD_KEY)
        if name is None and thread is not None and thread.frames:
            return await run(state)  # a branch body: part of the frame around it
        thread = thread or self._new_thread(ctx, name or "pipeline")
        thread.frames.append(Frame(name or "pipeline", body.span))
        try:
            return await run(state)
        finally:
            self._leave(thread)

    async def before_step(self, step: n.Step, out: Outcome, env: Env,
                          ctx: RequestContext) -> None:
        """Stop before `step` when a breakpoint, stepping or a pause asks for it."""
        thread: Thread | None = ctx.extras.get(THREAD_KEY)
        if thread is None or not thread.frames:
            return
        frame = thread.frames[-1]
        frame.span, frame.step = step.span, step_label(step)
        reason = self._stop_reason(thread, step.span)
        if reason is not None:
            out.state = await self.pause(thread, out.state, env, *reason)

    async def run_test(self, title: str, span: Span, variables: dict[str, Any], env: Env,
                       ctx: RequestContext, run: Callable[[], Awaitable[T]]) -> T:
        """`webpipe test --inspect`: a test is a frame at its `it` line, where a
        breakpoint stops before the test runs (its state: the test's name and `let`s)."""
        thread = self._new_thread(ctx, title)
        thread.frames.append(Frame(title, span, "it", is_test=True))
        try:
            reason = self._stop_reason(thread, span)
            if reason is not None:
                await self.pause(thread, {"it": title, "let": variables}, env, *reason)
            return await run()
        finally:
            self._leave(thread)

    # ---- threads --------------------------------------------------------------------

    def _new_thread(self, ctx: RequestContext, name: str) -> Thread:
        thread = Thread(self._next_thread, f"{ctx.route or name} #{self._next_thread}", ctx)
        self._next_thread += 1
        ctx.extras[THREAD_KEY] = self.threads[thread.id] = thread
        return thread

    def _leave(self, thread: Thread) -> None:
        thread.frames.pop()
        if thread.frames:
            return
        self.threads.pop(thread.id, None)
        thread.ctx.extras.pop(THREAD_KEY, None)
        if thread.announced:
            self.emit("thread", {"reason": "exited", "threadId": thread.id})

    def _stop_reason(self, thread: Thread, span: Span) -> tuple[str, int | None] | None:
        if self.session is None or self.stopping:
            return None
        if self.breakpoints.by_file:
            hit = self.breakpoints.hit(self.index.file_of(span.source), span)
            if hit is not None:
                return "breakpoint", hit
        if self.pause_next or thread.mode is Mode.PAUSE:
            self.pause_next = False
            return "pause", None
        if thread.stops_here():
            return "step", None
        return None

    async def pause(self, thread: Thread, state: Any, env: Env, reason: str,
                    breakpoint: int | None) -> Any:
        """Wait until the client resumes `thread`; the (possibly edited) state."""
        thread.state, thread.env, thread.resume = state, env, asyncio.Event()
        thread.mode = Mode.RUN
        if not thread.announced:
            thread.announced = True
            self.emit("thread", {"reason": "started", "threadId": thread.id})
        body: dict[str, Any] = {"reason": reason, "threadId": thread.id,
                                "allThreadsStopped": False,
                                "description": f"Paused on {reason}"}
        if breakpoint is not None:
            body["hitBreakpointIds"] = [breakpoint]
        self.emit("stopped", body)
        try:
            await thread.resume.wait()
            return thread.state
        finally:
            thread.resume, thread.env, thread.state = None, None, None
            thread.roots.clear()
            self.refs.drop_thread(thread.id)

    def resume(self, thread_id: int, mode: Mode) -> None:
        """Resume a paused thread (`continue`: Mode.RUN, or a stepping mode)."""
        if thread_id == NEXT_REQUEST and mode is Mode.RUN:
            self.pause_next = False
        thread = self.threads.get(thread_id)
        if thread is not None and thread.resume is not None:
            thread.step_with(mode)
            thread.resume.set()

    def release_all(self) -> None:
        """Resume every paused thread, forget breakpoints and stepping (the client left,
        or the process is stopping)."""
        self.pause_next = False
        self.breakpoints.clear()
        for thread in list(self.threads.values()):
            thread.mode = Mode.RUN
            if thread.resume is not None:
                thread.resume.set()

    def emit(self, event: str, body: dict[str, Any]) -> None:
        if self.session is not None:
            self.session.event(event, body)

    # ---- the listener ---------------------------------------------------------------

    async def start(self) -> None:
        """Listen for a DAP client on host:port (loopback unless told otherwise)."""
        from webpipe.debugger.session import DapSession

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self.session is not None:
                log.warning("a second debugger client was refused (one at a time)")
                writer.close()
                return
            self.session = DapSession(self, reader, writer)
            self._client_task = asyncio.current_task()
            try:
                await self.session.serve()
            finally:
                self.session, self._client_task = None, None
                self.release_all()

        self._configured = asyncio.Event()
        self._server = await asyncio.start_server(client, self.host, self.port)
        self._signals = _release_on_signals(self)

    def configured(self) -> None:
        """The client sent `configurationDone` (its breakpoints are set)."""
        if self._configured is not None:
            self._configured.set()

    async def wait_configured(self) -> None:
        assert self._configured is not None, "start() first"
        await self._configured.wait()

    async def stop(self) -> None:
        """Stop listening, release every paused request and drop the client."""
        self.release_all()
        if self.session is not None:
            self.emit("terminated", {})
            self.session.close()
        if self._client_task is not None:  # the session ends once its stream is closed
            await asyncio.wait([self._client_task], timeout=5)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for sig, previous in self._signals.items():
            signal.signal(sig, previous)
        self._signals.clear()


async def run_attached(port: int, files: list[Path],
                       run: Callable[[Debugger], Awaitable[T]], *, tests: bool = False) -> T:
    """`webpipe test --inspect`, `webpipe run --inspect`: listen, wait until a client has
    attached and sent `configurationDone` (its breakpoints, checked against the files'
    steps, are set before anything runs), then `run(debugger)`; stop listening after."""
    from webpipe.errors import WebpipeError
    from webpipe.loader import load_file

    debugger = Debugger(port, tests=tests)
    for file in files:
        with contextlib.suppress(WebpipeError):  # a broken file: its run reports it
            debugger.index.add(load_file(file), tests)
    await debugger.start()
    print(f"debugger (DAP) listening on {debugger.host}:{port}: waiting for a client to "
          "attach", file=sys.stderr)
    try:
        await debugger.wait_configured()
        return await run(debugger)
    finally:
        await debugger.stop()


def _release_on_signals(debugger: Debugger) -> dict[int, Any]:
    """On SIGTERM/SIGINT, resume paused requests before the server waits for them to end
    (wrapping the server's handlers, as `ProcessTasks.watch_signals` does); the handlers
    replaced, for `stop()` to put back."""
    loop = asyncio.get_running_loop()
    replaced: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous = signal.getsignal(sig)
        except ValueError:  # not the main thread
            break
        if not callable(previous):
            continue

        def handler(number: int, frame: Any, previous: Any = previous) -> None:
            debugger.stopping = True
            loop.call_soon_threadsafe(debugger.release_all)
            previous(number, frame)

        signal.signal(sig, handler)
        replaced[sig] = previous
    return replaced
