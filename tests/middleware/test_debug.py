"""The `debug` middleware: spec/middleware.md §13."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support import SimpleHost, body_of
from webpipe.executor.context import RequestContext
from webpipe.executor.pipeline import run_body
from webpipe.middleware.base import Behavior, StepCall
from webpipe.middleware.debug import DebugMiddleware
from webpipe.program import program_from_text

JSON = Any


async def run_debug(config: str, state: JSON) -> JSON:
    mw = DebugMiddleware(SimpleHost())
    result = await mw.run(state, mw.prepare(config, None), StepCall("debug", config))
    return result.value


def test_behavior_is_merge() -> None:
    assert DebugMiddleware.behavior is Behavior.MERGE


async def test_prints_label_then_pretty_state(capsys: pytest.CaptureFixture[str]) -> None:
    state = {"step": 1, "items": [1, {"a": None}], "empty": {}, "none": [], "name": "é"}
    before = copy.deepcopy(state)
    assert await run_debug("  after step one  ", state) is state
    assert state == before
    assert capsys.readouterr().out == (
        "after step one\n"
        "{\n"
        '  "step": 1,\n'
        '  "items": [\n'
        "    1,\n"
        "    {\n"
        '      "a": null\n'
        "    }\n"
        "  ],\n"
        '  "empty": {},\n'
        '  "none": [],\n'
        '  "name": "é"\n'
        "}\n")


async def test_empty_config_prints_debug(capsys: pytest.CaptureFixture[str]) -> None:
    await run_debug("   ", "text")
    assert capsys.readouterr().out == 'debug\n"text"\n'


async def test_log_like_config_is_just_a_label(capsys: pytest.CaptureFixture[str]) -> None:
    await run_debug("level: info, includeBody: true", None)
    assert capsys.readouterr().out == "level: info, includeBody: true\nnull\n"


async def test_state_flows_through_a_route(capsys: pytest.CaptureFixture[str]) -> None:
    env = program_from_text(
        "GET /trace\n  |> jq: `{ step: 1 }`\n  |> debug: `after step one`\n"
        "  |> jq: `{ step: .step + 1 }`\n")
    _, route = next(env.index.routes())
    outcome = await run_body(body_of(env, route), {}, env, RequestContext())
    assert outcome.state == {"step": 2}
    assert capsys.readouterr().out == 'after step one\n{\n  "step": 1\n}\n'
