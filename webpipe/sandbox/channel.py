"""What a sandbox handler sees of its worker: `Channel` (call back to the server mid-run)
and `HandlerError` (an error the step reports as its own). Kept apart from `worker.py`,
which runs as `__main__`, so that handlers import one class, not a copy."""

from __future__ import annotations

import sys
from typing import Any

from webpipe.sandbox.frames import read_frame, write_frame


class HandlerError(Exception):
    """An error the step reports as its own (a jq runtime error, a Lua error)."""


class Channel:
    """The worker's side of the pipes: answers, and calls back to the server mid-run."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd

    def call(self, name: str, payload: Any) -> Any:
        """Ask the server's callback for this run; its answer (HandlerError if it failed)."""
        write_frame(self.write_fd, {"op": "call", "name": name, "payload": payload})
        answer = read_frame(self.read_fd)
        if answer is None:
            sys.exit(0)  # the server went away mid-run
        if "error" in answer:
            raise HandlerError(str(answer["error"]))
        return answer.get("value")
