"""Operator-facing logs of `webpipe serve` (spec/server.md §2, §3).

One access line per request (method, path, status, duration, request id), one line per
unhandled error or 5xx (with the error type, message and the failing step's `file:line`),
as text or as one JSON object per line. The settings travel in environment variables so
the worker processes of `--workers N` (spawned, not forked) log exactly as the parent.
A request id comes from `X-Request-Id` (when it is a short printable token) or is made
here; it is returned in the response header and given to steps as `$context.requestId`.
In production (`WEBPIPE_ENV=production` or `--production`) a 5xx body keeps only the
error type, a generic message and the request id; the details go to the log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any

from webpipe import access_lines

ACCESS = logging.getLogger("webpipe.access")
ERRORS = logging.getLogger("webpipe.error")

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
_ENV = {"level": "WEBPIPE_LOG_LEVEL", "access": "WEBPIPE_ACCESS_LOG",
        "format": "WEBPIPE_LOG_FORMAT", "production": "WEBPIPE_PRODUCTION"}
# a client's id is kept when it is a short run of visible characters (no log injection)
_CLIENT_ID = re.compile(rb"[\x21-\x7e]{1,128}")
ERROR_KEY = "webpipe.error"  # scope key: what failed, for the error line and the body
ID_KEY = "webpipe.request_id"
_SWITCHES = {"access": True, "json": False}


@dataclass(frozen=True)
class LogSettings:
    """How `serve` logs; `export()` hands it to worker processes."""

    level: str = "info"
    access: bool = True
    format: str = "text"
    production: bool = False

    @classmethod
    def from_env(cls) -> LogSettings:
        env = os.environ
        level = env.get(_ENV["level"]) or env.get("WEBPIPE_LOG") or "info"
        production = env.get(_ENV["production"]) == "1" or \
            env.get("WEBPIPE_ENV", "").strip().lower() == "production"
        return cls(level.lower(), env.get(_ENV["access"], "1") != "0",
                   env.get(_ENV["format"], "text"), production)

    def export(self) -> None:
        os.environ[_ENV["level"]] = self.level
        os.environ[_ENV["access"]] = "1" if self.access else "0"
        os.environ[_ENV["format"]] = self.format
        os.environ[_ENV["production"]] = "1" if self.production else "0"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the process id (which of
    `--workers N`) and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(), "pid": record.process}  # which worker
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(settings: LogSettings) -> None:
    """Root logging to stderr in the chosen format and level (every process calls it);
    text access lines go through `access_lines` (batched, same text)."""
    json_logs = settings.format == "json"
    lines = access_lines.install(None if json_logs else sys.stderr)
    handler = access_lines.OrderedHandler(sys.stderr, lines)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(access_lines.LINE_FORMAT,
                                               access_lines.DATE_FORMAT))
    logging.basicConfig(level=settings.level.upper(), handlers=[handler], force=True)
    for noisy in ("pgserver", "watchfiles"):  # their info lines are not the operator's
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _SWITCHES["json"] = settings.format == "json"
    _SWITCHES["access"] = settings.access  # not `ACCESS.disabled`: uvicorn's dictConfig resets it


def announce(text: str) -> None:
    """A line for the operator at any log level (the banner, a reload): plain text, or a
    JSON record when the logs are JSON, so a log shipper sees one format."""
    if _SWITCHES["json"]:  # an info record, handled whatever the level (`handle` skips it)
        logger = logging.getLogger("webpipe.serve")
        logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, text, (), None))
    else:
        print(text, file=sys.stderr)


def request_id(scope: Any) -> str:
    """The client's `X-Request-Id` when it is a plain token, else a fresh one."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id" and _CLIENT_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return _fresh_id()


_IDS_PER_READ = 256
_random_ids: list[str] = []
os.register_at_fork(after_in_child=_random_ids.clear)  # a forked child draws its own


def _fresh_id() -> str:
    """32 hex digits from the OS's random source, as random as uuid4; read 256 at a time
    (one `getrandom` call each was a system call per request)."""
    if not _random_ids:
        block = os.urandom(16 * _IDS_PER_READ).hex()
        _random_ids.extend(block[i:i + 32] for i in range(0, len(block), 32))
    return _random_ids.pop()


def note_error(scope: Any, kind: str, message: str, location: str | None) -> None:
    """Record what failed in this request, for `log_request` and the production body."""
    scope[ERROR_KEY] = {"type": kind, "message": message, "location": location}


def note_envelope(scope: Any, state: Any) -> None:
    """Record an unhandled error envelope (`errors[0]`) of a final state."""
    first = state["errors"][0]
    message = first.get("message")
    note_error(scope, str(first.get("type")), message if isinstance(message, str)
               else json.dumps(message, default=str), first.get("location"))


def log_request(scope: Any, status: int, started: float) -> None:
    """The access line, and the error line for an unhandled error or any 5xx."""
    failed = scope.get(ERROR_KEY)
    access = _SWITCHES["access"] and ACCESS.isEnabledFor(logging.INFO)
    if not access and failed is None and status < 500:
        return  # nothing to log: no line is formatted
    method, path = scope.get("method", ""), scope.get("path", "")
    rid = scope.get(ID_KEY, "")
    if access:
        ms = round((time.perf_counter() - started) * 1000, 1)
        lines = access_lines.current()
        if lines is not None:
            lines.add(method, path, status, ms, rid)
        else:
            ACCESS.info("%s %s %d %.1fms id=%s", method, path, status, ms, rid, extra={
                "fields": {"method": method, "path": path, "status": status,
                           "durationMs": ms, "requestId": rid}})
    if failed is None and status < 500:
        return
    failed = failed or {"type": "http", "message": f"status {status}", "location": None}
    where = f" at {failed['location']}" if failed["location"] else ""
    ERRORS.log(logging.ERROR if status >= 500 else logging.WARNING,
               "%s %s %d %s%s: %s id=%s", method, path, status, failed["type"], where,
               failed["message"], rid, extra={"fields": {
                   "method": method, "path": path, "status": status,
                   "errorType": failed["type"], "errorMessage": failed["message"],
                   "location": failed["location"], "requestId": rid}})


def production_body(scope: Any) -> bytes:
    """A 5xx body that tells the client what kind of failure and how to find it in the log,
    never SQL text, file paths or step details."""
    failed = scope.get(ERROR_KEY) or {"type": "internalError"}
    rid = scope.get(ID_KEY, "")
    return json.dumps({"errors": [{
        "type": failed["type"],
        "message": f"Internal server error (request id {rid})",
        "requestId": rid}]}, separators=(",", ":")).encode()
