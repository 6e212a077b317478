"""`stdin`: read the process's standard input into the state (middleware.md §16).

Modes: `text` (default, also for an empty config) → one string; `json` → the parsed value;
`lines` → an array of strings (split like Rust's `str::lines()`). The mode is checked at load
time: an unknown mode raises `ConfigError` with the reference's text, which the executor keeps
on the step's plan, so `check` reports it and each run fails with a branchable `stdinError`.

Input is read once per execution: `ctx.stdin` (bytes) is used when set (the test runner's
`and stdin is ...`), otherwise `sys.stdin` is read to EOF off the event loop and cached on
`ctx.stdin`. Every failure (wrong invocation, invalid UTF-8, invalid JSON) is a `StepError`,
which the executor turns into a `stdinError` envelope.

Invocation: `stdin` only works in script mode. `ctx.extras["invocation"]` (`"script"`,
`"http"`, `"test"`), when a runner sets it, decides; otherwise a context whose `request` looks
like an HTTP request state (an object with `method` and `originalRequest`) counts as HTTP and
anything else as a script.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import ClassVar, Literal

from webpipe.errors import ConfigError, StepError
from webpipe.middleware.base import (
    JSON,
    BaseMiddleware,
    Behavior,
    RequestView,
    StepCall,
    StepResult,
)
from webpipe.source import Span

Mode = Literal["text", "json", "lines"]
MODES: tuple[Mode, ...] = ("text", "json", "lines")


class StdinMiddleware(BaseMiddleware):
    behavior: ClassVar[Behavior] = Behavior.TRANSFORM

    def prepare(self, config: str, span: Span | None) -> Mode:
        mode = config.strip() or "text"
        for known in MODES:
            if mode == known:
                return known
        raise ConfigError(f"unknown stdin mode '{mode}', expected text, json, or lines",
                          span=span)

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert prepared in MODES
        assert call.ctx is not None, "the executor always passes a request context"
        if not is_script(call.ctx):
            raise StepError("stdin is only available in script mode")
        data = await read_stdin(call.ctx)
        if prepared == "json":
            return StepResult(decode_json(data))
        text = decode_utf8(data)
        return StepResult(text if prepared == "text" else rust_lines(text))


def is_script(ctx: RequestView) -> bool:
    invocation = ctx.extras.get("invocation")
    if isinstance(invocation, str):
        return invocation == "script"
    request = ctx.request
    return not (isinstance(request, dict) and "method" in request
                and "originalRequest" in request)


async def read_stdin(ctx: RequestView) -> bytes:
    """The execution's stdin bytes, reading the process's stdin on first use."""
    if ctx.stdin is None:
        try:
            ctx.stdin = await asyncio.to_thread(_read_process_stdin)
        except (OSError, ValueError) as exc:  # ValueError: stdin already closed
            raise StepError(f"failed to read stdin: {exc}") from None
    return ctx.stdin


def _read_process_stdin() -> bytes:
    stream = sys.stdin
    if stream is None:
        return b""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        data: bytes = buffer.read()
        return data
    return stream.read().encode("utf-8")


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StepError(f"stdin is not valid UTF-8: {utf8_error_text(exc)}") from None


def utf8_error_text(exc: UnicodeDecodeError) -> str:
    """Rust's `Utf8Error` display for the first bad sequence."""
    if exc.reason == "unexpected end of data":
        return f"incomplete utf-8 byte sequence from index {exc.start}"
    return f"invalid utf-8 sequence of {exc.end - exc.start} bytes from index {exc.start}"


def decode_json(data: bytes) -> JSON:
    """Strict JSON (UTF-8 only; no NaN/Infinity), errors as `<what> at line L column C`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StepError(f"stdin is not valid JSON: {utf8_error_text(exc)}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise StepError(f"stdin is not valid JSON: {exc.msg} at line {exc.lineno} "
                        f"column {exc.colno}") from None
    except ValueError as exc:
        raise StepError(f"stdin is not valid JSON: {exc}") from None


def _reject_constant(name: str) -> JSON:
    raise ValueError(f"{name} is not a JSON value")


def rust_lines(text: str) -> list[str]:
    """Rust's `str::lines()`: split on `\\n`, drop one `\\r` before it, no empty last line."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
        return [line.removesuffix("\r") for line in lines]
    return [line.removesuffix("\r") for line in lines[:-1]] + lines[-1:]
