"""Issue 17 outcome 9: startup failures are clear. A port in use is one line and exit 1
before any banner; the first start of the embedded PostgreSQL says what it does and how
long it took."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.hostile.harness import serve

APP = """
GET /n
  |> pg: `SELECT 1 AS n`
"""


def test_a_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "app.wp").write_text(APP)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "webpipe", "serve",
                               str(tmp_path / "app.wp"), "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: 127.0.0.1:{port} is already in use; choose another with --port or stop the "
        "process using it"]
    assert done.stdout == ""


async def test_the_first_embedded_postgres_start_is_announced(tmp_path: Path) -> None:
    async with serve(tmp_path, APP) as served, httpx.AsyncClient(base_url=served.base) as c:
        r = await c.get("/n", timeout=120)
        assert r.json()["data"]["rows"] == [{"n": 1}], r.text
        text = served.log.read_text()
    assert "creating and starting embedded PostgreSQL in " in text
    assert "(first start: initdb)" in text
    assert re.search(r"embedded PostgreSQL ready in \d+\.\ds", text)
