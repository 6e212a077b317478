"""`webpipe serve --inspect`: a DAP client over TCP against a real server process
(spec/debugger.md). A breakpoint stops one request; other requests are served meanwhile."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.debugger.dap_client import DapClient
from tests.hostile.harness import free_port, health_while, serve

HELLO = """\
GET /hello/:name
  |> jq: `{name: .params.name, greeting: "hi"}`
  |> jq: `. + {shout: (.greeting | ascii_upcase)}`
  |> jq: `{message: (.shout + " " + .name)}`

GET /other
  |> jq: `{ok: true}`
"""

CALLS = """\
pipeline decorate =
  |> jq: `. + {decorated: true}`
  |> jq: `. + {twice: true}`

GET /p
  |> jq: `{a: 1}`
  |> pipeline: decorate
  |> jq: `. + {after: true}`
"""


async def test_breakpoint_state_evaluate_step_and_continue_while_others_are_served(
        tmp_path: Path) -> None:
    port = free_port()
    async with serve(tmp_path, HELLO, "--inspect", "--inspect-port", str(port)) as served:
        dap = await DapClient.connect(port)
        app = str((tmp_path / "app.wp").resolve())
        assert [b["verified"] for b in await dap.start(app, [2, 5])] == [True, False]
        async with httpx.AsyncClient(base_url=served.base, timeout=60) as http:
            paused = asyncio.ensure_future(http.get("/hello/ann"))
            thread, event, frame = await dap.stopped()
            assert event["reason"] == "breakpoint" and event["hitBreakpointIds"]
            assert frame["name"] == "GET /hello/:name |> jq"
            assert (frame["line"], frame["source"]["path"]) == (2, app)
            threads = (await dap.request("threads"))["threads"]
            assert thread in [t["id"] for t in threads]

            state = await dap.state(frame["id"])
            assert state["method"]["value"] == '"GET"'
            params = await dap.request("variables",
                                       variablesReference=state["params"]["variablesReference"])
            assert [(v["name"], v["value"], v["evaluateName"]) for v in params["variables"]] \
                == [("name", '"ann"', ".params.name")]
            evaluated = await dap.request("evaluate", expression=".params", frameId=frame["id"],
                                          context="repl")
            assert evaluated["result"] == '{"name":"ann"}'

            other = await http.get("/other")  # served while /hello/ann is paused
            assert other.json() == {"ok": True}
            latencies, _ = await health_while(served, asyncio.sleep(0.3))
            assert max(latencies) < 1.0  # every /health probe answered (1.0: no answer)
            assert not paused.done()

            await dap.request("next", threadId=thread)
            _, event, frame = await dap.stopped()
            assert (event["reason"], frame["line"]) == ("step", 3)
            assert (await dap.state(frame["id"]))["greeting"]["value"] == '"hi"'
            await dap.request("next", threadId=thread)
            _, event, frame = await dap.stopped()
            assert (event["reason"], frame["line"]) == ("step", 4)
            await dap.request("continue", threadId=thread)
            response = await paused
            assert response.json() == {"message": "HI ann"}
            assert (await dap.event("thread"))["reason"] == "started"
            assert (await dap.event("thread")) == {"reason": "exited", "threadId": thread}
        await dap.close()


async def test_set_variable_changes_the_response(tmp_path: Path) -> None:
    port = free_port()
    async with serve(tmp_path, HELLO, "--inspect", "--inspect-port", str(port)) as served:
        dap = await DapClient.connect(port)
        await dap.start(str(tmp_path / "app.wp"), [4])
        async with httpx.AsyncClient(base_url=served.base, timeout=60) as http:
            paused = asyncio.ensure_future(http.get("/hello/bo"))
            thread, _, frame = await dap.stopped()
            scopes = (await dap.request("scopes", frameId=frame["id"]))["scopes"]
            ref = scopes[0]["variablesReference"]
            changed = await dap.request("setVariable", variablesReference=ref, name="shout",
                                        value='"YO"')
            assert (changed["value"], changed["type"]) == ('"YO"', "string")
            # not JSON: a jq expression on the state
            await dap.request("setVariable", variablesReference=ref, name="name",
                              value=".name | ascii_upcase")
            bad = await dap.call("setVariable", variablesReference=ref, name="name",
                                 value="not json (")
            assert not bad["success"] and "not JSON" in bad["message"]
            await dap.request("continue", threadId=thread)
            assert (await paused).json() == {"message": "YO BO"}
            # the next request runs on its own state: the edit was this request's only
            second = asyncio.ensure_future(http.get("/hello/cy"))
            thread, _, _ = await dap.stopped()
            await dap.request("continue", threadId=thread)
            assert (await second).json() == {"message": "HI cy"}
        await dap.close()


async def test_step_in_and_out_of_a_named_pipeline(tmp_path: Path) -> None:
    port = free_port()
    async with serve(tmp_path, CALLS, "--inspect", "--inspect-port", str(port)) as served:
        dap = await DapClient.connect(port)
        await dap.start(str(tmp_path / "app.wp"), [7])
        async with httpx.AsyncClient(base_url=served.base, timeout=60) as http:
            paused = asyncio.ensure_future(http.get("/p"))
            thread, _, frame = await dap.stopped()
            assert frame["name"] == "GET /p |> pipeline: decorate"
            await dap.request("stepIn", threadId=thread)
            await dap.event("stopped")
            frames = (await dap.request("stackTrace", threadId=thread))["stackFrames"]
            assert [(f["name"], f["line"]) for f in frames] == [
                ("pipeline decorate |> jq", 2), ("GET /p |> pipeline: decorate", 7)]
            await dap.request("stepOut", threadId=thread)
            _, event, frame = await dap.stopped()
            assert (event["reason"], frame["name"], frame["line"]) == \
                ("step", "GET /p |> jq", 8)
            await dap.request("continue", threadId=thread)
            assert (await paused).json() == {"a": 1, "decorated": True, "twice": True,
                                             "after": True}

            # `next` on the call steps over the whole pipeline
            paused = asyncio.ensure_future(http.get("/p"))
            thread, _, frame = await dap.stopped()
            await dap.request("next", threadId=thread)
            _, _, frame = await dap.stopped()
            assert (frame["name"], frame["line"]) == ("GET /p |> jq", 8)
            await dap.request("disconnect")  # resumes everything; the server keeps serving
            assert (await paused).status_code == 200
        await dap.close()


async def test_sigterm_resumes_a_paused_request_and_exits(tmp_path: Path) -> None:
    port = free_port()
    async with serve(tmp_path, HELLO, "--inspect", "--inspect-port", str(port)) as served:
        dap = await DapClient.connect(port)
        await dap.start(str(tmp_path / "app.wp"), [3])
        async with httpx.AsyncClient(base_url=served.base, timeout=60) as http:
            paused = asyncio.ensure_future(http.get("/hello/x"))
            await dap.stopped()
            took = await served.stop(grace_s=20)
            assert took < 10  # not the grace period of a request that never ends
            assert (await paused).json() == {"message": "HI x"}
        await dap.close()


async def test_a_reloaded_program_is_debugged_too(tmp_path: Path) -> None:
    port = free_port()
    app = tmp_path / "app.wp"
    async with serve(tmp_path, HELLO, "--reload", "--inspect", "--inspect-port",
                     str(port)) as served:
        dap = await DapClient.connect(port)
        await dap.start(str(app), [])
        async with httpx.AsyncClient(base_url=served.base, timeout=60) as http:
            app.write_text(HELLO.replace("{ok: true}", "{ok: \"reloaded\"}"))
            for _ in range(300):  # poll until the new program answers
                if (await http.get("/other")).json() == {"ok": "reloaded"}:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("no reload: " + served.log.read_text())
            await dap.request("setBreakpoints", source={"path": str(app)},
                              breakpoints=[{"line": 7}])
            paused = asyncio.ensure_future(http.get("/other"))
            thread, _, frame = await dap.stopped()
            assert (frame["name"], frame["line"]) == ("GET /other |> jq", 7)
            await dap.request("continue", threadId=thread)
            assert (await paused).json() == {"ok": "reloaded"}
        await dap.close()
