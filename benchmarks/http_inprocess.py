"""µs of server CPU per HTTP request, whole stack, in-process: uvicorn's HTTP protocol (the
one `webpipe serve` uses, or plain httptools) parsing raw request bytes, the ASGI app, and
the response bytes written to a transport that keeps them. No sockets and no wrk, so the
figure is the server's own work per keep-alive request (what `run.py` measures over HTTP,
minus the kernel's), steady enough on a loaded machine to compare two versions.

    python benchmarks/http_inprocess.py [W0 W1 ... | hand:W0 ... | bare] [--number 3000]
        [--repeat 7] [--profile FILE]

`W0` is webpipe's app for that workload behind `webpipe serve`'s protocol and settings
(access line off, as `run.py` runs it); `hand:W0` is the hand-written Starlette app behind
uvicorn's httptools protocol; `bare` is a raw ASGI app answering a constant, behind the
same (the floor: uvicorn's own cost). Alternate runs with `PYTHONPATH=OTHER_CHECKOUT` to compare.
`--profile` writes a cProfile of the last workload's timed loop.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from workloads import WORKLOADS, Workload  # noqa: E402


class KeepTransport(asyncio.Transport):
    """A transport that keeps what is written and never closes on its own."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.last = b""
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)
        if bytes(data[:5]) == b"HTTP/":
            self.last = bytes(data)  # the head of the latest response

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def request_bytes(w: Workload) -> bytes:
    post = "POST" in w.lua
    body = w.lua.split("[[", 1)[1].rsplit("]]", 1)[0].encode() if post else b""
    head = (f"{'POST' if post else 'GET'} {w.path} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
            "User-Agent: wrk\r\n")
    if post:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def needs(w: Workload, workdir: Path) -> None:
    """W4's database: `DATABASE_URL`, else run.py's embedded one, seeded."""
    if w.needs_database and not os.environ.get("DATABASE_URL"):
        from run import database_url

        os.environ["DATABASE_URL"] = database_url(HERE / ".work")


def webpipe_app(w: Workload, workdir: Path) -> tuple[Any, str]:
    from webpipe.oplog import LogSettings, configure_logging
    from webpipe.protocol import PROTOCOL
    from webpipe.serve import checked_at_start
    from webpipe.server import create_app

    app_dir = workdir / w.name
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "app.wp").write_text(w.wp)
    for name, text in w.files.items():
        (app_dir / name).write_text(text)
    os.environ["WEBPIPE_LOG"] = "WARNING"  # as run.py serves it
    configure_logging(LogSettings.from_env())
    app = create_app(checked_at_start(app_dir / "app.wp", False))
    try:  # what the app's lifespan startup does in `webpipe serve`
        from webpipe.protocol import set_lane
    except ImportError:  # a checkout from before the lane
        pass
    else:
        set_lane(app)  # type: ignore[arg-type]
    return app, PROTOCOL


def hand_app(w: Workload, workdir: Path) -> tuple[Any, str]:
    path = workdir / f"hand_{w.name}.py"
    path.write_text(w.starlette)
    spec = importlib.util.spec_from_file_location(f"hand_{w.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app, "httptools"


async def bare_app(scope: Any, receive: Any, send: Any) -> None:
    """The floor: a raw ASGI app answering a constant JSON body (`bare` on the command line)."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"17")]})
    await send({"type": "http.response.body", "body": b'{"hello":"world"}'})


def connected(app: Any, http: str, raw: bytes,
              ) -> tuple[Callable[[], Awaitable[None]], KeepTransport, Any]:
    """A protocol of `http` serving `app` on a `KeepTransport`: `one()` sends it `raw` and
    waits for the whole response (also `pg_step.py`'s W4 mode); the transport and protocol."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    # `webpipe serve` turns uvicorn's proxy-headers layer off; the hand-written app keeps
    # uvicorn's default, as `run.py` serves it
    config = Config(app=app, http=http, loop="none", log_level="warning", access_log=False,
                    lifespan="off", proxy_headers=http == "httptools")
    config.load()
    loop = asyncio.get_running_loop()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(),
                                          app_state={}, _loop=loop)
    transport = KeepTransport()
    protocol.connection_made(transport)
    done: list[asyncio.Future[None]] = []
    finish = protocol.on_response_complete

    def on_response_complete() -> None:
        finish()
        done[0].set_result(None)

    protocol.on_response_complete = on_response_complete  # type: ignore[method-assign]

    async def one() -> None:
        done[:] = [loop.create_future()]
        protocol.data_received(raw)
        await done[0]

    return one, transport, protocol


async def per_request_us(app: Any, http: str, raw: bytes, number: int, repeat: int,
                         profile: cProfile.Profile | None) -> tuple[float, bytes]:
    one, transport, protocol = connected(app, http, raw)
    for _ in range(200):  # warm-up: caches, first-use compiles
        await one()
    best = float("inf")
    for index in range(repeat):
        if profile is not None and index == repeat - 1:
            profile.enable()
        start = time.perf_counter()
        for _ in range(number):
            await one()
        best = min(best, time.perf_counter() - start)
        if profile is not None and index == repeat - 1:
            profile.disable()
    protocol.connection_lost(None)
    return best / number * 1e6, transport.last


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=["W0", "hand:W0"])
    parser.add_argument("--number", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", help="write a cProfile of the last workload here")
    args = parser.parse_args()
    by_name = {w.name: w for w in WORKLOADS}
    workdir = Path(tempfile.mkdtemp(prefix="webpipe-http-bench-"))
    for index, name in enumerate(args.names):
        hand = name.startswith("hand:")
        w = by_name[name.removeprefix("hand:").replace("bare", "W0")]
        needs(w, workdir)
        if name == "bare":
            app, http = bare_app, "httptools"
        else:
            app, http = hand_app(w, workdir) if hand else webpipe_app(w, workdir)
        profile = cProfile.Profile() if args.profile and index == len(args.names) - 1 \
            else None
        us, last = await per_request_us(app, http, request_bytes(w), args.number,
                                        args.repeat, profile)
        status = last.split(b"\r\n", 1)[0].decode(errors="replace")
        print(f"{name:<10}{us:8.1f} us/request  {status}", flush=True)
        if profile is not None:
            profile.dump_stats(args.profile)
    print("webpipe from", Path(sys.modules["webpipe"].__file__ or "").parent
          if "webpipe" in sys.modules else "(not imported)")


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
