"""A loopback upstream for hostile `fetch` tests, run as its own process so its writes never
share a loop with the probes: `python -m tests.hostile.bigbody PORT`. `GET /big?mib=N`
streams a JSON string of N MiB (Content-Length announced only with `&announce=1`)."""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

CHUNK = b"a" * 65536


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        query = parse_qs(urlsplit(head.split(b" ")[1].decode()).query)
        size = int(query.get("mib", ["1"])[0]) * 1024 * 1024
        framing = (b"content-length: %d\r\n" % (size + 2) if "announce" in query
                   else b"connection: close\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + framing
                     + b"\r\n\"")
        for _ in range(size // len(CHUNK)):
            writer.write(CHUNK)
            await writer.drain()
        writer.write(b'"')
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass  # the client hung up: the point of the test
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
