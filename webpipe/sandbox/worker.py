"""A sandbox worker process: `python -m webpipe.sandbox.worker [EXTRA_HANDLERS_JSON]`.

It reads run frames on stdin and answers on stdout (`frames.py`), one run at a time:
`{"op": "run", "kind", "payload", "memory_mb"}` is dispatched to `HANDLERS[kind]`, an import
string loaded on first use (so a worker that only runs jq never imports Lua). A handler is
`fn(payload, channel) -> JSON`; it may call `channel.call(name, payload)` to ask the server
for something during the run (Lua's `executeSql`), and raise `HandlerError` for an error its
step reports. The answer is `{"op": "done", "value", "retire"}` or `{"op": "error", "type":
"error" | "memory", "message"}`. Memory is bounded by `RLIMIT_AS`, set for each run to the
process's current size plus the run's budget and lifted afterwards; Python then raises
MemoryError, while a C library (libjq) aborts the process, which the server reports as a
limit error. A worker whose resident size grew past `RETIRE_GROWTH` asks to be replaced, so
memory a run touched is given back to the system. The server enforces time by killing the
process. The worker dies with the server (`PR_SET_PDEATHSIG`) or when stdin closes, and
runs at a lower priority than the server (`NICENESS`).
"""

from __future__ import annotations

import ctypes
import importlib
import os
import resource
import signal
import sys
from collections.abc import Callable
from typing import Any

import orjson

from webpipe.sandbox.channel import Channel, HandlerError
from webpipe.sandbox.frames import encode, read_frame, write_all

MB = 1024 * 1024
RETIRE_GROWTH = 64 * MB  # resident growth after which a worker asks to be replaced
NICENESS = 5
Handler = Callable[[Any, Channel], Any]

HANDLERS: dict[str, str] = {  # kind -> "module:function" (loaded on first use)
    "jq": "webpipe.sandbox.jq_handler:run",
    "js": "webpipe.sandbox.js_handler:run",
    "lua": "webpipe.sandbox.lua_handler:run",
}


def _load(kind: str, table: dict[str, str], loaded: dict[str, Handler]) -> Handler:
    handler = loaded.get(kind)
    if handler is None:
        module, _, name = table[kind].partition(":")
        handler = loaded[kind] = getattr(importlib.import_module(module), name)
    return handler


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _run_one(message: dict[str, Any], channel: Channel, table: dict[str, str],
             loaded: dict[str, Handler]) -> dict[str, Any]:
    try:
        handler = _load(message["kind"], table, loaded)
    except (KeyError, ImportError, AttributeError) as exc:
        return {"op": "error", "type": "error", "message": f"no sandbox handler: {exc}"}
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_bytes() + int(message.get("memory_mb") or 256) * MB
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard < 0 else min(limit, hard), hard))
    try:
        value = handler(message.get("payload"), channel)
        return {"op": "done", "value": value}
    except MemoryError:
        return {"op": "error", "type": "memory", "message": "memory limit"}
    except HandlerError as exc:
        return {"op": "error", "type": "error", "message": str(exc)}
    except RecursionError:  # a value nested deeper than Python converts
        return {"op": "error", "type": "limit", "message": "a value is nested too deeply"}
    except Exception as exc:  # a handler bug: reported, the worker carries on
        return {"op": "error", "type": "error", "message": f"{type(exc).__name__}: {exc}"}
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: closing stdin still ends the worker
    if os.getppid() == 1:  # the server died before prctl took effect
        sys.exit(0)


def main(argv: list[str]) -> None:
    _die_with_parent()
    # below the server: on a busy machine its event loop (health, every other request)
    # gets the CPU before a sandboxed run does
    os.nice(NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the server, which kills us
    table = {**HANDLERS, **(orjson.loads(argv[0]) if argv else {})}
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints go to stderr, never into the frames
    channel = Channel(0, out_fd)
    loaded: dict[str, Handler] = {}
    base_rss = _rss_bytes()
    while (message := read_frame(0)) is not None:
        reply = _run_one(message, channel, table, loaded)
        reply["retire"] = _rss_bytes() - base_rss > RETIRE_GROWTH
        try:
            frame = encode(reply)
        except (TypeError, ValueError, RecursionError):  # no codec can carry the value
            frame = encode({"op": "error", "type": "limit", "retire": reply["retire"],
                            "message": "its result is nested too deeply to return"})
        write_all(out_fd, frame)
        if reply["retire"]:
            return


if __name__ == "__main__":
    from webpipe.sandbox.worker import main as _main  # the module, not a `__main__` copy

    _main(sys.argv[1:])
