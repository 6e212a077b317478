"""The `log` middleware: spec/middleware.md §12 and the after-response hook contract."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.support import SimpleHost, body_of
from webpipe.executor.context import RequestContext
from webpipe.executor.pipeline import run_body
from webpipe.middleware.base import Behavior, StepCall
from webpipe.middleware.log import (
    AFTER_RESPONSE,
    AccessLog,
    LogMiddleware,
    LogSettings,
    parse_step_config,
)
from webpipe.program import program_from_text

JSON = Any

REQUEST_STATE = {
    "method": "GET", "path": "/things/7", "query": {"q": "x"}, "params": {"id": 7},
    "headers": {"accept": "application/json"}, "body": {},
    "originalRequest": {"method": "GET", "params": {"id": 7}, "query": {"q": "x"}},
}


def settings(config: str, block: dict[str, Any] | None = None) -> LogSettings:
    host = SimpleHost(configs={"log": block} if block is not None else {})
    return LogMiddleware(host).prepare(config, None)


async def run_log(config: str, state: JSON, ctx: RequestContext,
                  block: dict[str, Any] | None = None) -> JSON:
    host = SimpleHost(configs={"log": block} if block is not None else {})
    mw = LogMiddleware(host)
    result = await mw.run(state, mw.prepare(config, None), StepCall("log", config, ctx=ctx))
    return result.value


def hooks(ctx: RequestContext) -> list[Any]:
    return list(ctx.extras.get(AFTER_RESPONSE, []))


def test_behavior_is_merge() -> None:
    assert LogMiddleware.behavior is Behavior.MERGE


# --- configuration ---------------------------------------------------------------------------


def test_step_config_keys_commas_and_newlines() -> None:
    assert parse_step_config("level: info, includeBody: TRUE\nincludeHeaders: false,"
                             " enabled: true, format: json, maxBodySize: 10") == {
        "level": "info", "includeBody": True, "includeHeaders": False, "enabled": True}


def test_step_config_keeps_level_text_and_drops_unreadable_booleans() -> None:
    assert parse_step_config('level: "warn", includeBody: yes, enabled') == {
        "level": '"warn"'}


def test_defaults_without_config_block() -> None:
    assert settings("") == LogSettings("debug", False, True, True)


def test_config_block_supplies_defaults_and_step_keys_win() -> None:
    block = {"level": "warn", "includeBody": True, "includeHeaders": False, "enabled": True}
    assert settings("", block) == LogSettings("warn", True, False, True)
    assert settings("level: info, includeHeaders: true", block) == LogSettings(
        "info", True, True, True)


def test_unreadable_step_boolean_falls_back_to_config_block() -> None:
    assert settings("includeBody: maybe", {"includeBody": True}).include_body is True


def test_config_block_values_of_wrong_type_use_builtin_defaults() -> None:
    # booleans read strictly, with the project's one coercion of "true"/"false" strings
    block = {"level": 3, "includeBody": 1, "includeHeaders": "false"}
    assert settings("", block) == LogSettings("debug", False, False, True)


# --- run -------------------------------------------------------------------------------------


async def test_disabled_records_nothing() -> None:
    ctx = RequestContext()
    state = dict(REQUEST_STATE)
    assert await run_log("enabled: false", state, ctx) is state
    assert await run_log("", state, ctx, {"enabled": False}) is state
    assert "log" not in ctx.sections
    assert hooks(ctx) == []


async def test_enabled_records_context_and_registers_one_hook_per_step() -> None:
    ctx = RequestContext()
    state = copy.deepcopy(REQUEST_STATE)
    assert await run_log("level: info, includeBody: true", state, ctx) is state
    assert ctx.sections["log"] == {"level": "info", "include_body": True,
                                   "include_headers": True}
    assert ctx.context_json()["log"]["level"] == "info"
    await run_log("level: warn", state, ctx)
    assert [h.settings.level for h in hooks(ctx)] == ["info", "warn"]
    assert state == REQUEST_STATE


def access_log(config: str, state: JSON) -> AccessLog:
    request = state.get("originalRequest") if isinstance(state, dict) else None
    has = isinstance(state, dict) and "headers" in state
    return AccessLog(settings(config), 1_000_000, request,
                     state["headers"] if has else None, has)


def test_line_format_and_key_order() -> None:
    hook = access_log("level: info, includeBody: true", REQUEST_STATE)
    final = {"pong": True, "originalRequest": {"x": 1}, "setCookies": ["a=b"], "n": "é"}
    assert hook.line(final, 1_000_000 + 1_234_567) == (
        '{"level":"info","duration_ms":1.234,"request":{"method":"GET","params":{"id":7},'
        '"query":{"q":"x"},"headers":{"accept":"application/json"}},'
        '"response":{"body":{"pong":true,"n":"é"}}}')


def test_spec_example_without_headers() -> None:
    hook = access_log("level: info, includeBody: true, includeHeaders: false",
                      {**REQUEST_STATE, "originalRequest": {"method": "GET", "params": {},
                                                            "query": {}}})
    assert hook.line({"pong": True}, 1_210_000) == (
        '{"level":"info","duration_ms":0.21,"request":{"method":"GET","params":{},"query":{}},'
        '"response":{"body":{"pong":true}}}')


def test_without_original_request_or_headers() -> None:
    hook = access_log("", {"a": 1})
    assert json.loads(hook.line("text", 1_000_000)) == {
        "level": "debug", "duration_ms": 0.0, "request": {}, "response": {}}
    hook = access_log("includeBody: true", "not an object")
    assert json.loads(hook.line(["x"], 3_000_000))["response"] == {"body": ["x"]}


def test_partial_original_request_and_null_headers() -> None:
    state = {"originalRequest": {"method": "POST"}, "headers": None}
    assert json.loads(access_log("", state).line({}, 1_000_000))["request"] == {
        "method": "POST", "headers": None}


def test_hook_prints_one_line_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    access_log("level: info", REQUEST_STATE)({"ok": True}, 200, "application/json")
    out = capsys.readouterr().out
    assert out.endswith("\n") and out.count("\n") == 1
    entry = json.loads(out)
    assert list(entry) == ["level", "duration_ms", "request", "response"]
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0


# --- through the executor --------------------------------------------------------------------

APP = """
GET /ping
  |> log: `level: info, includeBody: true, includeHeaders: false`
  |> jq: `{ pong: true, level: $context.log.level }`

GET /quiet
  |> log: `level: info` @async(l)
  |> join: `l`
  |> jq: `{ done: true }`
"""


async def run_route(path: str) -> tuple[JSON, RequestContext]:
    env = program_from_text(APP)
    route = next(r for _, r in env.index.routes() if r.path == path)
    ctx = RequestContext(request=REQUEST_STATE)
    outcome = await run_body(body_of(env, route), copy.deepcopy(REQUEST_STATE), env, ctx)
    return outcome.state, ctx


async def test_route_logs_after_completion(capsys: pytest.CaptureFixture[str]) -> None:
    state, ctx = await run_route("/ping")
    assert state == {"pong": True, "level": "info"}
    assert capsys.readouterr().out == ""  # nothing until the request completes
    for hook in hooks(ctx):
        hook(state, 200, "application/json")
    entry = json.loads(capsys.readouterr().out)
    assert entry["request"] == {"method": "GET", "params": {"id": 7}, "query": {"q": "x"}}
    assert entry["response"] == {"body": {"pong": True, "level": "info"}}


async def test_async_log_steps_register_nothing_on_the_request() -> None:
    state, ctx = await run_route("/quiet")
    assert state["done"] is True
    assert hooks(ctx) == []
    assert "log" not in ctx.sections
