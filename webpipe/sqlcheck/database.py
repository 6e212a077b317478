"""The database `check --db` prepares statements on: the app's, or a scratch copy of its schema.

The server is the one the app's `pg` steps use (webpipe.db's precedence: `WP_PG_*`,
`DATABASE_URL`, `config pg`, else the embedded PostgreSQL). When the app has migrations
(`migrations/` next to it), statements are prepared on a scratch database on that server,
`_wp_check_<app>_<hash of the migration files>`, built once by applying every migration to
an empty database and kept for the next check (a changed migration gives a new hash; the
app's older scratch databases are dropped). The dev database is then only read, to say
which migrations it has not applied. Without migrations the app's own database is used:
preparing a statement runs nothing, so no row changes. asyncpg is imported on first use.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webpipe.db import NOT_CONFIGURED, SERVER_SETTINGS, resolve_target, target_url
from webpipe.migrate.core import applied_migrations, display_url, migrate_up
from webpipe.migrate.files import Migration, MigrationError, load_migrations
from webpipe.pgembed import EmbeddedUnavailable

SCRATCH_PREFIX = "_wp_check_"
CONNECT_TIMEOUT_S = 5.0
STATEMENT_TIMEOUT_MS = 5000  # preparing only parses and plans; nothing long runs
LOCK_KEY = int.from_bytes(b"_wp_chk_", "big")  # serialises scratch builds on one server


class DatabaseUnavailable(Exception):
    """No database to check against (not configured, not starting, not answering)."""


class NotCreatedYet(DatabaseUnavailable):
    """The embedded database does not exist yet (and was not to be created)."""


@dataclass(frozen=True, slots=True)
class CheckTarget:
    """Where statements are prepared: a server URL and the database on it."""

    url: str
    database: str | None  # None: the URL's own database
    description: str
    notes: tuple[str, ...] = ()
    migrations: tuple[Migration, ...] = ()  # applied to the scratch database


async def pending_on_app_database(target: CheckTarget) -> list[Migration]:
    """The scratch database's migrations that the app's own database has not applied (read
    only: `_wp_migrations`, when it exists). The check passing says nothing about those."""
    if not target.migrations:
        return []
    try:
        conn = await connect(target.url)
    except DatabaseUnavailable:
        return []  # the scratch database's server answers; its own database may not exist
    try:
        applied = {a.version for a in await applied_migrations(conn)}
    except asyncpg_module().PostgresError:
        return []  # e.g. no right to read `_wp_migrations`: nothing to say
    finally:
        await conn.close()
    return [m for m in target.migrations if m.version not in applied]


def asyncpg_module() -> Any:
    return importlib.import_module("asyncpg")  # untyped; imported on first use


def server_url(pg_block: Any, base_dir: Path, start_embedded: bool = True,
               ) -> tuple[str, str]:
    """The app's server URL and a description of it; starts the embedded server (blocking).
    Without `start_embedded`, an embedded database that was never created is unavailable
    (`serve` does not run initdb just to check; the first statement does)."""
    target = resolve_target(pg_block, base_dir)
    if target is None:
        raise DatabaseUnavailable(NOT_CONFIGURED)
    if target.data_dir is not None and not start_embedded \
            and not (target.data_dir / "PG_VERSION").exists():
        raise NotCreatedYet(f"the embedded database in {target.data_dir} has not been "
                            "created yet")
    try:
        url = target_url(target)
    except EmbeddedUnavailable as exc:
        raise DatabaseUnavailable(str(exc)) from None
    if target.data_dir is not None:
        return url, f"embedded PostgreSQL in {target.data_dir}"
    return url, f"{display_url(url)} (from {target.source})"


async def connect(url: str, database: str | None = None, *, absent_ok: bool = False) -> Any:
    """One connection for checking, in UTC as `pg`'s, with a short statement timeout
    (None, with `absent_ok`, when `database` does not exist)."""
    asyncpg = asyncpg_module()
    settings = {**SERVER_SETTINGS, "statement_timeout": str(STATEMENT_TIMEOUT_MS)}
    extra = {"database": database} if database else {}
    try:
        return await asyncpg.connect(url, server_settings=settings,
                                     timeout=CONNECT_TIMEOUT_S, **extra)
    except asyncpg.InvalidCatalogNameError as exc:
        if absent_ok:
            return None
        raise DatabaseUnavailable(f"cannot connect to {display_url(url)}: {exc}") from None
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"cannot connect to {display_url(url)}: {exc}") from None


def scratch_name(migrations: Path, found: list[Migration]) -> str:
    """`_wp_check_<app>_<migrations>`: the app (its migrations folder) and the migration
    files (versions and checksums), hashed. Two apps on one server keep one scratch
    database each; a build replaces only its own app's older ones."""
    app = hashlib.sha256(str(migrations.resolve()).encode()).hexdigest()[:8]
    digest = hashlib.sha256()
    for migration in found:
        digest.update(f"{migration.version}:{migration.checksum}\n".encode())
    return f"{SCRATCH_PREFIX}{app}_{digest.hexdigest()[:16]}"


async def check_target(url: str, description: str, migrations: Path,
                       ) -> tuple[CheckTarget, Any]:
    """The scratch database for the app's migrations (built when missing), or the app's
    own database when it has none or the server refuses to create one; with a connection
    to it (the caller closes it)."""
    found = load_migrations(migrations)
    if not found:
        return (CheckTarget(url, None, f"{description} (no migrations: its current schema)"),
                await connect(url))
    name = scratch_name(migrations, found)
    where = f"scratch database {name} on {description}, {len(found)} migration(s)"
    ready = await connect(url, name, absent_ok=True)  # built by an earlier check: reused
    if ready is not None:
        return CheckTarget(url, name, where, (), tuple(found)), ready
    target = await _built(url, name, where, migrations, description)
    if target.database is not None:
        target = CheckTarget(url, name, where, (), tuple(found))
    return target, await connect(url, target.database)


async def _built(url: str, name: str, where: str, migrations: Path, description: str,
                 ) -> CheckTarget:
    """Build the scratch database `name`, or fall back to the app's own database."""
    conn = await connect(url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
            try:
                await _build(conn, url, name, migrations)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    except asyncpg_module().InsufficientPrivilegeError as exc:
        note = (f"no scratch database ({exc}): statements were prepared on the app's own "
                "database, without pending migrations")
        return CheckTarget(url, None, description, (note,))
    finally:
        await conn.close()
    return CheckTarget(url, name, where)


async def _build(conn: Any, url: str, name: str, migrations: Path) -> None:
    """Create `name` under the lock: migrate an empty database, then rename it into place
    (so a half-built one is never used), and drop older scratch databases."""
    if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
        return  # another process built it while this one waited for the lock
    building = f"{name}_{os.getpid()}"
    await conn.execute(f'DROP DATABASE IF EXISTS "{building}"')
    await conn.execute(f'CREATE DATABASE "{building}"')
    try:
        scratch = await connect(url, building)
        try:
            await migrate_up(scratch, migrations)
        finally:
            await scratch.close()
    except (MigrationError, DatabaseUnavailable):
        await conn.execute(f'DROP DATABASE IF EXISTS "{building}"')
        raise
    await conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    app_prefix = name[:len(SCRATCH_PREFIX) + 9]  # `_wp_check_<app>_`
    stale = await conn.fetch("SELECT datname FROM pg_database WHERE starts_with(datname, $1) "
                             "AND datname <> $2", app_prefix, name)
    for row in stale:  # WITH (FORCE): a check that just closed may still hold a backend
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        except asyncpg_module().PostgresError:
            pass  # PostgreSQL before 13, or no right to end other sessions: left for later
