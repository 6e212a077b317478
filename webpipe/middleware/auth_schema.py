"""The tables `auth` needs (middleware.md §7.3), created idempotently.

`ensure_auth_schema(conn)` is shared by the two ways the tables come to exist: the `auth`
middleware calls it lazily on its first database use (only when `users` or `sessions` is
missing, so an app whose database user may not run DDL works against tables made by
someone else), and `init_auth_schema(app_path)` backs `webpipe db init-auth APP`, which
always runs the full `CREATE ... IF NOT EXISTS` script on the app's database (the same
precedence rule as `pg`, spec/pg.md). Creation runs in one transaction under an advisory
lock, so concurrent first requests (or processes) never race on the catalog.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

from webpipe.db import SERVER_SETTINGS, connection_url

Connection = Any  # asyncpg ships no type information

AUTH_TABLES = ("users", "sessions")
# an arbitrary constant shared by every webpipe process: "wp auth" in ASCII
SCHEMA_LOCK_KEY = 0x77702061757468

# middleware.md §7.3 plus the upstream setup doc's harmless extras (created_at, sessions.id);
# timestamptz so expiry compares correctly whatever the session time zone is.
SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS users (
  id            SERIAL PRIMARY KEY,
  login         TEXT UNIQUE NOT NULL,
  email         TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  type          TEXT DEFAULT 'local',
  status        TEXT DEFAULT 'active',
  created_at    TIMESTAMPTZ DEFAULT NOW()
);
CREATE TABLE IF NOT EXISTS sessions (
  id         SERIAL PRIMARY KEY,
  user_id    INT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  token      TEXT UNIQUE NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL,
  created_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS sessions_user_id_idx ON sessions (user_id);
"""


async def missing_auth_tables(conn: Connection) -> list[str]:
    """The auth tables not visible on the connection's search_path."""
    row = await conn.fetchrow("SELECT to_regclass('users') IS NULL AS users, "
                              "to_regclass('sessions') IS NULL AS sessions")
    return [name for name in AUTH_TABLES if row[name]]


async def ensure_auth_schema(conn: Connection, *, always: bool = False) -> list[str]:
    """Create the auth tables that are missing; returns the names created.

    Without `always`, nothing is written when both tables exist (a read-only check);
    with it, the whole idempotent script runs (it also adds a missing index).
    """
    if not always and not await missing_auth_tables(conn):
        return []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_KEY)
        missing = await missing_auth_tables(conn)
        if missing or always:
            await conn.execute(SCHEMA_SQL)  # no arguments: simple protocol, many statements
    return missing


async def init_auth_schema(app_path: str | Path) -> list[str]:
    """`webpipe db init-auth APP`: create the auth tables in the app's database.

    Idempotent; returns the tables that did not exist before (empty when both did).
    Raises LookupError when no database is configured and embedding is switched off,
    asyncpg/OS errors when the server cannot be reached.
    """
    asyncpg: Any = importlib.import_module("asyncpg")
    url = await asyncio.to_thread(connection_url, app_path, keep_running=False)
    conn = await asyncpg.connect(url, server_settings=SERVER_SETTINGS)
    try:
        return await ensure_auth_schema(conn, always=True)
    finally:
        await conn.close()
