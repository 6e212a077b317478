"""`webpipe migrate` against a real PostgreSQL (middleware.md §17, spec/migrate.md).

One embedded server is started per session; every test gets a fresh database on it and
reaches it through `DATABASE_URL` (the CLI) or a direct connection (the core functions).
One test uses no settings at all and so exercises the embedded default.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.support import with_database
from webpipe.cli import cli
from webpipe.migrate.core import (
    Connection,
    connect,
    database_for,
    display_url,
    force_version,
    migrate_down,
    migrate_up,
    migration_status,
)
from webpipe.migrate.files import (
    MigrationError,
    create_migration,
    load_migrations,
    migrations_dir,
    parse_sections,
)
from webpipe.pgembed import default_data_dir, embedded_url
from webpipe.program import load_program
from webpipe.scaffold import init_project
from webpipe.server import build_served, create_app

PG_VARS = ("WP_PG_HOST", "WP_PG_PORT", "WP_PG_DATABASE", "WP_PG_USER", "WP_PG_PASSWORD",
           "DATABASE_URL", "WP_PG_EMBEDDED")
APP = "GET /ping\n  |> jq: `{ pong: true }`\n"
NOTES = """-- UP --
CREATE TABLE notes (id SERIAL PRIMARY KEY, text TEXT NOT NULL);
INSERT INTO notes (text) VALUES ('first'), ('second');

-- DOWN --
DROP TABLE notes;
"""
TAGS = """-- up --
CREATE TABLE tags (id SERIAL PRIMARY KEY, note_id INT REFERENCES notes (id));
-- down --
DROP TABLE tags;
"""


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("migrate-server")


@pytest.fixture(scope="session")
def server_url(server_dir: Path) -> str:
    """The session's embedded server (stopped by pgserver at exit)."""
    return embedded_url(default_data_dir(server_dir))


@pytest.fixture(autouse=True)
def _no_pg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PG_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def db_url(server_url: str) -> str:
    """A fresh, empty database on the session's server."""
    name = f"mig_{uuid.uuid4().hex[:12]}"
    async with connect(server_url) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[Connection]:
    async with connect(db_url) as connection:
        yield connection


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app.wp"
    path.write_text(APP)
    return path


def write(app: Path, version: str, name: str, text: str) -> Path:
    path = migrations_dir(app) / f"{version}_{name}.sql"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


async def tables(conn: Connection) -> list[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                            "ORDER BY 1")
    return [r["tablename"] for r in rows]


async def tracked(conn: Connection) -> list[tuple[str, str, str | None]]:
    rows = await conn.fetch("SELECT version, name, checksum FROM _wp_migrations ORDER BY 1")
    return [(r["version"], r["name"], r["checksum"]) for r in rows]


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["migrate", *args], env=env, input=stdin)


# -- files -------------------------------------------------------------------------------


def test_sections_split_at_markers_case_insensitively() -> None:
    text = "-- header comment\n-- Up --\nSELECT 1;\n-- DOWN -- undo\nSELECT 2;\n"
    up, down = parse_sections(text, "x.sql")
    assert (up.sql, up.line) == ("SELECT 1;\n", 3)
    assert (down.sql, down.line) == ("SELECT 2;\n", 5)


@pytest.mark.parametrize(("text", "problem"), [
    ("SELECT 1;\n-- DOWN --\n", "missing the '-- UP --' marker"),
    ("-- UP --\nSELECT 1;\n", "missing the '-- DOWN --' marker"),
    ("-- DOWN --\n-- UP --\n", "'-- DOWN --' must come after '-- UP --'"),
    ("-- UP --\n-- UP --\n-- DOWN --\n", "more than one '-- UP --' marker"),
    ("CREATE TABLE x (id int);\n-- UP --\n-- DOWN --\n", "SQL before '-- UP --' would never run"),
])
def test_malformed_files_are_errors(text: str, problem: str) -> None:
    with pytest.raises(MigrationError, match="^error: x.sql: " + re.escape(problem)):
        parse_sections(text, "x.sql")


def test_create_writes_a_template_and_keeps_versions_unique(app: Path) -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    first = create_migration(migrations_dir(app), "create_notes", now=moment)
    second = create_migration(migrations_dir(app), "add-tags", now=moment)
    assert (first.name, second.name) == ("20240501120000_create_notes.sql",
                                         "20240501120001_add-tags.sql")
    assert first.read_text() == "-- UP --\n\n\n-- DOWN --\n\n"
    assert [m.name for m in load_migrations(migrations_dir(app))] == ["create_notes", "add-tags"]
    with pytest.raises(MigrationError, match="may only use letters"):
        create_migration(migrations_dir(app), "two words")


def test_badly_named_files_are_skipped_with_a_warning(app: Path) -> None:
    write(app, "20240101000000", "ok", NOTES)
    (migrations_dir(app) / "notes.sql").write_text(NOTES)
    (migrations_dir(app) / "README.md").write_text("not a migration")
    warnings: list[str] = []
    assert [m.name for m in load_migrations(migrations_dir(app), warnings.append)] == ["ok"]
    assert warnings == ["skipping notes.sql: migration files are named "
                        "<YYYYMMDDHHMMSS>_<name>.sql"]


def test_two_files_with_one_version_are_an_error(app: Path) -> None:
    write(app, "20240101000000", "a", NOTES)
    write(app, "20240101000000", "b", NOTES)
    with pytest.raises(MigrationError, match="have the same version 20240101000000"):
        load_migrations(migrations_dir(app))


def test_display_url_hides_the_password() -> None:
    assert display_url("postgres://u:secret@h:5432/db") == "postgres://u:***@h:5432/db"
    assert display_url("postgresql://postgres:@/postgres?host=/x") == \
        "postgresql://postgres:***@/postgres?host=/x"
    assert display_url("postgres://h/db") == "postgres://h/db"


# -- core, against the database ----------------------------------------------------------


async def test_up_status_down_status(conn: Connection, app: Path) -> None:
    write(app, "20240101000000", "create_notes", NOTES)
    write(app, "20240102000000", "add_tags", TAGS)
    folder = migrations_dir(app)
    assert [e.state for e in await migration_status(conn, folder)] == ["pending", "pending"]
    assert await tables(conn) == []  # status is read-only: no tracking table yet

    done: list[str] = []
    applied = await migrate_up(conn, folder, done=lambda m: done.append(m.label))
    assert [m.name for m in applied] == ["create_notes", "add_tags"]
    assert done == ["20240101000000_create_notes", "20240102000000_add_tags"]
    assert await tables(conn) == ["_wp_migrations", "notes", "tags"]
    assert await conn.fetchval("SELECT count(*) FROM notes") == 2
    entries = await migration_status(conn, folder)
    assert [(e.version, e.state) for e in entries] == [("20240101000000", "applied"),
                                                       ("20240102000000", "applied")]
    assert entries[0].applied is not None and entries[0].applied.applied_at is not None
    assert [c for _, _, c in await tracked(conn)] == [m.checksum for m in applied]

    assert [m.name for m in await migrate_down(conn, folder)] == ["add_tags"]
    assert await tables(conn) == ["_wp_migrations", "notes"]
    assert [e.state for e in await migration_status(conn, folder)] == ["applied", "pending"]
    assert await migrate_up(conn, folder) != []
    assert await migrate_up(conn, folder) == []  # nothing pending


async def test_steps_limit_up_and_down(conn: Connection, app: Path) -> None:
    for i, table in enumerate(("a", "b", "c", "d")):
        write(app, f"2024010{i + 1}000000", f"create_{table}",
              f"-- UP --\nCREATE TABLE {table} (id int);\n-- DOWN --\nDROP TABLE {table};\n")
    folder = migrations_dir(app)
    assert [m.name for m in await migrate_up(conn, folder, steps=2)] == ["create_a", "create_b"]
    assert await tables(conn) == ["_wp_migrations", "a", "b"]
    assert [m.name for m in await migrate_up(conn, folder, steps=1)] == ["create_c"]
    down = await migrate_down(conn, folder, steps=2)
    assert [m.name for m in down] == ["create_c", "create_b"]  # newest first
    assert await tables(conn) == ["_wp_migrations", "a"]
    assert [m.name for m in await migrate_down(conn, folder, steps=10)] == ["create_a"]
    assert await migrate_down(conn, folder) == []


async def test_force_records_without_running(conn: Connection, app: Path) -> None:
    path = write(app, "20240101000000", "create_notes", NOTES)
    folder = migrations_dir(app)
    forced = await force_version(conn, folder, "20240101000000")
    assert forced is not None and forced.path == path
    assert await tables(conn) == ["_wp_migrations"]  # the UP section did not run
    assert [(v, n) for v, n, _ in await tracked(conn)] == [("20240101000000", "create_notes")]
    assert await force_version(conn, folder, "20240101000000") is None  # already applied
    assert await migrate_up(conn, folder) == []
    with pytest.raises(MigrationError, match="no migration file with version 20990101000000"):
        await force_version(conn, folder, "20990101000000")


async def test_a_failing_migration_changes_nothing(conn: Connection, app: Path) -> None:
    write(app, "20240101000000", "create_notes", NOTES)
    folder = migrations_dir(app)
    await migrate_up(conn, folder)
    before = (await tables(conn), await tracked(conn))
    write(app, "20240102000000", "broken", "-- UP --\nCREATE TABLE tags (id int);\n"
          "INSERT INTO notes (text) VALUES ('third');\n\nSELEC 1;\n-- DOWN --\nSELECT 1;\n")
    with pytest.raises(MigrationError) as failure:
        await migrate_up(conn, folder)
    assert failure.value.message.startswith(
        '20240102000000_broken.sql:5: UP failed, nothing was changed: 42601: syntax error at '
        'or near "SELEC"')
    assert (await tables(conn), await tracked(conn)) == before
    assert await conn.fetchval("SELECT count(*) FROM notes") == 2


async def test_a_failure_mid_run_keeps_the_migrations_before_it(conn: Connection,
                                                                app: Path) -> None:
    write(app, "20240101000000", "create_notes", NOTES)
    write(app, "20240102000000", "broken", "-- UP --\nCREATE TABLE tags (id int);\n"
          "INSERT INTO missing VALUES (1);\n-- DOWN --\nDROP TABLE tags;\n")
    write(app, "20240103000000", "never", "-- UP --\nCREATE TABLE never (id int);\n"
          "-- DOWN --\nDROP TABLE never;\n")
    done: list[str] = []
    with pytest.raises(MigrationError, match=r"broken.sql:3: UP failed.*42P01"):
        await migrate_up(conn, migrations_dir(app), done=lambda m: done.append(m.name))
    assert done == ["create_notes"]
    assert await tables(conn) == ["_wp_migrations", "notes"]
    assert [v for v, _, _ in await tracked(conn)] == ["20240101000000"]


async def test_a_failing_down_changes_nothing(conn: Connection, app: Path) -> None:
    write(app, "20240101000000", "create_notes",
          NOTES.replace("DROP TABLE notes;", "DROP TABLE notes;\nDROP TABLE missing;"))
    folder = migrations_dir(app)
    await migrate_up(conn, folder)
    before = (await tables(conn), await tracked(conn))
    with pytest.raises(MigrationError, match=r"create_notes.sql:6: DOWN failed.*42P01"):
        await migrate_down(conn, folder)
    assert (await tables(conn), await tracked(conn)) == before


async def test_sections_run_as_multi_statement_scripts(conn: Connection, app: Path) -> None:
    write(app, "20240101000000", "script", """-- UP --
CREATE TABLE counters (name TEXT PRIMARY KEY, n INT NOT NULL DEFAULT 0);
CREATE FUNCTION bump(key TEXT) RETURNS INT LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO counters (name, n) VALUES (key, 1)
    ON CONFLICT (name) DO UPDATE SET n = counters.n + 1;
  RETURN (SELECT n FROM counters WHERE name = key);
END;
$$;
DO $$ BEGIN PERFORM bump('a'); PERFORM bump('a'); END $$;
INSERT INTO counters VALUES ('semi;colon', 7); -- a comment; with a semicolon
-- DOWN --
DROP FUNCTION bump(TEXT);
DROP TABLE counters;
""")
    folder = migrations_dir(app)
    await migrate_up(conn, folder)
    rows = await conn.fetch("SELECT name, n FROM counters ORDER BY name")
    assert [(r["name"], r["n"]) for r in rows] == [("a", 2), ("semi;colon", 7)]
    await migrate_down(conn, folder)
    assert await tables(conn) == ["_wp_migrations"]
    assert await conn.fetchval("SELECT count(*) FROM pg_proc WHERE proname = 'bump'") == 0


async def test_a_changed_applied_file_warns(conn: Connection, app: Path) -> None:
    path = write(app, "20240101000000", "create_notes", NOTES)
    folder = migrations_dir(app)
    [applied] = await migrate_up(conn, folder)
    warnings: list[str] = []
    [entry] = await migration_status(conn, folder, warn=warnings.append)
    assert (entry.changed, warnings) == (False, [])
    path.write_text(NOTES + "-- an edit after the fact\n")
    [entry] = await migration_status(conn, folder, warn=warnings.append)
    assert entry.changed and entry.migration is not None
    assert warnings == [f"20240101000000_create_notes.sql changed since it was applied "
                        f"(recorded sha256 {applied.checksum[:12]}, "
                        f"file {entry.migration.checksum[:12]})"]
    await migrate_up(conn, folder, warn=warnings.append)  # up warns too
    assert len(warnings) == 2


async def test_empty_sections_are_refused_before_anything_runs(conn: Connection,
                                                               app: Path) -> None:
    write(app, "20240101000000", "create_notes", NOTES)
    create_migration(migrations_dir(app), "todo")
    with pytest.raises(MigrationError, match="the '-- UP --' section is empty"):
        await migrate_up(conn, migrations_dir(app))
    assert await tables(conn) == ["_wp_migrations"]  # not even the first one ran
    write(app, "20240101000000", "create_notes", NOTES.replace("DROP TABLE notes;", ""))
    for extra in migrations_dir(app).glob("*_todo.sql"):
        extra.unlink()
    await migrate_up(conn, migrations_dir(app))
    with pytest.raises(MigrationError, match="the '-- DOWN --' section is empty"):
        await migrate_down(conn, migrations_dir(app))


async def test_transaction_control_in_a_file_is_reported(conn: Connection, app: Path) -> None:
    write(app, "20240101000000", "commits", "-- UP --\nCREATE TABLE a (id int);\nCOMMIT;\n"
          "-- DOWN --\nDROP TABLE a;\n")
    with pytest.raises(MigrationError, match=r"ended the transaction itself.*not recorded"):
        await migrate_up(conn, migrations_dir(app))
    assert await tracked(conn) == []


async def test_an_applied_version_without_its_file(conn: Connection, app: Path) -> None:
    path = write(app, "20240101000000", "create_notes", NOTES)
    await migrate_up(conn, migrations_dir(app))
    path.unlink()
    [entry] = await migration_status(conn, migrations_dir(app))
    assert (entry.state, entry.name) == ("missing file", "create_notes")
    with pytest.raises(MigrationError, match="cannot roll back 20240101000000_create_notes"):
        await migrate_down(conn, migrations_dir(app))


async def test_reads_a_tracking_table_without_checksums(conn: Connection, app: Path) -> None:
    # the reference's table has no checksum column; status reads it, up adds the column
    await conn.execute("CREATE TABLE _wp_migrations (id SERIAL PRIMARY KEY, version "
                       "VARCHAR(14) UNIQUE NOT NULL, name TEXT NOT NULL, applied_at "
                       "TIMESTAMP DEFAULT NOW());"
                       "INSERT INTO _wp_migrations (version, name) VALUES "
                       "('20240101000000', 'create_notes')")
    write(app, "20240101000000", "create_notes", NOTES)
    write(app, "20240102000000", "add_tags", TAGS.replace("REFERENCES notes (id)", ""))
    entries = await migration_status(conn, migrations_dir(app))
    assert [(e.state, e.changed) for e in entries] == [("applied", False), ("pending", False)]
    assert [m.name for m in await migrate_up(conn, migrations_dir(app))] == ["add_tags"]
    assert [c is None for _, _, c in await tracked(conn)] == [True, False]


# -- the command line --------------------------------------------------------------------


def test_cli_round_trip_through_database_url(app: Path, db_url: str) -> None:
    env = {"DATABASE_URL": db_url}
    created = run_cli("create", str(app), "create_notes")
    assert created.exit_code == 0, created.output
    [path] = migrations_dir(app).glob("*_create_notes.sql")
    path.write_text(NOTES)
    version = path.name[:14]

    up = run_cli("up", str(app), env=env)
    assert up.exit_code == 0, up.output
    assert up.stdout == f"applied {path.name}\n1 migration(s) applied\n"
    assert "database: postgresql://postgres:***@/" in up.stderr
    assert "(from DATABASE_URL)" in up.stderr

    status = run_cli("status", str(app), env=env)
    lines = status.stdout.splitlines()
    assert lines[0].split() == ["VERSION", "NAME", "STATUS", "APPLIED", "AT", "SHA256"]
    assert lines[1].split()[:3] == [version, "create_notes", "applied"]
    assert lines[1].endswith(load_migrations(migrations_dir(app))[0].checksum[:12])
    assert lines[2] == "1 migration(s): 1 applied, 0 pending"

    path.write_text(NOTES + "\n")
    changed = run_cli("status", str(app), env=env)
    assert "applied (changed)" in changed.stdout
    assert "warning: " + path.name + " changed since it was applied" in changed.stderr

    down = run_cli("down", str(app), "-n", "1", env=env)
    assert down.stdout == f"rolled back {path.name}\n1 migration(s) rolled back\n"
    assert run_cli("down", str(app), env=env).stdout == "no applied migrations\n"
    assert "0 applied, 1 pending" in run_cli("status", str(app), env=env).stdout


def test_cli_force_asks_for_yes(app: Path, db_url: str) -> None:
    env = {"DATABASE_URL": db_url}
    path = write(app, "20240101000000", "create_notes", NOTES)
    refused = run_cli("force", str(app), "20240101000000", env=env, stdin="no\n")
    assert refused.exit_code == 1 and "aborted" in refused.stderr
    forced = run_cli("force", str(app), "20240101000000", env=env, stdin="yes\n")
    assert forced.exit_code == 0, forced.output
    assert f"recorded {path.name} as applied" in forced.stdout
    again = run_cli("force", str(app), "20240101000000", "--yes", env=env)
    assert again.stdout == "20240101000000 is already applied\n"
    bad = run_cli("force", str(app), "2024", "--yes", env=env)
    assert bad.exit_code == 2 and "14-digit" in bad.stderr


def test_cli_errors_exit_1_with_the_message(app: Path, db_url: str) -> None:
    write(app, "20240101000000", "broken", "-- UP --\nSELEC 1;\n-- DOWN --\n")
    failed = run_cli("up", str(app), env={"DATABASE_URL": db_url})
    assert failed.exit_code == 1
    assert "error: 20240101000000_broken.sql:2: UP failed" in failed.stderr
    bad_name = run_cli("create", str(app), "no spaces")
    assert bad_name.exit_code == 1 and "may only use letters" in bad_name.stderr
    unreachable = run_cli("status", str(app),
                          env={"DATABASE_URL": "postgres://u:pw@127.0.0.1:1/db"})
    assert unreachable.exit_code == 1
    assert "cannot connect to postgres://u:***@127.0.0.1:1/db" in unreachable.stderr


def test_cli_uses_wp_pg_variables(app: Path, db_url: str) -> None:
    parts = urlsplit(db_url)
    socket_dir = dict(p.split("=", 1) for p in parts.query.split("&"))["host"]
    env = {"WP_PG_HOST": socket_dir, "WP_PG_DATABASE": parts.path.lstrip("/"),
           "DATABASE_URL": "postgres://ignored@127.0.0.1:1/nope"}
    write(app, "20240101000000", "create_notes", NOTES)
    up = run_cli("up", str(app), env=env)
    assert up.exit_code == 0, up.output
    assert "(from WP_PG_*)" in up.stderr


def test_cli_reads_the_apps_dotenv(app: Path, db_url: str) -> None:
    (app.parent / ".env").write_text(f"DATABASE_URL={db_url}\n")
    write(app, "20240101000000", "create_notes", NOTES)
    up = run_cli("up", str(app))
    assert up.exit_code == 0, up.output
    assert "(from DATABASE_URL)" in up.stderr


def test_a_broken_app_does_not_block_an_environment_database(app: Path, db_url: str,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    app.write_text("GET /x\n  |> pipeline: nowhere\n  |> |>\n")
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert database_for(app).url == db_url


def test_cli_defaults_to_the_embedded_server(server_dir: Path, server_url: str) -> None:
    app = server_dir / "app.wp"  # the session server's directory: its embedded database
    app.write_text(APP)
    write(app, "20240101000000", "create_notes", NOTES)
    up = run_cli("up", str(app))
    assert up.exit_code == 0, up.output
    assert f"database: embedded PostgreSQL in {default_data_dir(server_dir)}" in up.stderr
    assert run_cli("down", str(app)).exit_code == 0


def test_bare_migrate_commands_find_the_project(tmp_path: Path, db_url: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    init_project(tmp_path, name="starter")  # writes webpipe.toml naming app.wp
    monkeypatch.chdir(tmp_path / "migrations")  # from a folder below the project too
    env = {"DATABASE_URL": db_url}
    up = run_cli("up", env=env)
    assert up.exit_code == 0, up.output
    assert up.stdout.endswith("_create_notes.sql\n1 migration(s) applied\n")
    status = run_cli("status", env=env)
    assert status.stdout.splitlines()[-1] == "1 migration(s): 1 applied, 0 pending"
    assert run_cli("down", env=env).stdout.endswith("1 migration(s) rolled back\n")
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    (tmp_path / "webpipe.toml").unlink()
    outside = run_cli("status", env=env)
    assert outside.exit_code == 1
    assert "error: no app file: no *.wp file in " in outside.output


# -- the starter project's migration and app, for real -----------------------------------


async def test_the_starter_project_runs_on_its_migration(tmp_path: Path, conn: Connection,
                                                         db_url: str,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         ) -> None:
    init_project(tmp_path, name="starter")
    assert [m.name for m in await migrate_up(conn, migrations_dir(tmp_path / "app.wp"))] == \
        ["create_notes"]
    monkeypatch.setenv("DATABASE_URL", db_url)
    env = load_program(tmp_path / "app.wp")
    transport = httpx.ASGITransport(app=create_app(build_served(env)))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            empty = await client.get("/")
            created = await client.post("/api/notes", json={"text": "from the test"})
            listed: Any = (await client.get("/api/notes")).json()
            page = await client.get("/")
    finally:
        await env.aclose()
    assert empty.status_code == 200 and 'class="empty"' in empty.text
    assert created.status_code == 201 and created.json()["text"] == "from the test"
    assert listed["count"] == 1
    assert '<li class="note">from the test</li>' in page.text
    await migrate_down(conn, migrations_dir(tmp_path / "app.wp"))
    assert await tables(conn) == ["_wp_migrations"]
