"""The command line, run as users run it (subprocesses): check, fmt, routes, run, serve
over real HTTP with .env loading, and hot reload keeping the last good program."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

GOOD = ("GET /hi\n  |> jq: `{ hi: env.GREETING }`\n\n"
        "pipeline main =\n  |> jq: `{ args: $context.args, opts: $context.options }`\n")


def webpipe(*args: str, cwd: Path | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webpipe", *args], capture_output=True,
                          text=True, cwd=cwd, check=False, timeout=60)  # type: ignore[call-overload]


def test_check_reports_all_problems_with_positions(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text('GET /a\n  |> nosuch: `x`\n  |> jq: `{`\n  |> jq: `1` @asynch(x)\n')
    done = webpipe("check", str(app))
    assert done.returncode == 1
    assert "app.wp:2:3: error: unknown middleware 'nosuch'" in done.stderr
    assert "app.wp:3:11: error: jq: JQ compilation error" in done.stderr  # at the `{`
    assert "app.wp:4:14: error: unknown tag @asynch" in done.stderr
    as_json = json.loads(webpipe("check", "--json", str(app)).stdout)
    assert {d["line"] for d in as_json} == {2, 3, 4}
    assert all(d["severity"] == "error" and d["file"].endswith("app.wp") for d in as_json)


def test_check_syntax_error_has_caret(tmp_path: Path) -> None:
    app = tmp_path / "bad.wp"
    app.write_text("GET /a\n  jq: `1`\n")
    done = webpipe("check", str(app))
    assert done.returncode == 1
    first, line, caret = done.stderr.splitlines()[:3]
    assert first.endswith("bad.wp:2:3: error: missing `|>` before step 'jq'")
    assert (line, caret) == ("  jq: `1`", "  ^^")


def test_fmt_check_and_rewrite(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text("GET   /a\n      |>   jq: `1`\n")
    assert webpipe("fmt", "--check", str(app)).returncode == 1
    assert webpipe("fmt", str(app)).returncode == 0
    assert app.read_text() == "GET /a\n  |> jq: `1`\n"
    assert webpipe("fmt", "--check", str(app)).returncode == 0


def test_routes(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text("GET /a\n  |> jq: `1`\n\nPOST /b/:id\n  |> jq: `2`\n")
    lines = webpipe("routes", str(app)).stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["GET", "/a"], ["POST", "/b/:id"]]


def test_script_mode_with_args(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text(GOOD)
    done = webpipe(str(app), "--", "one", "--k=v", "--flag")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"args": ["one"], "opts": {"k": "v", "flag": True}}
    assert webpipe("run", str(tmp_path / "app.wp"), "two").returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str, subprocess.Popen[str]]]:
    app = tmp_path / "app.wp"
    app.write_text('GET /hi\n  |> jq: `{ hi: $context.env, v: 1 }`\n')
    (tmp_path / ".env").write_text("WEBPIPE_ENV=from-dotenv\n")
    (tmp_path / ".env.local").write_text("WEBPIPE_ENV=from-local\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "WEBPIPE_ENV"}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "webpipe", "serve", str(app), "--port",
                             str(port), "--reload"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            httpx.get(base + "/health", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield app, base, proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    """Poll until true; a request that fails mid-reload (an editor's half-written file
    being reloaded) just counts as not yet."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return True
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    return False


def test_serve_over_http_with_reload(served: tuple[Path, str, subprocess.Popen[str]]) -> None:
    app, base, _proc = served
    assert httpx.get(base + "/hi").json() == {"hi": "from-local", "v": 1}
    app.write_text('GET /hi\n  |> jq: `{ v: 2 }`\n')
    assert wait_for(lambda: httpx.get(base + "/hi").json() == {"v": 2})
    app.write_text('GET /hi\n  jq: `{ v: 3 }`\n')  # broken: keeps serving v2
    time.sleep(1.0)
    assert httpx.get(base + "/hi").json() == {"v": 2}
    app.write_text('GET /hi\n  |> jq: `{ v: 4 }`\n')
    assert wait_for(lambda: httpx.get(base + "/hi").json() == {"v": 4})


def test_serve_stops_cleanly_on_sigterm(served: tuple[Path, str, subprocess.Popen[str]]) -> None:
    app, base, proc = served
    assert httpx.get(base + "/health").status_code == 200
    proc.terminate()
    # uvicorn shuts down gracefully, then re-raises the signal (exit status -SIGTERM)
    assert proc.wait(timeout=15) in (0, -15)
    assert "Traceback" not in (app.parent / "serve.log").read_text()


def test_check_reports_every_syntax_error(tmp_path: Path) -> None:
    app = tmp_path / "many.wp"
    app.write_text("GET /a\n  jq: `1`\n\nGET /b\n  |> foreach items\n    |> jq: `.`\n\n"
                   "GET /c\n  |> jq: `1` @guard(.x)\n\npg q = SELECT 1\n\nHEAD /d\n  |> jq: `1`\n"
                   "\nGET /fine\n  |> jq: `1`\n")
    done = webpipe("check", "--json", str(app))
    assert done.returncode == 1
    found = [(d["line"], d["message"].split(":")[0]) for d in json.loads(done.stdout)]
    assert [line for line, _ in found] == [2, 6, 9, 11, 13]  # 6: where `end` is missing
    assert found[-1][1].startswith("unknown route method 'HEAD'")


def test_db_init_auth_creates_tables_once(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text("GET /x\n  |> jq: `1`\n")
    first = webpipe("db", "init-auth", str(app))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "created: users, sessions"
    assert webpipe("db", "init-auth", str(app)).stdout.strip() == "auth tables already exist"


def test_check_rejects_an_unknown_auth_flow(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text("GET /a\n  |> auth: requird\n  |> auth: required\n  |> auth: `type:admin`\n")
    done = webpipe("check", str(app))
    assert done.returncode == 1
    assert "app.wp:2:3: error: unknown auth flow 'requird'" in done.stderr
    assert done.stderr.count("error:") == 1
