"""Where webpipe's PostgreSQL is, and the helpers behind `webpipe db url|run`.

One precedence rule (spec/pg.md "Which database") decides the server for the `pg`
middleware, Lua's `executeSql` and the CLI alike: `WP_PG_*` variables, then
`DATABASE_URL`, then a `config pg` block with a `host`, then an embedded PostgreSQL in
`<app dir>/.webpipe/pgdata` (`webpipe.pgembed`) unless `WP_PG_EMBEDDED` switches it off.
Nothing here connects at import; `asyncpg` is imported inside the functions that use it.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from webpipe.config import config_int, config_str
from webpipe.pgembed import default_data_dir, embedded_url

# sqlx opens sessions in UTC; timestamptz values then carry +00:00 (middleware.md §2.4)
SERVER_SETTINGS = {"TimeZone": "UTC"}
NOT_CONFIGURED = ("Database not configured. Please add a 'config pg {}' block with "
                  "connection settings.")
_OFF = ("0", "false", "off", "no")


@dataclass(frozen=True, slots=True)
class PgTarget:
    """The chosen server: a URL, or an embedded data directory started on demand."""

    source: str  # "WP_PG_*" | "DATABASE_URL" | "config pg" | "embedded"
    url: str | None = None
    data_dir: Path | None = None


def resolve_target(block: Mapping[str, Any] | None, base_dir: Path,
                   environ: Mapping[str, str] | None = None) -> PgTarget | None:
    """Apply the precedence rule; None when nothing is configured and embedding is off."""
    env = os.environ if environ is None else environ
    if env.get("WP_PG_HOST") or env.get("WP_PG_DATABASE"):
        return PgTarget("WP_PG_*", url=_wp_pg_url(env))
    if env.get("DATABASE_URL"):
        return PgTarget("DATABASE_URL", url=env["DATABASE_URL"])
    if config_str(block, "host"):
        return PgTarget("config pg", url=config_url(block or {}))
    if env.get("WP_PG_EMBEDDED", "").strip().lower() in _OFF:
        return None
    return PgTarget("embedded", data_dir=default_data_dir(base_dir))


def config_url(block: Mapping[str, Any]) -> str:
    """`postgres://user:pass@host:port/db` from a `config pg` block (middleware.md §2.7)."""
    return make_url(config_str(block, "host") or "localhost", config_int(block, "port", 5432),
                    config_str(block, "database") or "postgres",
                    config_str(block, "user") or "postgres",
                    config_str(block, "password", "postgres") or "")


def make_url(host: str, port: int, database: str, user: str, password: str) -> str:
    """A percent-encoded URL; a host starting with `/` is a Unix socket directory."""
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return f"postgres://{auth}@{quote(host, safe='')}:{port}/{quote(database, safe='')}"


def _wp_pg_url(env: Mapping[str, str]) -> str:
    # the migrations CLI's variables and defaults (middleware.md §17)
    port = env.get("WP_PG_PORT", "").strip()
    return make_url(env.get("WP_PG_HOST") or "localhost",
                    int(port) if port.isascii() and port.isdigit() and len(port) <= 5 else 5432,
                    env.get("WP_PG_DATABASE") or "postgres",
                    env.get("WP_PG_USER") or "postgres", env.get("WP_PG_PASSWORD") or "")


def target_url(target: PgTarget, *, keep_running: bool = False) -> str:
    """The target's URL, starting the embedded server if that is the target. Blocking."""
    if target.url is not None:
        return target.url
    assert target.data_dir is not None, "an embedded target always has a data directory"
    return embedded_url(target.data_dir, keep_running=keep_running)


def connection_url(app_path: str | Path, *, keep_running: bool = True) -> str:
    """`webpipe db url APP`: the URL the app's `pg` steps would use.

    For the embedded server this starts it and, by default, leaves it running after this
    process exits so the URL stays usable (`psql "$(webpipe db url app.wp)"`); the next
    webpipe process on the same app adopts it and stops it on exit. Raises LookupError
    when no database is configured and embedding is switched off.
    """
    from webpipe.program import load_program

    env = load_program(app_path)
    target = resolve_target(env.config_block("pg"), env.base_dir)
    if target is None:
        raise LookupError(NOT_CONFIGURED)
    return target_url(target, keep_running=keep_running)


async def run_sql_file(app_path: str | Path, sql_path: str | Path) -> str:
    """`webpipe db run APP FILE.sql`: run a SQL script against the app's database.

    The file is sent as one simple-protocol query, so it may hold several statements;
    PostgreSQL runs them in one implicit transaction unless the file has its own
    BEGIN/COMMIT. Returns the status tag of the last statement (e.g. `INSERT 0 3`).
    """
    asyncpg: Any = importlib.import_module("asyncpg")  # untyped; imported on use
    url = await asyncio.to_thread(connection_url, app_path, keep_running=False)
    script = await asyncio.to_thread(Path(sql_path).read_text, encoding="utf-8")
    conn = await asyncpg.connect(url, server_settings=SERVER_SETTINGS)
    try:
        return str(await conn.execute(script))
    finally:
        await conn.close()
