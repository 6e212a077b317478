"""Issue 17 outcomes 1 and 6 against a real `webpipe serve`: an unhandled error answers the
status of its type (spec/server.md §1), and a response carries only what the route produced
(§6): no `setCookies`/`setHeaders` in the body, no request keys the state rules restored."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.hostile.harness import free_port, serve

APP = """
GET /typed/:kind
  |> jq: `{ errors: [{ type: .params.kind, message: "no" }] }`

GET /jq
  |> jq: `error("boom")`
  |> jq: `.`

GET /fetch
  |> fetch: `http://127.0.0.1:CLOSED/x`

GET /renamed
  |> jq: `{ errors: [{ type: "x", message: "gone" }] }` @error(notFound)

GET /handled
  |> jq: `{ errors: [{ type: "notFound", message: "gone" }] }`
  |> result
    notFound(410):
      |> jq: `{ gone: true }`

GET /valid
  |> validate: `{ name: string(1..5) }`

GET /tmp
  |> jq: `{ ok: true, tmp: 1 }`
  |> jq: `del(.tmp)`

GET /logged
  |> jq: `{ ok: true }`
  |> log

GET /debugged
  |> jq: `{ ok: true }`
  |> debug

GET /deliberate
  |> jq: `{ ok: true }`
  |> jq: `{ auth: .headers.authorization, headers: { mine: 1 } }`

GET /cached
  |> cache: `ttl: 600, keyTemplate: shared`
  |> jq: `{ ok: true, tmp: 1 }`
  |> jq: `del(.tmp)`

POST /login
  |> jq: `{ user: "ada", setCookies: ["sid=secret; HttpOnly"], setHeaders: { "x-a": "1" } }`
"""

STATUSES = {"validationError": 400, "authError": 401, "notFound": 404, "rateLimit": 429,
            "networkError": 502, "httpError": 502, "timeout": 504, "sqlError": 500,
            "whatever": 500}


def app() -> str:
    return APP.replace("CLOSED", str(free_port()))


async def test_unhandled_errors_answer_the_status_of_their_type(tmp_path: Path) -> None:
    async with serve(tmp_path, app()) as served, httpx.AsyncClient(base_url=served.base) as c:
        for kind, status in STATUSES.items():
            r = await c.get(f"/typed/{kind}")
            assert (r.status_code, r.json()["errors"][0]["type"]) == (status, kind)
        assert (await c.get("/jq")).status_code == 500
        assert (await c.get("/fetch")).status_code == 502
        assert (await c.get("/renamed")).status_code == 404
        assert (await c.get("/valid")).status_code == 400
        handled = await c.get("/handled")  # a `result` branch decides
        assert (handled.status_code, handled.json()) == (410, {"gone": True})


async def test_config_keeps_the_reference_status(tmp_path: Path) -> None:
    text = "config server {\n  unhandledErrorStatus: 200\n}\n" + app()
    async with serve(tmp_path, text) as served, httpx.AsyncClient(base_url=served.base) as c:
        r = await c.get("/typed/notFound")
        assert (r.status_code, r.json()["errors"][0]["type"]) == (200, "notFound")


async def test_bodies_carry_only_what_the_route_produced(tmp_path: Path) -> None:
    secret = {"authorization": "Bearer s3cret", "cookie": "sid=abc"}
    async with serve(tmp_path, app()) as served, httpx.AsyncClient(base_url=served.base) as c:
        for path in ("/tmp", "/logged", "/debugged"):
            r = await c.get(path, headers=secret)
            assert (r.status_code, r.json()) == (200, {"ok": True}), path
        r = await c.get("/deliberate", headers=secret)
        assert r.json() == {"auth": "Bearer s3cret", "headers": {"mine": 1}}
        for who in ("Bearer alice", "Bearer bob"):  # a hit never serves alice's headers
            r = await c.get("/cached", headers={"authorization": who})
            assert r.json() == {"ok": True}
        login = await c.post("/login", json={})
        assert login.json() == {"user": "ada"}
        assert login.headers["set-cookie"] == "sid=secret; HttpOnly"
        assert login.headers["x-a"] == "1"
        assert "secret" not in login.text


RUNNER_APP = """
GET /gone
  |> jq: `{ errors: [{ type: "notFound", message: "gone" }] }`

GET /tmp
  |> jq: `{ ok: true, tmp: 1 }`
  |> jq: `del(.tmp)`

describe "answers"
  it "sees the unhandled status"
    when calling GET /gone
    then status is 404
  it "sees the body the server sends"
    when calling GET /tmp
    with headers `{ authorization: "x" }`
    then status is 200
    and output `keys` equals `["ok"]`
"""


def test_the_runner_sees_what_the_server_answers(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "app.wp").write_text(RUNNER_APP)
    done = subprocess.run([sys.executable, "-m", "webpipe", "test", str(tmp_path / "app.wp")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2/2 passed" in done.stdout + done.stderr
