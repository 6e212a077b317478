"""Issue 24: SQL checked against the real (embedded) PostgreSQL before the first request.

One embedded server per module; every test gets a fresh database on it as the app's
`DATABASE_URL`. Apps with migrations are checked on a scratch database built from them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.hostile.harness import free_port, serve
from tests.support import with_database
from webpipe.check import check_file
from webpipe.errors import Diagnostic
from webpipe.migrate.core import migrate_up
from webpipe.pgembed import default_data_dir, embedded_url
from webpipe.program import load_program
from webpipe.sqlcheck import DatabaseUnavailable, check_sql_blocking
from webpipe.sqlcheck.database import SCRATCH_PREFIX

PG_VARS = ("WP_PG_HOST", "WP_PG_PORT", "WP_PG_DATABASE", "WP_PG_USER", "WP_PG_PASSWORD",
           "DATABASE_URL", "WP_PG_EMBEDDED", "WEBPIPE_DB_CHECK")
USERS = """-- UP --
CREATE TABLE users (id SERIAL PRIMARY KEY, name TEXT NOT NULL);
-- DOWN --
DROP TABLE users;
"""
EMAIL = """-- UP --
ALTER TABLE users ADD COLUMN email TEXT;
-- DOWN --
ALTER TABLE users DROP COLUMN email;
"""
# one mistake of each kind, each on a line of its own (the comment names it)
TYPOS = '''pg byId = `SELECT id, name FROM users WHERE id = $1`
pg badColumn = `SELECT id, nmae FROM users`
pg report = """SELECT id,
  count(*) FROM users
  GROUP BY"""

GET /users/:id
  |> pg([.params.id]): byId
  |> jq: `.data.byId.rows[0]`

GET /table
  |> pg: `SELECT id FROM userz`

GET /syntax
  |> pg: "SELECT id FORM users"

GET /count
  |> pg([1, 2]): `SELECT name FROM users WHERE id = $1`

GET /type
  |> pg: `SELECT id FROM users WHERE name > 1`

GET /lua
  |> lua: `return executeSql("SELECT nope FROM users", {})`

GET /js
  |> js: `return executeSql('SELECT id FROM userss')`
'''
CLEAN = '''pg byId = `SELECT id, name FROM users WHERE id = $1`

GET /users/:id
  |> pg([.params.id | tonumber]): byId

GET /echo/:x
  |> pg([.params.x]): `SELECT $1 AS echo, $1::int + 1 AS next`

GET /script
  |> pg: `CREATE TEMP TABLE t (x int); DROP TABLE t`

GET /new
  |> jq: `{ sqlParams: [.body.name] }`
  |> pg: `INSERT INTO users (name) VALUES ($1) RETURNING id`
'''


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return embedded_url(default_data_dir(tmp_path_factory.mktemp("sqlcheck-server")))


@pytest.fixture(autouse=True)
def _no_pg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PG_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def db_url(server_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database on the module's server, set as the app's DATABASE_URL."""
    name = f"app_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(server_url, name)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[Any]:
    connection = await asyncpg.connect(db_url)
    yield connection
    await connection.close()


def write_app(tmp_path: Path, text: str, *migrations: tuple[str, str]) -> Path:
    app = tmp_path / "app.wp"
    app.write_text(text)
    for version, body in migrations:
        folder = tmp_path / "migrations"
        folder.mkdir(exist_ok=True)
        (folder / f"{version}_m.sql").write_text(body)
    return app


def unapplied_only(diagnostics: list[Diagnostic]) -> bool:
    """Nothing but the warning that the (fresh) dev database lacks the migrations."""
    return all(d.code == "sql-migrations" and d.severity == "warning" for d in diagnostics)


def found(diagnostics: list[Diagnostic]) -> list[tuple[str, str, int, int, str]]:
    return [(d.severity, d.code, d.span.line if d.span else 0,
             d.span.column if d.span else 0, d.message) for d in diagnostics]


async def test_one_typo_of_each_kind_gives_exactly_those_diagnostics(
        tmp_path: Path, db_url: str) -> None:
    app = write_app(tmp_path, TYPOS, ("20260101000000", USERS))
    diagnostics = check_file(app, db=True)
    assert found(diagnostics) == [
        ("warning", "sql-migrations", 0, 0,
         "1 migration(s) not applied to the app's database (20260101000000_m.sql): the "
         "statements were checked on the schema the migrations make; apply them with "
         "`webpipe migrate up app.wp`"),
        ("error", "sql", 2, 28, 'column "nmae" does not exist'),
        ("error", "sql", 5, 11, 'syntax error at end of input'),
        ("warning", "sql-params", 8, 3,
         "$1 is int4 to PostgreSQL, but .params.id is a route parameter no step converts: "
         "a path segment that is not a number (say `abc`) stays a string, binds as text and "
         "fails the statement with a sqlError; check or convert it first "
         "(.params.id | tonumber)"),
        ("error", "sql", 12, 26, 'relation "userz" does not exist'),
        ("error", "sql", 15, 26, 'syntax error at or near "users"'),
        ("error", "sql-params", 18, 3,
         f"pg passes 2 parameter(s), but the statement at {app}:18:19 has 1 "
         "(placeholders: $1)"),
        ("error", "sql", 21, 43, "operator does not exist: text > integer"),
        ("error", "sql", 24, 38, 'column "nope" does not exist'),
        ("error", "sql", 27, 45, 'relation "userss" does not exist'),
    ]
    by_line = {d.span.line: d for d in diagnostics if d.span}
    assert by_line[2].notes == ('hint: Perhaps you meant to reference the column '
                                '"users.name".',)
    assert by_line[21].notes and by_line[21].notes[0].startswith("hint: No operator matches")
    assert by_line[2].span.end_column - by_line[2].span.column == len("nmae")


POSTS = """-- UP --
CREATE TABLE posts (id SERIAL PRIMARY KEY, slug TEXT NOT NULL, token UUID);
-- DOWN --
DROP TABLE posts;
"""
ROUTE_PARAMS = """GET /posts/:slug
  |> pg([.params.slug]): `SELECT id FROM posts WHERE slug = $1`
GET /tokens/:token
  |> pg([.params.token]): `SELECT id FROM posts WHERE token = $1`
GET /n/:id
  |> pg([.params.id]): `SELECT id FROM posts WHERE id = $1::int`
GET /m/:id
  |> pg([.params.id | tonumber]): `SELECT id FROM posts WHERE id = $1`
GET /e/:x
  |> pg([.params.x]): `SELECT $1 AS echo`
GET /c/:id
  |> jq: `.params.id |= tonumber`
  |> pg([.params.id]): `SELECT id FROM posts WHERE id = $1`
"""


async def test_route_parameters_are_probed_as_pg_binds_them(tmp_path: Path,
                                                            db_url: str) -> None:
    """Route parameters are number-coerced: each is prepared bound as text and as int8."""
    app = write_app(tmp_path, ROUTE_PARAMS, ("20260101000000", POSTS))
    diagnostics = check_file(app, db=True)
    assert found([d for d in diagnostics if d.code != "sql-migrations"]) == [
        ("warning", "sql-params", 2, 3,
         "$1 is text to PostgreSQL, but .params.slug is a route parameter no step converts: "
         "a path segment that looks like a number (say `42`) becomes one, binds as int8 and "
         "fails the statement with a sqlError; convert it first (.params.slug | tostring) "
         "or cast it in SQL ($1::text)"),
        ("warning", "sql-params", 4, 3,
         "$1 is uuid to PostgreSQL, but .params.token is a route parameter no step converts: "
         "bound as text or as a number, the statement fails either way; cast it in SQL "
         "($1::uuid)"),
    ]


async def test_a_migration_that_adds_a_column_makes_the_check_pass(
        tmp_path: Path, conn: Any) -> None:
    app = write_app(tmp_path, "GET /u\n  |> pg: `SELECT id, email FROM users`\n",
                    ("20260101000000", USERS))
    await migrate_up(conn, tmp_path / "migrations")  # the dev database is up to date
    assert found(check_file(app, db=True)) == [
        ("error", "sql", 2, 22, 'column "email" does not exist')]
    write_app(tmp_path, app.read_text(), ("20260102000000", EMAIL))
    [pending] = check_file(app, db=True)
    assert pending.severity == "warning" and "(20260102000000_m.sql)" in pending.message
    await migrate_up(conn, tmp_path / "migrations")
    assert check_file(app, db=True) == []


async def test_the_dev_database_is_untouched(tmp_path: Path, conn: Any) -> None:
    await conn.execute("CREATE TABLE users (id SERIAL PRIMARY KEY, name TEXT NOT NULL);"
                       "INSERT INTO users (name) VALUES ('ada'), ('brian')")
    before = [tuple(r) for r in await conn.fetch("SELECT * FROM users ORDER BY id")]
    app = write_app(tmp_path, TYPOS, ("20260101000000", USERS), ("20260102000000", EMAIL))
    done = subprocess.run([sys.executable, "-m", "webpipe", "check", "--db", str(app)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "database: scratch database _wp_check_" in done.stderr
    assert 'app.wp:2:28: error: column "nmae" does not exist' in done.stderr
    assert [tuple(r) for r in await conn.fetch("SELECT * FROM users ORDER BY id")] == before
    tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert [r["tablename"] for r in tables] == ["users"]  # no migration ran here
    columns = await conn.fetch("SELECT column_name FROM information_schema.columns "
                               "WHERE table_name = 'users' ORDER BY 1")
    assert [r["column_name"] for r in columns] == ["id", "name"]


async def test_without_migrations_the_app_database_is_used_read_only(
        tmp_path: Path, conn: Any) -> None:
    await conn.execute("CREATE TABLE users (id SERIAL PRIMARY KEY, name TEXT NOT NULL);"
                       "INSERT INTO users (name) VALUES ('ada')")
    app = write_app(tmp_path, CLEAN + "\nGET /del\n  |> pg: `DELETE FROM users`\n")
    env = load_program(app)
    report = check_sql_blocking(env)
    assert report.diagnostics == []
    assert "no migrations" in report.database
    assert await conn.fetchval("SELECT count(*) FROM users") == 1
    shape = report.prepared["SELECT id, name FROM users WHERE id = $1"]
    assert [(c.name, c.type) for c in shape.columns] == [("id", "int4"), ("name", "text")]
    assert shape.params == ("int4",)


async def test_the_scratch_database_is_reused_and_replaced(
        tmp_path: Path, db_url: str, server_url: str) -> None:
    app = write_app(tmp_path, CLEAN, ("20260101000000", USERS))
    first = check_sql_blocking(load_program(app))
    assert unapplied_only(first.diagnostics)
    again = check_sql_blocking(load_program(app))
    assert again.database == first.database
    write_app(tmp_path, CLEAN, ("20260102000000", EMAIL))
    changed = check_sql_blocking(load_program(app))
    assert changed.database != first.database
    admin = await asyncpg.connect(server_url)
    try:
        names = [r["datname"] for r in await admin.fetch(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", SCRATCH_PREFIX)]
    finally:
        await admin.close()
    new, old = changed.database.split()[2], first.database.split()[2]
    assert new[:19] == old[:19]  # one app
    assert new in names and old not in names  # the app's older one was dropped


async def test_a_broken_migration_is_one_error(tmp_path: Path, db_url: str) -> None:
    app = write_app(tmp_path, CLEAN, ("20260101000000", "-- UP --\nCREATE TABLE (;\n"
                                                         "-- DOWN --\n"))
    [problem] = check_file(app, db=True)
    assert problem.code == "sql-migrations" and "20260101000000_m.sql" in problem.message


def test_no_database_is_an_error_for_check_and_a_warning_for_serve(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgres://postgres@127.0.0.1:{free_port()}/x")
    app = write_app(tmp_path, CLEAN)
    [problem] = check_file(app, db=True)
    assert problem.severity == "error" and problem.code == "sql-database"
    assert problem.message.startswith("SQL statements not checked: cannot connect to")
    from webpipe.sqlcheck.check import serve_diagnostics

    [warning] = serve_diagnostics(load_program(app))
    assert warning.severity == "warning"
    with pytest.raises(DatabaseUnavailable):
        check_sql_blocking(load_program(app))


def test_a_program_without_sql_needs_no_database(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WP_PG_EMBEDDED", "0")
    app = write_app(tmp_path, "GET /a\n  |> jq: `{ a: 1 }`\n")
    assert check_file(app, db=True) == []


def test_check_db_json_and_exit_codes(tmp_path: Path, db_url: str) -> None:
    app = write_app(tmp_path, CLEAN, ("20260101000000", USERS))
    done = subprocess.run([sys.executable, "-m", "webpipe", "check", "--db", "--json",
                           str(app)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [d["code"] for d in json.loads(done.stdout)] == ["sql-migrations"]


@pytest.fixture
def bad_app(tmp_path: Path, db_url: str) -> Iterator[str]:
    write_app(tmp_path, "", ("20260101000000", USERS))
    yield "GET /u\n  |> pg: `SELECT id, nmae FROM users`\n"


def test_serve_refuses_to_start_on_a_bad_statement(tmp_path: Path, bad_app: str) -> None:
    (tmp_path / "app.wp").write_text(bad_app)
    done = subprocess.run([sys.executable, "-m", "webpipe", "serve", str(tmp_path / "app.wp"),
                           "--port", str(free_port())], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert 'app.wp:2:22: error: column "nmae" does not exist' in done.stderr
    assert "1 error(s): `webpipe check` must pass to serve" in done.stderr
    assert "serving" not in done.stderr


async def test_serve_starts_on_good_statements_and_with_no_db_check(
        tmp_path: Path, bad_app: str) -> None:
    good = "GET /u\n  |> pg: `SELECT count(*)::int AS n FROM users`\n"
    async with serve(tmp_path, good) as served:
        text = served.log.read_text()
        assert "SQL checked: 1 statement(s) prepared on the scratch database" in text
        assert "error" not in text
    async with serve(tmp_path, bad_app, "--no-db-check") as served:
        assert "nmae" not in served.log.read_text()


def test_serve_does_not_create_the_embedded_database_to_check(tmp_path: Path) -> None:
    from webpipe.sqlcheck.check import serve_diagnostics

    app = write_app(tmp_path, CLEAN)
    assert serve_diagnostics(load_program(app)) == []
    assert not (tmp_path / ".webpipe" / "pgdata" / "PG_VERSION").exists()


def test_the_starter_project_and_the_todos_example_pass(tmp_path: Path, db_url: str) -> None:
    from webpipe.scaffold import init_project

    init_project(tmp_path / "starter")
    assert unapplied_only(check_file(tmp_path / "starter" / "app.wp", db=True))
    todos = Path(__file__).parents[2] / "examples" / "todos" / "app.wp"
    assert unapplied_only(check_file(todos, db=True))


async def test_serve_reload_waits_for_the_migration_that_fixes_a_statement(
        tmp_path: Path, conn: Any) -> None:
    """`serve --reload` refuses a statement naming a missing column, then starts serving
    once a migration adding it is written (migrations reload; the check runs again)."""
    import asyncio

    import httpx

    app = write_app(tmp_path, "GET /u\n  |> pg: `SELECT id, email FROM users`\n",
                    ("20260101000000", USERS))
    await migrate_up(conn, tmp_path / "migrations")
    staging = tmp_path.with_name(tmp_path.name + "-staging")  # outside the app: no reload
    staging.mkdir()
    write_app(staging, "", ("20260101000000", USERS), ("20260102000000", EMAIL))
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "webpipe", "serve", str(app), "--port", str(port),
            "--reload", stdout=out, stderr=asyncio.subprocess.STDOUT)
    try:
        for _ in range(1800):  # generous: the machine is shared
            if "waiting for a fix" in log.read_text():
                break
            assert proc.returncode is None, log.read_text()
            await asyncio.sleep(0.05)
        assert 'app.wp:2:22: error: column "email" does not exist' in log.read_text()
        await migrate_up(conn, staging / "migrations")  # the dev database first, then the app
        write_app(tmp_path, app.read_text(), ("20260102000000", EMAIL))
        answer: httpx.Response | None = None
        async with httpx.AsyncClient() as client:
            for _ in range(1800):
                try:
                    answer = await client.get(f"http://127.0.0.1:{port}/u")
                    break
                except httpx.HTTPError:
                    assert proc.returncode is None, log.read_text()
                    await asyncio.sleep(0.05)
        assert answer is not None, log.read_text()
        assert answer.json() == {"data": {"rows": [], "rowCount": 0}}, log.read_text()
        assert "not applied" not in log.read_text()
    finally:
        proc.kill()
        await proc.wait()


SELF_MADE = '''GET /setup
  |> pg: `CREATE TABLE IF NOT EXISTS notes (id SERIAL PRIMARY KEY, body TEXT)`

GET /notes
  |> pg: `SELECT id, body FROM notes`
'''


def test_serve_starts_a_program_that_creates_its_tables_at_run_time(
        tmp_path: Path, db_url: str) -> None:
    """No migrations and a `CREATE TABLE` in a step: the table may not exist yet at start, so
    `serve` warns where `check --db` refuses; with migrations the schema is declared and
    `serve` refuses as `check --db` does."""
    from webpipe.sqlcheck.check import serve_diagnostics

    app = write_app(tmp_path, SELF_MADE)
    refused = [d for d in check_file(app, db=True) if d.code == "sql"]
    assert [(d.severity, d.span.line if d.span else 0) for d in refused] == [("error", 5)]
    served = serve_diagnostics(load_program(app))
    assert [(d.severity, d.code) for d in served] == [("warning", "sql")]
    assert served[0].message == refused[0].message
    assert f"creates tables at run time ({app}:2)" in served[0].notes[-1]
    write_app(tmp_path, SELF_MADE, ("20260101000000", USERS))
    assert [d.severity for d in serve_diagnostics(load_program(app))
            if d.code == "sql"] == ["error"]
