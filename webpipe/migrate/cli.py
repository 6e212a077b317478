"""`webpipe migrate create|up|down|status|force APP …`: the click group over `core`.

Every subcommand takes the app's `.wp` file first: migrations live in `migrations/` next to
it, `.env`/`.env.local` are read from its directory, and the database is the one its `pg`
steps use. This module parses arguments, prints and picks exit codes (0 ok, 1 error).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from webpipe.cli import PROJECT_APP
from webpipe.errors import WebpipeError
from webpipe.migrate.core import (
    Connection,
    Entry,
    connect,
    database_for,
    force_version,
    migrate_down,
    migrate_up,
    migration_status,
)
from webpipe.migrate.files import Migration, create_migration, migrations_dir

T = TypeVar("T")
Action = Callable[[Connection], Coroutine[Any, Any, T]]

APP = click.argument("app", type=click.Path(exists=True, dir_okay=False, path_type=Path))


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def _fail(exc: WebpipeError) -> NoReturn:
    click.echo(str(exc), err=True)
    sys.exit(1)


def run_action(app: Path, action: Action[T]) -> T:
    """Load the app's .env files, connect to its database and run `action` on it."""
    from webpipe.serve import load_dotenv_files

    load_dotenv_files(app.resolve().parent)
    try:
        database = database_for(app)
        click.echo(f"database: {database.description}", err=True)
        return asyncio.run(_connected(database.url, action))
    except WebpipeError as exc:
        _fail(exc)


async def _connected(url: str, action: Action[T]) -> T:
    async with connect(url) as conn:
        return await action(conn)


@click.group()
def migrate() -> None:
    """Schema migrations in migrations/ next to APP, the app's .wp file.

    \b
    webpipe migrate create APP NAME     new migrations/<UTC timestamp>_NAME.sql
    webpipe migrate up [APP] [-n N]     apply pending migrations (all, or N)
    webpipe migrate down [APP] [-n N]   roll back the newest N (default 1)
    webpipe migrate status [APP]        applied/pending, with file checksums
    webpipe migrate force APP VERSION   record VERSION as applied without running it

    APP left out is the project's app (webpipe.toml, [tool.webpipe], or the one *.wp).

    The database is the one APP's pg steps use: WP_PG_* variables, DATABASE_URL, a
    `config pg` host, else the embedded PostgreSQL in .webpipe/pgdata.
    """


@migrate.command()
@APP
@click.argument("name")
def create(app: Path, name: str) -> None:
    """Write an empty migration named NAME (letters, digits, _ and -)."""
    try:
        path = create_migration(migrations_dir(app), name)
    except WebpipeError as exc:
        _fail(exc)
    click.echo(f"created {path}")


@migrate.command()
@PROJECT_APP
@click.option("-n", "steps", type=click.IntRange(min=1), default=None, metavar="N",
              help="Apply at most N migrations (default: all pending).")
def up(app: Path, steps: int | None) -> None:
    """Apply pending migrations in version order, each in its own transaction."""
    def action(conn: Connection) -> Coroutine[Any, Any, list[Migration]]:
        return migrate_up(conn, migrations_dir(app), steps=steps, warn=_warn,
                          done=lambda m: click.echo(f"applied {m.filename}"))

    applied = run_action(app, action)
    click.echo(f"{len(applied)} migration(s) applied" if applied else "no pending migrations")


@migrate.command()
@PROJECT_APP
@click.option("-n", "steps", type=click.IntRange(min=1), default=1, metavar="N",
              show_default=True,
              help="Roll back this many migrations, newest first.")
def down(app: Path, steps: int) -> None:
    """Roll back the most recently applied migrations with their DOWN sections."""
    def action(conn: Connection) -> Coroutine[Any, Any, list[Migration]]:
        return migrate_down(conn, migrations_dir(app), steps=steps, warn=_warn,
                            done=lambda m: click.echo(f"rolled back {m.filename}"))

    undone = run_action(app, action)
    click.echo(f"{len(undone)} migration(s) rolled back" if undone
               else "no applied migrations")


@migrate.command()
@PROJECT_APP
def status(app: Path) -> None:
    """List every migration: applied or pending, when, and its file's sha256."""
    entries = run_action(app, lambda conn: migration_status(conn, migrations_dir(app),
                                                            warn=_warn))
    if not entries:
        click.echo(f"no migrations in {migrations_dir(app)}")
        return
    click.echo(f"{'VERSION':<16}{'NAME':<32}{'STATUS':<20}{'APPLIED AT':<21}SHA256")
    for entry in entries:
        click.echo(status_line(entry))
    applied = sum(entry.applied is not None for entry in entries)
    click.echo(f"{len(entries)} migration(s): {applied} applied, "
               f"{len(entries) - applied} pending")


def status_line(entry: Entry) -> str:
    """One row of `status`; the checksum is the file's (the recorded one without a file)."""
    state = "applied (changed)" if entry.changed else entry.state
    when = entry.applied.applied_at if entry.applied else None
    stamp = when.strftime("%Y-%m-%d %H:%M:%S") if when else ""
    digest = (entry.migration.checksum if entry.migration
              else (entry.applied.checksum if entry.applied else None)) or "-"
    return f"{entry.version:<16}{entry.name:<32}{state:<20}{stamp:<21}{digest[:12]}"


@migrate.command()
@APP
@click.argument("version")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def force(app: Path, version: str, yes: bool) -> None:
    """Record VERSION as applied WITHOUT running it (e.g. for a schema made by hand)."""
    if not (version.isdigit() and len(version) == 14):
        raise click.BadParameter("a version is the 14-digit prefix of a migration file",
                                 param_hint="VERSION")
    if not yes:
        answer = click.prompt(f"Record {version} as applied without running it? "
                              "Type 'yes' to continue", default="", show_default=False)
        if answer.strip().lower() != "yes":
            click.echo("aborted", err=True)
            sys.exit(1)
    forced = run_action(app, lambda conn: force_version(conn, migrations_dir(app), version,
                                                         warn=_warn))
    click.echo(f"recorded {forced.filename} as applied" if forced
               else f"{version} is already applied")
