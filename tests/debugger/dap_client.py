"""A small Debug Adapter Protocol client for the debugger tests: TCP, Content-Length
framing, requests matched to responses by `request_seq`, events queued by name."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any


class DapClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seq = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: dict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(asyncio.Queue)
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, port: int, wait_s: float = 30.0) -> DapClient:
        """Connect to 127.0.0.1:port, retrying while the server starts."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                return cls(reader, writer)
            except OSError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def _read(self) -> None:
        while True:
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b":")[1].strip())
            message = json.loads(await self.reader.readexactly(length))
            if message["type"] == "response":
                self.pending.pop(message["request_seq"]).set_result(message)
            else:
                self.events[message["event"]].put_nowait(message.get("body") or {})

    def send_raw(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self.writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    async def call(self, command: str, **arguments: Any) -> dict[str, Any]:
        """The whole response (success or not)."""
        self.seq += 1
        future = self.pending[self.seq] = asyncio.get_running_loop().create_future()
        self.send_raw({"seq": self.seq, "type": "request", "command": command,
                       "arguments": arguments})
        return await asyncio.wait_for(future, 30)

    async def request(self, command: str, **arguments: Any) -> dict[str, Any]:
        """The body of a successful response (fails the test otherwise)."""
        response = await self.call(command, **arguments)
        assert response["success"], response
        return response.get("body") or {}

    async def event(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.events[name].get(), timeout)

    async def start(self, path: str, lines: list[int]) -> list[dict[str, Any]]:
        """initialize, attach, setBreakpoints on `lines` of `path`, configurationDone:
        the breakpoints as the server bound them."""
        capabilities = await self.request("initialize", adapterID="webpipe",
                                          linesStartAt1=True, columnsStartAt1=True)
        assert capabilities["supportsSetVariable"]
        await self.event("initialized")
        await self.request("attach")
        body = await self.request("setBreakpoints", source={"path": path},
                                  breakpoints=[{"line": line} for line in lines])
        await self.request("configurationDone")
        return list(body["breakpoints"])

    async def stopped(self) -> tuple[int, dict[str, Any], dict[str, Any]]:
        """Wait for a stop: the thread, the stop event and the top stack frame."""
        event = await self.event("stopped")
        thread = event["threadId"]
        frames = (await self.request("stackTrace", threadId=thread))["stackFrames"]
        return thread, event, frames[0]

    async def state(self, frame_id: int) -> dict[str, dict[str, Any]]:
        """The `State` scope's variables by name."""
        scopes = (await self.request("scopes", frameId=frame_id))["scopes"]
        ref = next(s["variablesReference"] for s in scopes if s["name"] == "State")
        variables = (await self.request("variables", variablesReference=ref))["variables"]
        return {v["name"]: v for v in variables}

    async def close(self) -> None:
        if not self.task.done():
            self.task.cancel()
        elif not self.task.cancelled():
            self.task.exception()  # retrieved: the server closing the stream is expected
        self.writer.close()
