"""Applying and rolling back migrations on PostgreSQL (middleware.md §17, spec/migrate.md).

Plain async functions over one asyncpg connection. Bookkeeping lives in `_wp_migrations`
(the reference's table plus a `checksum` column). Each migration runs in its own
transaction together with its bookkeeping row, so a failing migration leaves the schema and
the table as they were. Sections are sent with the simple query protocol, so one section
may hold several statements. `up`, `down` and `force` hold a session advisory lock, so two
deploys racing on one database run one after the other. asyncpg is imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from webpipe.db import NOT_CONFIGURED, SERVER_SETTINGS, resolve_target, target_url
from webpipe.migrate.files import Migration, MigrationError, Section, Warn, load_migrations
from webpipe.pgembed import EmbeddedUnavailable

TABLE = "_wp_migrations"
CREATE_TABLE = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    id SERIAL PRIMARY KEY,
    version VARCHAR(14) UNIQUE NOT NULL,
    name TEXT NOT NULL,
    applied_at TIMESTAMP DEFAULT NOW()
);
ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS checksum TEXT"""
# to_jsonb(m) reads a table the reference created, which has no checksum column, too
SELECT_APPLIED = (f"SELECT version, name, applied_at, to_jsonb(m) ->> 'checksum' AS checksum "
                  f"FROM {TABLE} m ORDER BY version")
INSERT = f"INSERT INTO {TABLE} (version, name, checksum) VALUES ($1, $2, $3)"
DELETE = f"DELETE FROM {TABLE} WHERE version = $1"
LOCK_KEY = int.from_bytes(b"_wp_migr", "big")  # pg_advisory_lock key for this tool
CONNECT_TIMEOUT = 10.0
ENDED = "Each migration already runs in one transaction: remove BEGIN/COMMIT/ROLLBACK."

Done = Callable[[Migration], None]
State = Literal["applied", "pending", "missing file"]


class Connection(Protocol):
    """The part of `asyncpg.Connection` used here."""

    async def execute(self, query: str, *args: object) -> str: ...
    async def fetch(self, query: str, *args: object) -> list[Any]: ...
    async def fetchval(self, query: str, *args: object) -> Any: ...
    def transaction(self) -> AbstractAsyncContextManager[Any]: ...
    def is_in_transaction(self) -> bool: ...
    def is_closed(self) -> bool: ...
    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Applied:
    """One row of `_wp_migrations`."""

    version: str
    name: str
    applied_at: datetime | None
    checksum: str | None  # None for rows written by the reference or before checksums


@dataclass(frozen=True, slots=True)
class Entry:
    """A version known from its file, its row, or both (one line of `status`)."""

    version: str
    migration: Migration | None
    applied: Applied | None

    @property
    def name(self) -> str:
        if self.migration is not None:
            return self.migration.name
        assert self.applied is not None, "an entry has a file or a row"
        return self.applied.name

    @property
    def state(self) -> State:
        if self.applied is None:
            return "pending"
        return "applied" if self.migration is not None else "missing file"

    @property
    def changed(self) -> bool:
        """The file differs from the one that was applied (known only with a checksum)."""
        recorded = self.applied.checksum if self.applied else None
        return (recorded is not None and self.migration is not None
                and recorded != self.migration.checksum)


def _ignore(_: object) -> None:
    return None


def display_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


@dataclass(frozen=True, slots=True)
class Database:
    """Where migrations go: a URL and a description for humans (no password)."""

    url: str
    description: str


def database_for(app: Path) -> Database:
    """The app's database by webpipe.db's rule (WP_PG_* > DATABASE_URL > config pg > embedded).

    The app file is loaded only when the environment does not decide, so a broken
    `app.wp` does not stop migrations against a server named in the environment. Starts
    the embedded server when that is the target (blocking).
    """
    target = resolve_target(None, app.resolve().parent)
    if target is None or target.data_dir is not None:
        from webpipe.program import load_program

        env = load_program(app)
        target = resolve_target(env.config_block("pg"), env.base_dir)
    if target is None:
        raise MigrationError(NOT_CONFIGURED)
    try:
        url = target_url(target)
    except EmbeddedUnavailable as exc:
        raise MigrationError(str(exc)) from None
    if target.data_dir is not None:
        return Database(url, f"embedded PostgreSQL in {target.data_dir}")
    return Database(url, f"{display_url(url)} (from {target.source})")


def _asyncpg() -> Any:
    return importlib.import_module("asyncpg")  # untyped; imported on first use


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[Connection]:
    """One connection (sessions in UTC, as the `pg` middleware's); closed on exit."""
    asyncpg = _asyncpg()
    try:
        conn: Connection = await asyncpg.connect(url, server_settings=SERVER_SETTINGS,
                                                 timeout=CONNECT_TIMEOUT)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise MigrationError(f"cannot connect to {display_url(url)}: {exc}") from None
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def _exclusive(conn: Connection, warn: Warn) -> AsyncIterator[None]:
    """Hold this tool's advisory lock, and make sure the tracking table exists."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
        warn("waiting for another `webpipe migrate` on this database to finish")
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(CREATE_TABLE)
        yield
    finally:
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def applied_migrations(conn: Connection) -> list[Applied]:
    """The rows of `_wp_migrations` in version order ([] when the table does not exist)."""
    if not await conn.fetchval(f"SELECT to_regclass('{TABLE}') IS NOT NULL"):
        return []
    rows = await conn.fetch(SELECT_APPLIED)
    return [Applied(r["version"], r["name"], r["applied_at"], r["checksum"]) for r in rows]


async def migration_status(conn: Connection, directory: Path, *,
                           warn: Warn = _ignore) -> list[Entry]:
    """Every version from the files and the table, in order; warns about changed files.

    Read-only: it neither creates the tracking table nor takes the lock.
    """
    migrations = {m.version: m for m in load_migrations(directory, warn)}
    applied = {a.version: a for a in await applied_migrations(conn)}
    entries = [Entry(v, migrations.get(v), applied.get(v))
               for v in sorted(migrations.keys() | applied.keys())]
    for entry in entries:
        if entry.changed:
            assert entry.migration is not None and entry.applied is not None
            warn(f"{entry.migration.filename} changed since it was applied (recorded sha256 "
                 f"{(entry.applied.checksum or '')[:12]}, file {entry.migration.checksum[:12]})")
    return entries


async def migrate_up(conn: Connection, directory: Path, *, steps: int | None = None,
                     warn: Warn = _ignore, done: Done = _ignore) -> list[Migration]:
    """Apply pending migrations in version order (all, or the first `steps`)."""
    async with _exclusive(conn, warn):
        entries = await migration_status(conn, directory, warn=warn)
        pending = [e.migration for e in entries if e.applied is None and e.migration]
        plan = pending if steps is None else pending[:steps]
        newest = max((e.version for e in entries if e.applied is not None), default="")
        for migration in plan:
            if migration.up.empty:
                raise MigrationError(f"{migration.filename}: the '-- UP --' section is empty")
            if migration.version < newest:
                warn(f"{migration.filename} is older than the newest applied migration "
                     f"({newest}); applying it anyway")
        for migration in plan:
            async with conn.transaction():
                await _run(conn, migration, migration.up, "UP")
                await conn.execute(INSERT, migration.version, migration.name,
                                   migration.checksum)
            done(migration)
        return plan


async def migrate_down(conn: Connection, directory: Path, *, steps: int = 1,
                       warn: Warn = _ignore, done: Done = _ignore) -> list[Migration]:
    """Roll back the `steps` most recently applied migrations, newest first."""
    async with _exclusive(conn, warn):
        entries = await migration_status(conn, directory, warn=warn)
        plan = [_rollback_target(e) for e in reversed(entries) if e.applied][:steps]
        for migration in plan:
            async with conn.transaction():
                await _run(conn, migration, migration.down, "DOWN")
                await conn.execute(DELETE, migration.version)
            done(migration)
        return plan


def _rollback_target(entry: Entry) -> Migration:
    if entry.migration is None:
        raise MigrationError(f"cannot roll back {entry.version}_{entry.name}: its file is "
                             "missing from migrations/")
    if entry.migration.down.empty:
        raise MigrationError(f"{entry.migration.filename}: the '-- DOWN --' section is "
                             "empty; write the SQL that undoes the migration (a comment "
                             "alone makes rolling back a no-op)")
    return entry.migration


async def force_version(conn: Connection, directory: Path, version: str, *,
                        warn: Warn = _ignore) -> Migration | None:
    """Record `version` as applied without running it; None if it already was."""
    async with _exclusive(conn, warn):
        entries = await migration_status(conn, directory, warn=warn)
        entry = next((e for e in entries if e.version == version), None)
        if entry is None or entry.migration is None:
            raise MigrationError(f"no migration file with version {version} in {directory}")
        if entry.applied is not None:
            return None
        migration = entry.migration
        await conn.execute(INSERT, migration.version, migration.name, migration.checksum)
        return migration


async def _run(conn: Connection, migration: Migration, section: Section, kind: str) -> None:
    """Run one section as a script inside the caller's transaction."""
    try:
        await conn.execute(section.sql)  # no arguments: simple protocol, many statements
    except _asyncpg().PostgresError as exc:
        where = f"{migration.filename}:{_error_line(section, exc)}"
        outcome = ("nothing was changed" if conn.is_in_transaction() else
                   f"statements before a COMMIT in the file may be committed; {ENDED}")
        raise MigrationError(f"{where}: {kind} failed, {outcome}: {_describe(exc)}"
                             ) from None
    if not conn.is_in_transaction():
        raise MigrationError(f"{migration.filename}: the {kind} section ended the "
                             "transaction itself (COMMIT/ROLLBACK); statements before that "
                             f"may be committed but the migration is not recorded. {ENDED}")


def _error_line(section: Section, exc: Any) -> int:
    position = getattr(exc, "position", None)  # 1-based character offset into the query
    if position is None or not str(position).isdigit():
        return section.line
    return section.line + section.sql.count("\n", 0, max(int(position) - 1, 0))


def _describe(exc: Any) -> str:
    text = f"{exc.sqlstate}: {exc}" if getattr(exc, "sqlstate", None) else str(exc)
    for label in ("detail", "hint"):
        if value := getattr(exc, label, None):
            text += f"\n  {label}: {value}"
    return text
