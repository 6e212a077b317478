"""Test helpers for `pg`: the session's embedded server and a TCP proxy that can drop out.

The embedded server (pgserver) listens on a Unix socket only. `TcpProxy` forwards a local
TCP port to that socket, so a test can point `config pg` at `127.0.0.1:<port>`, then make
the "database" vanish (listener closed, live connections cut) and come back on the same
port — the middleware must recover without being rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

SOCKET_NAME = ".s.PGSQL.5432"


def socket_dir(url: str) -> str:
    """The Unix socket directory from a pgserver URL (`...?host=/dir`)."""
    return parse_qs(urlsplit(url).query)["host"][0]


def free_port() -> int:
    """A TCP port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class TcpProxy:
    """127.0.0.1:port → the server's Unix socket, stoppable and restartable."""

    socket_path: Path
    port: int = field(default_factory=free_port)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Close the listener and cut every forwarded connection, as a crash would."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await asyncio.sleep(0.05)  # let the clients see the EOF

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      ) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(str(self.socket_path))
        self._writers |= {writer, up_writer}
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
