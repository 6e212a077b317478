"""Test runs never touch the development database (spec/server.md §7).

While a `webpipe test` run (or a pytest session that collected `.wp` files) is active,
the `pg` middleware asks `db.effective_url` for its URL and gets a database made for the
run instead of the app's own: on the embedded server a fresh `webpipe_test_<pid>_<hex>`,
on a server named by the environment or `config pg` the app's database name with a
`_test` suffix (dropped first if a kept run left it). The app's `migrations/` are applied
to it. Every database made is dropped when the run ends, unless `--keep-db`.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import secrets
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from webpipe import db


class TestDatabases:
    """The databases one run made: the app's URL -> the run's URL."""

    __test__ = False  # not a pytest test class

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.made: dict[str, str] = {}
        self._lock = threading.Lock()

    def url_for(self, url: str, base_dir: Path, embedded: bool) -> str:
        """The run's database for the app database `url` (made on first use). Blocking."""
        with self._lock:
            if url not in self.made:
                name = f"webpipe_test_{os.getpid()}_{secrets.token_hex(3)}" if embedded \
                    else _database(url) + "_test"
                test_url = _with_database(url, name)
                asyncio.run(_create(url, name, test_url, base_dir / "migrations"))
                print(f"tests use database {name} (the app's is not touched)",
                      file=sys.stderr)
                self.made[url] = test_url
            return self.made[url]

    def close(self) -> None:
        """Drop every database made (unless kept)."""
        with self._lock:
            made, self.made = dict(self.made), {}
        for url, test_url in made.items():
            name = _database(test_url)
            if self.keep:
                print(f"kept test database {name} (--keep-db)", file=sys.stderr)
                continue
            try:
                asyncio.run(_drop(url, name))
            except Exception as exc:  # the server went away: say what is left behind
                print(f"could not drop test database {name}: {exc}", file=sys.stderr)


@contextmanager
def test_databases(keep: bool = False) -> Iterator[TestDatabases]:
    """Route every `pg` connection of this process to run databases until the block ends."""
    run = TestDatabases(keep)
    db.TEST_DATABASES = run.url_for
    try:
        yield run
    finally:
        db.TEST_DATABASES = None
        run.close()


def _database(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/")) or "postgres"


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _create(url: str, name: str, test_url: str, migrations: Path) -> None:
    from webpipe.migrate.core import migrate_up

    asyncpg: Any = importlib.import_module("asyncpg")
    conn = await asyncpg.connect(url, server_settings=db.SERVER_SETTINGS)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {_quoted(name)}")
    finally:
        await conn.close()
    if migrations.is_dir():
        conn = await asyncpg.connect(test_url, server_settings=db.SERVER_SETTINGS)
        try:
            await migrate_up(conn, migrations)
        finally:
            await conn.close()


async def _drop(url: str, name: str) -> None:
    asyncpg: Any = importlib.import_module("asyncpg")
    conn = await asyncpg.connect(url, server_settings=db.SERVER_SETTINGS)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
    finally:
        await conn.close()
