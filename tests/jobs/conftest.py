"""Fixtures for the durable-job tests: one embedded PostgreSQL per session, a fresh
database per test (passed to every process as DATABASE_URL), the loopback hooks server."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.jobs.support import Hooks, fresh_database, hooks_server
from webpipe.pgembed import default_data_dir, embedded_url

_NAMES = itertools.count(1)
PG_VARS = ("WP_PG_HOST", "WP_PG_PORT", "WP_PG_DATABASE", "WP_PG_USER", "WP_PG_PASSWORD",
           "DATABASE_URL", "WP_PG_EMBEDDED")


@pytest.fixture(scope="session")
def jobs_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return embedded_url(default_data_dir(tmp_path_factory.mktemp("jobsdb")))


@pytest.fixture
async def db_url(jobs_server_url: str, monkeypatch: pytest.MonkeyPatch,
                 tmp_path: Path) -> str:
    for name in PG_VARS:
        monkeypatch.delenv(name, raising=False)
    url = await fresh_database(jobs_server_url, f"jobs_{next(_NAMES)}")
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    async for state in hooks_server():
        yield state
