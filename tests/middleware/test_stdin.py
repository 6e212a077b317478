"""The `stdin` middleware: spec/middleware.md §16 (script mode only)."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest

from tests.support import SimpleHost, body_of
from webpipe.errors import ConfigError, StepError
from webpipe.executor.context import RequestContext
from webpipe.executor.pipeline import run_body
from webpipe.middleware.base import Behavior, StepCall
from webpipe.middleware.stdin import StdinMiddleware
from webpipe.program import program_from_text
from webpipe.source import Source

JSON = Any

HTTP_REQUEST = {"method": "GET", "path": "/", "query": {}, "params": {}, "headers": {},
                "body": {}, "originalRequest": {"method": "GET", "params": {}, "query": {}}}


async def read(config: str, data: bytes | None, ctx: RequestContext | None = None) -> JSON:
    ctx = ctx or RequestContext(request={}, stdin=data)
    mw = StdinMiddleware(SimpleHost())
    result = await mw.run({"ignored": True}, mw.prepare(config, None),
                          StepCall("stdin", config, ctx=ctx))
    return result.value


async def read_error(config: str, data: bytes | None,
                     ctx: RequestContext | None = None) -> str:
    with pytest.raises(StepError) as info:
        await read(config, data, ctx)
    return info.value.message


def test_behavior_is_transform() -> None:
    assert StdinMiddleware.behavior is Behavior.TRANSFORM


def test_modes_are_checked_at_load() -> None:
    mw = StdinMiddleware(SimpleHost())
    assert [mw.prepare(c, None) for c in ("", "  ", "text", " json ", "lines")] == [
        "text", "text", "text", "json", "lines"]
    span = Source.from_text("app.wp", "|> stdin: csv").span(0, 2)
    with pytest.raises(ConfigError) as info:
        mw.prepare("csv", span)
    assert info.value.message == "unknown stdin mode 'csv', expected text, json, or lines"
    assert info.value.span is span
    with pytest.raises(ConfigError):
        mw.prepare("JSON", None)


async def test_text() -> None:
    assert await read("text", "quiet wörds\n".encode()) == "quiet wörds\n"
    assert await read("", b"") == ""


async def test_json() -> None:
    assert await read("json", b' {"a": [1, 2.5, null]}\n') == {"a": [1, 2.5, None]}
    assert await read("json", b'"s"') == "s"


async def test_invalid_json() -> None:
    assert await read_error("json", b"") == (
        "stdin is not valid JSON: Expecting value at line 1 column 1")
    assert await read_error("json", b'{"a": 1,\n}') == (
        "stdin is not valid JSON: Expecting property name enclosed in double quotes "
        "at line 2 column 1")
    assert await read_error("json", b"NaN") == "stdin is not valid JSON: NaN is not a JSON value"
    assert (await read_error("json", b'"\xff"')) == (
        "stdin is not valid JSON: invalid utf-8 sequence of 1 bytes from index 1")


async def test_lines() -> None:
    assert await read("lines", b"a\r\nb\n\nc") == ["a", "b", "", "c"]
    assert await read("lines", b"one\n") == ["one"]
    assert await read("lines", b"") == []


async def test_invalid_utf8() -> None:
    assert await read_error("text", b"a\xffb") == (
        "stdin is not valid UTF-8: invalid utf-8 sequence of 1 bytes from index 1")
    assert await read_error("lines", b"ok\xe2\x82") == (
        "stdin is not valid UTF-8: incomplete utf-8 byte sequence from index 2")


async def test_refused_during_an_http_request() -> None:
    ctx = RequestContext(request=HTTP_REQUEST, stdin=b"x")
    assert await read_error("text", None, ctx) == "stdin is only available in script mode"


async def test_explicit_invocation_marker_wins() -> None:
    for kind in ("http", "test"):
        ctx = RequestContext(request={}, stdin=b"x", extras={"invocation": kind})
        assert await read_error("text", None, ctx) == "stdin is only available in script mode"
    ctx = RequestContext(request=HTTP_REQUEST, stdin=b"x", extras={"invocation": "script"})
    assert await read("text", None, ctx) == "x"


async def test_reads_process_stdin_once_and_caches_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"piped\n")))
    ctx = RequestContext(request={})
    assert await read("text", None, ctx) == "piped\n"
    assert ctx.stdin == b"piped\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"other")))
    assert await read("lines", None, ctx) == ["piped"]


async def test_missing_process_stdin_reads_as_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    assert await read("lines", None, RequestContext()) == []


async def test_closed_process_stdin_is_a_step_error(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.TextIOWrapper(io.BytesIO(b""))
    stream.close()
    monkeypatch.setattr(sys, "stdin", stream)
    assert (await read_error("text", None, RequestContext())).startswith("failed to read stdin")


# --- through the executor --------------------------------------------------------------------

APP = """
pipeline main =
  |> stdin: `lines`
  |> jq: `{ count: length }`

pipeline bad =
  |> stdin: `csv`

GET /stdin
  |> stdin: `text`
"""


async def run_named(name: str, ctx: RequestContext, state: JSON) -> JSON:
    env = program_from_text(APP)
    named = env.index.pipeline(env.index.main, name)
    assert named is not None
    return (await run_body(body_of(env, named), state, env, ctx)).state


async def test_script_pipeline_counts_lines() -> None:
    ctx = RequestContext(request={}, stdin=b"a\nb\nc\n")
    assert await run_named("main", ctx, {}) == {"count": 3}


async def test_unknown_mode_is_branchable_stdin_error() -> None:
    assert await run_named("bad", RequestContext(request={}, stdin=b""), {}) == {"errors": [{
        "type": "stdinError", "step": "stdin", "location": "app.wp:7",
        "message": "unknown stdin mode 'csv', expected text, json, or lines"}]}


async def test_route_gets_stdin_error() -> None:
    env = program_from_text(APP)
    _, route = next(env.index.routes())
    ctx = RequestContext(request=HTTP_REQUEST)
    state = (await run_body(body_of(env, route), dict(HTTP_REQUEST), env, ctx)).state
    assert state == {"errors": [{"type": "stdinError", "step": "stdin", "location": "app.wp:10",
                                 "message": "stdin is only available in script mode"}]}
