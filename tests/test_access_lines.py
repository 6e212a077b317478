"""`access_lines`: the batched text access line is the line `logging`'s text formatter
writes, and a later record of any logger never overtakes a kept access line."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from collections.abc import Iterator

import pytest

from webpipe import access_lines, oplog
from webpipe.oplog import ID_KEY, LogSettings, configure_logging, log_request


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    lines, switches = access_lines._current[:], dict(oplog._SWITCHES)
    yield
    access_lines.flush_all()
    root.handlers[:] = handlers
    root.setLevel(level)
    access_lines._current[:] = lines
    oplog._SWITCHES.update(switches)


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging(LogSettings(level="info"))
    return out


def formatter_line(method: str, path: str, status: int, ms: float, rid: str) -> str:
    """What the logging text formatter writes for the same access record."""
    record = logging.LogRecord("webpipe.access", logging.INFO, __file__, 1,
                               "%s %s %d %.1fms id=%s", (method, path, status, ms, rid), None)
    formatter = logging.Formatter(access_lines.LINE_FORMAT, access_lines.DATE_FORMAT)
    return formatter.format(record) + "\n"


def test_the_line_is_the_formatters(stderr: io.StringIO) -> None:
    scope = {"method": "GET", "path": "/caf\u00e9/x y", ID_KEY: "abc123"}
    for _ in range(3):  # the same second for both, whatever the clock does
        second = int(time.time())
        started = time.perf_counter()
        log_request(scope, 200, started)
        if int(time.time()) == second:
            break
    line = stderr.getvalue().splitlines(keepends=True)[-1]
    ms = float(line.rsplit(" ", 2)[-2].removesuffix("ms"))
    assert line == formatter_line("GET", "/caf\u00e9/x y", 200, ms, "abc123")


async def test_lines_wait_for_the_loop_pass_and_keep_their_order(
        stderr: io.StringIO) -> None:
    for index in range(3):
        log_request({"method": "GET", "path": f"/{index}", ID_KEY: str(index)}, 200,
                    time.perf_counter())
    assert stderr.getvalue() == ""  # kept until the loop has run its ready callbacks
    logging.getLogger("webpipe.test").warning("after the three requests")
    lines = stderr.getvalue().splitlines()
    assert [line.split(" ")[4] for line in lines[:3]] == ["/0", "/1", "/2"]
    assert lines[3].endswith("WARNING webpipe.test: after the three requests")
    log_request({"method": "GET", "path": "/later", ID_KEY: "l"}, 404, time.perf_counter())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert " GET /later 404 " in stderr.getvalue().splitlines()[-1]


def test_json_logs_still_go_through_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging(LogSettings(level="info", format="json"))
    log_request({"method": "GET", "path": "/j", ID_KEY: "j1"}, 200, time.perf_counter())
    assert '"logger": "webpipe.access"' in out.getvalue()
    assert '"requestId": "j1"' in out.getvalue()
