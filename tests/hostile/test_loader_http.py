"""The loader over a real `webpipe serve` (issue 22, outcome 7): a program at the nesting
bound serves, one past it and the inputs that used to raise are refused at startup with our
diagnostic (`file:line:col`, no traceback); route parameters with `-` and `__` both work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.hostile.harness import serve
from tests.syntax.test_fuzz_regressions import nested_ifs
from webpipe.syntax.nesting import MAX_NESTING

PARAMS = "GET /p/:a-b/:a__b\n  |> jq: `.params`\n\n"


async def test_deepest_allowed_nesting_and_odd_parameter_names_serve(tmp_path: Path) -> None:
    async with serve(tmp_path, PARAMS + nested_ifs(MAX_NESTING)) as served, \
            httpx.AsyncClient(base_url=served.base) as client:
        deep = await client.get("/deep")
        params = await client.get("/p/one/two")
    assert (deep.status_code, deep.json()) == (200, {"deep": True})
    assert params.json() == {"a-b": "one", "a__b": "two"}


def test_serve_refuses_what_check_refuses(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    for text, where in ((nested_ifs(MAX_NESTING + 1), f"app.wp:{2 + 3 * MAX_NESTING}:3: error"),
                        ("GET /a/:id/:id\n  |> jq: `1`\n", "app.wp:1:5: error"),
                        ('import "\0" as x\n', "app.wp:1:1: error")):
        app.write_text(text)
        for command in ("check", "serve"):
            done = subprocess.run([sys.executable, "-m", "webpipe", command, str(app),
                                   *(["--port", "0"] if command == "serve" else [])],
                                  capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 1, (command, done.stderr)
            assert where in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
