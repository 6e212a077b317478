"""The text access line of `webpipe serve`, written in batches (spec/server.md §2).

Through `logging`, one access line cost a record, a `strftime`, the handler's lock and a
`write` plus `flush` on stderr: 20-30 µs, as much as the request it describes (measured
in-process on the one-jq route: 23 µs per request without the line, 42-55 µs with it). Here
the line is formatted as the text formatter would (`LINE_FORMAT`, the timestamp made once a
second) and kept until the event loop has run its ready callbacks, then all kept lines go
out in one write. Any other record flushes the kept lines first (`OrderedHandler`), so the
log's order is the order things happened; exit and shutdown flush them too. JSON logs, and
a process whose logging `serve` did not set up, use `logging` as before.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
from typing import TextIO

DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_BATCH = 256  # lines kept at most before a write, whatever the loop does


class AccessLines:
    """Access lines kept until the end of the loop pass (see module docstring)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.kept: list[str] = []
        self.scheduled = False
        self._second = -1
        self._stamp = ""

    def add(self, method: str, path: str, status: int, ms: float, rid: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:  # the formatter's asctime, made once a second
            self._second, self._stamp = second, time.strftime(DATE_FORMAT,
                                                              time.localtime(now))
        self.kept.append(f"{self._stamp} INFO webpipe.access: {method} {path} {status} "
                         f"{ms:.1f}ms id={rid}\n")
        if len(self.kept) >= _BATCH:
            self.flush()
        elif not self.scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to wait for: now
                self.flush()
                return
            self.scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if not self.kept:
            return
        text = "".join(self.kept)
        self.kept.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: as logging's handleError
            pass


class OrderedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stderr handler; kept access lines go out before any record it writes."""

    def __init__(self, stream: TextIO, lines: AccessLines | None) -> None:
        super().__init__(stream)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        if self.lines is not None:
            self.lines.flush()
        super().emit(record)


_current: list[AccessLines] = []  # the process's writer, when `serve` set one up


def install(stream: TextIO | None) -> AccessLines | None:
    """The writer for `stream` (None: no batching, JSON logs), replacing an earlier one,
    which is flushed first."""
    flush_all()
    if stream is None:
        _current.clear()
        return None
    lines = AccessLines(stream)
    if not _current:
        atexit.register(flush_all)  # registered at most once: it flushes whichever is current
    _current[:] = [lines]
    return lines


def current() -> AccessLines | None:
    return _current[0] if _current else None


def flush_all() -> None:
    """Write every kept line now (shutdown, exit)."""
    for lines in _current:
        lines.flush()
