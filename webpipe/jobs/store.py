"""The jobs' database: its URL, pgqueuer's schema, and the payload a job carries.

Jobs live in the app's own database (spec/pg.md "Which database", embedded by default), in
pgqueuer's tables, installed on first use under an advisory lock so a server and workers
starting together install them once. One entrypoint, `webpipe.step`, carries every job; its
payload is JSON: `{route, requestId, steps: [{file, line, hash, name, input}, …]}`, the
first step being the one the job runs (the rest follow it in declaration order).
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any

from webpipe.db import NOT_CONFIGURED, SERVER_SETTINGS, resolve_target, target_url

if TYPE_CHECKING:
    from webpipe.executor.env import Env

ENTRYPOINT = "webpipe.step"
_SCHEMA_LOCK = 7_246_161  # pg_advisory_xact_lock key: "install pgqueuer's schema"


class JobsUnavailable(RuntimeError):
    """No database for jobs (none configured and embedding off)."""


async def jobs_url(env: Env) -> str:
    """The app's database URL, starting the embedded server if that is the target."""
    target = resolve_target(env.config_block("pg"), env.base_dir)
    if target is None:
        raise JobsUnavailable(NOT_CONFIGURED)
    return await asyncio.to_thread(target_url, target)


def asyncpg_module() -> Any:
    return importlib.import_module("asyncpg")  # untyped; imported on use


async def connect(env: Env) -> Any:
    return await asyncpg_module().connect(await jobs_url(env), server_settings=SERVER_SETTINGS)


async def ensure_schema(conn: Any) -> None:
    """Install pgqueuer's tables once (concurrent installers wait on the lock)."""
    from pgqueuer.queries import Queries

    queries = Queries.from_asyncpg_connection(conn)
    if await queries.schema_is_installed():
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
        if not await queries.schema_is_installed():
            await queries.install()
