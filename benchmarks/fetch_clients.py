"""HTTP clients for `fetch`, side by side: CPU µs per GET against one loopback upstream.

Each client does what a `fetch` GET needs (a pooled connection, the status, the headers and
the whole body as bytes) against the same upstream process (pinned to CPU 1 when taskset
exists; a bare asyncio protocol answering a fixed 11-byte JSON body), in rounds that
alternate the clients so the machine's drift hits them alike. Two shapes per round:
`seq` (one request at a time, the upstream answering at once) and `c200` (200 concurrent
GETs, the upstream answering each 50 ms after it arrived, as in W5). CPU is the process's
(`time.process_time`: every thread, so clients that run a runtime of their own on other
threads pay for it too); `main` is the event loop thread's alone.

`webpipe-fast` is this checkout's `fetch_fast` client (aiohttp's connection protocol
without its session layers). Clients missing from the interpreter are skipped; the optional
ones (aiosonic, rnet, pyreqwest, curl_cffi) are not project dependencies: install them and
this checkout (`pip install -e .`) into a scratch venv to compare.

Run: python benchmarks/fetch_clients.py [--rounds 5] [CLIENT ...]
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import upstream  # the same loopback upstream as W5

Get = Callable[[str], Awaitable[tuple[int, bytes]]]
USER_AGENT = {"user-agent": "WebPipe/1.0"}


# ---- the clients ----------------------------------------------------------------------


async def aiohttp_today() -> tuple[Get, Callable[[], Awaitable[None]]]:
    """As webpipe's fetch does it (webpipe/middleware/fetch.py, the commit this sits on)."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=10)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0),
        cookie_jar=aiohttp.DummyCookieJar(), timeout=timeout)

    async def get(url: str) -> tuple[int, bytes]:
        response = await session.request("GET", url, headers=USER_AGENT, data=None,
                                         params=None, timeout=timeout, max_redirects=10)
        try:
            body = bytearray()
            while chunk := await response.content.readany():
                body += chunk
            return response.status, bytes(body)
        finally:
            response.release()

    return get, session.close


async def aiohttp_tuned() -> tuple[Get, Callable[[], Awaitable[None]]]:
    """aiohttp with what can be switched off: default headers skipped, the user agent a
    session default, no per-request timeout object, DNS cache forever, plain read()."""
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0, ttl_dns_cache=None,
                                       enable_cleanup_closed=False),
        cookie_jar=aiohttp.DummyCookieJar(), headers=USER_AGENT,
        skip_auto_headers=("Accept", "Accept-Encoding"),
        timeout=aiohttp.ClientTimeout(total=10), auto_decompress=False,
        requote_redirect_url=False)

    async def get(url: str) -> tuple[int, bytes]:
        async with session.get(url) as response:
            return response.status, await response.read()

    return get, session.close


async def aiosonic_client() -> tuple[Get, Callable[[], Awaitable[None]]]:
    import aiosonic
    from aiosonic.pools import PoolConfig

    client = aiosonic.HTTPClient(aiosonic.TCPConnector(
        pool_configs={":default": PoolConfig(size=1000, max_conn_requests=None)}))

    async def get(url: str) -> tuple[int, bytes]:
        response = await client.get(url, headers=USER_AGENT)
        return response.status_code, await response.content()

    async def close() -> None:
        await client.connector.cleanup()

    return get, close


async def rnet_client() -> tuple[Get, Callable[[], Awaitable[None]]]:
    import rnet

    client = rnet.Client(user_agent=USER_AGENT["user-agent"], no_proxy=True)

    async def get(url: str) -> tuple[int, bytes]:
        response = await client.get(url)
        body = await response.bytes()
        return int(str(response.status_code)), bytes(body)

    async def close() -> None:
        return None

    return get, close


async def pyreqwest_client() -> tuple[Get, Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().user_agent(USER_AGENT["user-agent"]).no_proxy().build()

    async def get(url: str) -> tuple[int, bytes]:
        async with client.get(url).build_streamed() as response:
            body = await response.bytes()
            return response.status, bytes(body)

    async def close() -> None:
        await client.close()

    return get, close


async def curl_cffi_client() -> tuple[Get, Callable[[], Awaitable[None]]]:
    from curl_cffi.requests import AsyncSession

    session = AsyncSession(max_clients=1000, headers=USER_AGENT)

    async def get(url: str) -> tuple[int, bytes]:
        response = await session.get(url)
        return response.status_code, response.content

    return get, session.close


async def httptools_client() -> tuple[Get, Callable[[], Awaitable[None]]]:
    """A minimal pooled HTTP/1.1 client on httptools' parser: the floor for Python."""
    import httptools

    loop = asyncio.get_running_loop()
    idle: dict[tuple[str, int], list[Conn]] = {}

    class Conn(asyncio.Protocol):
        def __init__(self, key: tuple[str, int]) -> None:
            self.key = key
            self.parser = httptools.HttpResponseParser(self)
            self.transport: asyncio.Transport | None = None
            self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
            self.body: list[bytes] = []

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_body(self, chunk: bytes) -> None:
            self.body.append(chunk)

        def on_message_complete(self) -> None:
            waiter, self.waiter = self.waiter, None
            body, self.body = b"".join(self.body), []
            if self.parser.should_keep_alive():
                idle.setdefault(self.key, []).append(self)
            if waiter is not None and not waiter.done():
                waiter.set_result((self.parser.get_status_code(), body))

        def connection_lost(self, exc: Exception | None) -> None:
            pool = idle.get(self.key, [])
            if self in pool:
                pool.remove(self)
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc or ConnectionResetError("closed"))

    from urllib.parse import urlsplit

    async def get(url: str) -> tuple[int, bytes]:
        parts = urlsplit(url)
        key = (parts.hostname or "", parts.port or 80)
        pool = idle.get(key)
        if pool:
            conn = pool.pop()
        else:
            _t, conn = await loop.create_connection(lambda: Conn(key), *key)
        conn.waiter = loop.create_future()
        assert conn.transport is not None
        conn.transport.write(
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"User-Agent: WebPipe/1.0\r\nAccept: */*\r\n\r\n".encode("latin-1"))
        return await conn.waiter

    async def close() -> None:
        for pool in idle.values():
            for conn in pool:
                if conn.transport is not None:
                    conn.transport.close()

    return get, close


async def aiohttp_protocol() -> tuple[Get, Callable[[], Awaitable[None]]]:
    """aiohttp's own connection protocol and parser (ResponseHandler), without its session,
    request and connector layers: what a client keeping aiohttp's reading would cost."""
    from aiohttp.client_proto import ResponseHandler

    loop = asyncio.get_running_loop()
    idle: dict[tuple[str, int], list[ResponseHandler]] = {}
    from urllib.parse import urlsplit

    async def get(url: str) -> tuple[int, bytes]:
        parts = urlsplit(url)
        key = (parts.hostname or "", parts.port or 80)
        pool = idle.setdefault(key, [])
        proto = None
        while pool:
            proto = pool.pop()
            if proto.is_connected():
                break
            proto = None
        if proto is None:
            _t, proto = await loop.create_connection(lambda: ResponseHandler(loop), *key)
        proto.set_response_params()
        assert proto.transport is not None
        proto.transport.write(
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"user-agent: WebPipe/1.0\r\nAccept: */*\r\n"
            f"Accept-Encoding: gzip, deflate\r\n\r\n".encode("latin-1"))
        message, payload = await proto.read()
        body = bytearray()
        while chunk := await payload.readany():
            body += chunk
        if not proto.should_close:
            pool.append(proto)
        else:
            proto.close()
        return message.code, bytes(body)

    async def close() -> None:
        for pool in idle.values():
            for proto in pool:
                proto.close()

    return get, close


async def webpipe_fast() -> tuple[Get, Callable[[], Awaitable[None]]]:
    """webpipe's fetch_fast client (this checkout), without the step around it."""
    import aiohttp

    from webpipe.middleware.fetch_fast import Answer, FastClient, Progress, eligible, fetch

    connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0)
    client = FastClient(connector)

    async def get(url: str) -> tuple[int, bytes]:
        target = eligible(url, "GET", USER_AGENT, False)
        assert target is not None
        answer = await fetch(client, target, Progress(url), "GET", dict(USER_AGENT), None,
                             10 * 2**20, 10)
        assert isinstance(answer, Answer)
        return answer.status, answer.body

    async def close() -> None:
        client.close()
        await connector.close()

    return get, close


CLIENTS: dict[str, Callable[[], Awaitable[tuple[Get, Callable[[], Awaitable[None]]]]]] = {
    "aiohttp": aiohttp_today, "aiohttp-tuned": aiohttp_tuned, "aiosonic": aiosonic_client,
    "rnet": rnet_client, "pyreqwest": pyreqwest_client, "curl_cffi": curl_cffi_client,
    "httptools": httptools_client, "aiohttp-protocol": aiohttp_protocol,
    "webpipe-fast": webpipe_fast,
}


# ---- measuring ------------------------------------------------------------------------


async def timed(work: Callable[[], Awaitable[int]]) -> tuple[float, float, float]:
    """(process CPU µs, main-thread CPU µs, wall ms) of `work`, per request it reports."""
    cpu, main, wall = time.process_time(), time.thread_time(), time.perf_counter()
    n = await work()
    return ((time.process_time() - cpu) * 1e6 / n, (time.thread_time() - main) * 1e6 / n,
            (time.perf_counter() - wall) * 1000)


async def seq(get: Get, url: str, n: int = 400) -> int:
    for _ in range(n):
        status, body = await get(url)
        assert status == 200 and body == b'{"ok":true}', (status, body)
    return n


async def fan(get: Get, url: str, n: int = 200, batches: int = 3) -> int:
    for _ in range(batches):
        results = await asyncio.gather(*(get(url) for _ in range(n)))
        assert all(r == (200, b'{"ok":true}') for r in results)
    return n * batches


async def main() -> None:
    args = sys.argv[1:]
    rounds = 5
    if "--rounds" in args:
        i = args.index("--rounds")
        rounds = int(args[i + 1])
        del args[i:i + 2]
    names = args or list(CLIENTS)
    clients = {}
    for name in names:
        try:
            clients[name] = await CLIENTS[name]()
        except ImportError as exc:
            print(f"{name}: skipped ({exc})")
    fast, fast_url = await upstream(0)
    slow, slow_url = await upstream(50)
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    try:
        for get, _close in clients.values():  # warm every pool (200 connections each)
            await seq(get, fast_url, 50)
            await fan(get, slow_url, 200, 1)
        gc.collect()
        for r in range(rounds):
            order = list(clients) if r % 2 == 0 else list(reversed(clients))
            for name in order:
                get = clients[name][0]
                results.setdefault((name, "seq"), []).append(
                    await timed(lambda get=get: seq(get, fast_url)))  # type: ignore[misc]
                results.setdefault((name, "c200"), []).append(
                    await timed(lambda get=get: fan(get, slow_url)))  # type: ignore[misc]
    finally:
        for _get, close in clients.values():
            await close()
        for proc in (fast, slow):
            proc.terminate()
            proc.wait()
    print(f"{'client':>14}{'shape':>6}{'CPU best':>10}{'median':>8}{'main med':>10}"
          f"{'wall med ms':>13}")
    for (name, shape), values in results.items():
        cpus = [v[0] for v in values]
        print(f"{name:>14}{shape:>6}{min(cpus):>9.1f}µ{statistics.median(cpus):>7.1f}µ"
              f"{statistics.median(v[1] for v in values):>9.1f}µ"
              f"{statistics.median(v[2] for v in values):>13.1f}")


if __name__ == "__main__":
    import uvloop  # what `webpipe serve` runs on

    uvloop.run(main())
