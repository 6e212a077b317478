"""`webpipe test --inspect` and `webpipe run --inspect` wait for a DAP client: a breakpoint on
an `it` line stops before that test runs and stepping goes into the route it calls; a
script's `pipeline main` stops on its steps (spec/debugger.md)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.debugger.dap_client import DapClient
from tests.hostile.harness import free_port

APP = """\
GET /hi/:name
  |> jq: `{message: ("hi " + .params.name)}`

describe "greeting"
  let who = "ann"

  it "greets by name"
    when calling GET /hi/{{who}}
    then output `.message` equals "hi ann"

  it "greets another"
    when calling GET /hi/bo
    then output `.message` equals "hi bo"
"""


async def test_stops_on_an_it_line_then_steps_into_the_route(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text(APP)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webpipe", "test", str(app), "--inspect", "--inspect-port",
        str(port), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        dap = await DapClient.connect(port)
        bound = await dap.start(str(app), [7, 3])
        assert [(b["verified"], b["line"]) for b in bound] == [(True, 7), (False, 3)]
        thread, event, frame = await dap.stopped()
        assert event["reason"] == "breakpoint"
        assert (frame["name"], frame["line"]) == ("greeting :: greets by name", 7)
        state = await dap.state(frame["id"])
        assert state["it"]["value"] == '"greeting :: greets by name"'
        scopes = (await dap.request("scopes", frameId=frame["id"]))["scopes"]
        refused = await dap.call("setVariable", variablesReference=scopes[0]
                                 ["variablesReference"], name="it", value='"x"')
        assert not refused["success"] and "read-only" in refused["message"]
        await dap.request("next", threadId=thread)  # from an `it` line: into the test
        _, event, frame = await dap.stopped()
        assert (event["reason"], frame["name"], frame["line"]) == \
            ("step", "GET /hi/:name |> jq", 2)
        params = await dap.request("evaluate", expression=".params.name", frameId=frame["id"])
        assert params["result"] == '"ann"'
        await dap.request("continue", threadId=thread)
        output, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, output.decode()
        assert b"2 passed" in output or b"2/2" in output, output.decode()
        await dap.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


SCRIPT = """\
pipeline main =
  |> jq: `{args: $context.args}`
  |> jq: `. + {done: true}`
"""


async def test_run_inspect_debugs_pipeline_main(tmp_path: Path) -> None:
    app = tmp_path / "script.wp"
    app.write_text(SCRIPT)
    port = free_port()
    # the reference's spelling: `webpipe FILE --inspect` runs `pipeline main` under it
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webpipe", str(app), "--inspect", "--inspect-port", str(port),
        "--", "a1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        dap = await DapClient.connect(port)
        await dap.start(str(app), [3])
        thread, _, frame = await dap.stopped()
        assert (frame["name"], frame["line"]) == ("pipeline main |> jq", 3)
        state = await dap.state(frame["id"])
        assert state["args"]["value"] == '["a1"]'
        await dap.request("setVariable", variablesReference=(await dap.request(
            "scopes", frameId=frame["id"]))["scopes"][0]["variablesReference"],
            name="args", value='["edited"]')
        await dap.request("continue", threadId=thread)
        output, errors = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, errors.decode()
        assert json.loads(output) == {"args": ["edited"], "done": True}
        assert (await dap.event("terminated")) == {}
        await dap.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
