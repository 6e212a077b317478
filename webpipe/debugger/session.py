"""One DAP client connection: read requests, answer them, send events.

Requests are dispatched through `COMMANDS` (command name -> handler); a handler returns the
response body or raises `DapError`, which becomes `success: false` with its message. The
handlers that read a paused thread (stack, scopes, variables, evaluate, setVariable) are in
`inspecting.py`; this module has the session's life and the run control. Events are
written as soon as the executor produces them; writes go through one `StreamWriter`, so a
response and an event never interleave inside a message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from webpipe.debugger.hook import NEXT_REQUEST
from webpipe.debugger.threads import Mode
from webpipe.debugger.wire import DapError, WireError, encode, read_message

if TYPE_CHECKING:
    from webpipe.debugger.hook import Debugger

log = logging.getLogger("webpipe.debugger")
Args = dict[str, Any]
Handler = Callable[["DapSession", Args], Awaitable["dict[str, Any] | None"]]

CAPABILITIES = {
    "supportsConfigurationDoneRequest": True,
    "supportsSetVariable": True,
    "supportsEvaluateForHovers": True,
    "supportsTerminateRequest": False,
    "supportsConditionalBreakpoints": False,
    "supportsStepBack": False,
    "supportsSingleThreadExecutionRequests": True,
}


class DapSession:
    """The attached client of a `Debugger` (one at a time)."""

    def __init__(self, debugger: Debugger, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.debugger, self.reader, self.writer = debugger, reader, writer
        self.seq = 1
        self.closing = False

    async def serve(self) -> None:
        """Answer requests until the client disconnects or the stream ends."""
        try:
            while not self.closing:
                message = await read_message(self.reader)
                if message is None:
                    break
                if message.get("type") == "request":
                    await self.answer(message)
        except WireError as exc:
            log.warning("debugger client dropped: %s", exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.close()

    async def answer(self, request: dict[str, Any]) -> None:
        command = str(request.get("command", ""))
        handler = COMMANDS.get(command)
        response: dict[str, Any] = {"type": "response", "request_seq": request.get("seq", 0),
                                    "command": command, "success": True}
        try:
            if handler is None:
                raise DapError(f"command {command!r} is not supported")
            args = request.get("arguments")
            body = await handler(self, args if isinstance(args, dict) else {})
            if body is not None:
                response["body"] = body
        except DapError as exc:
            response.update(success=False, message=str(exc))
        except (KeyError, TypeError, ValueError) as exc:  # arguments of the wrong shape
            response.update(success=False, message=f"bad {command} arguments: {exc}")
        self.send(response)
        if command == "initialize" and response["success"]:
            self.event("initialized", {})  # after the response, as DAP orders it
        await self.writer.drain()

    def send(self, message: dict[str, Any]) -> None:
        if self.writer.is_closing():
            return
        message["seq"] = self.seq
        self.seq += 1
        self.writer.write(encode(message))

    def event(self, name: str, body: dict[str, Any]) -> None:
        self.send({"type": "event", "event": name, "body": body})

    def close(self) -> None:
        self.closing = True
        if not self.writer.is_closing():
            self.writer.close()


# ---- session and run control ------------------------------------------------------


async def _initialize(session: DapSession, args: Args) -> dict[str, Any]:
    return dict(CAPABILITIES)


async def _acknowledge(session: DapSession, args: Args) -> None:
    """`launch`/`attach`: the program already runs (`--inspect`), there is nothing to do."""


async def _set_breakpoints(session: DapSession, args: Args) -> dict[str, Any]:
    from webpipe.debugger.breakpoints import file_key

    path = args["source"].get("path")
    if not isinstance(path, str):
        raise DapError("setBreakpoints needs source.path (a file of the program)")
    wanted = args.get("breakpoints")
    lines = [int(b["line"]) for b in wanted] if isinstance(wanted, list) else \
        [int(line) for line in args.get("lines", [])]
    debugger = session.debugger
    return {"breakpoints": debugger.breakpoints.set(file_key(path), lines, debugger.index)}


async def _no_exception_breakpoints(session: DapSession, args: Args) -> dict[str, Any]:
    return {"breakpoints": []}


async def _configuration_done(session: DapSession, args: Args) -> None:
    session.debugger.configured()


async def _threads(session: DapSession, args: Args) -> dict[str, Any]:
    threads = [{"id": NEXT_REQUEST, "name": "next request"}]
    threads += [{"id": t.id, "name": t.name} for t in session.debugger.threads.values()]
    return {"threads": threads}


def _stepper(mode: Mode) -> Handler:
    async def handler(session: DapSession, args: Args) -> dict[str, Any] | None:
        session.debugger.resume(int(args["threadId"]), mode)
        return {"allThreadsContinued": False} if mode is Mode.RUN else None

    return handler


async def _pause(session: DapSession, args: Args) -> None:
    """Pause a running request at its next step; `next request` (or an unknown thread):
    the next step any request runs."""
    debugger = session.debugger
    thread = debugger.threads.get(int(args.get("threadId", NEXT_REQUEST)))
    if thread is None:
        debugger.pause_next = True
    elif not thread.paused:
        thread.mode = Mode.PAUSE


async def _disconnect(session: DapSession, args: Args) -> None:
    """Resume everything and forget breakpoints; the program keeps running."""
    session.debugger.release_all()
    session.closing = True


def _commands() -> dict[str, Handler]:
    from webpipe.debugger import inspecting

    return {
        "initialize": _initialize,
        "launch": _acknowledge,
        "attach": _acknowledge,
        "setBreakpoints": _set_breakpoints,
        "setExceptionBreakpoints": _no_exception_breakpoints,
        "configurationDone": _configuration_done,
        "threads": _threads,
        "continue": _stepper(Mode.RUN),
        "next": _stepper(Mode.OVER),
        "stepIn": _stepper(Mode.IN),
        "stepOut": _stepper(Mode.OUT),
        "pause": _pause,
        "disconnect": _disconnect,
        **inspecting.COMMANDS,
    }


COMMANDS: dict[str, Handler] = _commands()
