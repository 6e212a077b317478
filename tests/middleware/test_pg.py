"""The `pg` middleware against a real PostgreSQL: middleware.md §2 and §5.3, spec/pg.md.

One embedded server (pgserver) is started per session in a temporary app directory's
`.webpipe/pgdata`; tests reach it through a `config pg` block whose host is the server's
Unix socket directory, or through a TCP proxy when the database must disappear.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.middleware.pg_server import SOCKET_NAME, TcpProxy, free_port, socket_dir
from tests.support import SimpleHost
from webpipe.db import (
    NOT_CONFIGURED,
    PgTarget,
    connection_url,
    make_url,
    resolve_target,
    run_sql_file,
)
from webpipe.errors import HardError, StepError
from webpipe.middleware.base import Behavior, StepCall
from webpipe.middleware.pg import (
    POOL_TIMEOUT_MESSAGE,
    BoundedWait,
    PgMiddleware,
    compile_statement,
)
from webpipe.pgembed import default_data_dir, embedded_url
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

JSON = Any
MakePg = Callable[..., PgMiddleware]
PG_VARS = ("WP_PG_HOST", "WP_PG_PORT", "WP_PG_DATABASE", "WP_PG_USER", "WP_PG_PASSWORD",
           "DATABASE_URL", "WP_PG_EMBEDDED")


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pgapp")


@pytest.fixture(scope="session")
def pg_url(app_dir: Path) -> str:
    """The session's embedded server, started once (stopped by pgserver at exit)."""
    return embedded_url(default_data_dir(app_dir))


@pytest.fixture(scope="session")
def pg_config(pg_url: str) -> dict[str, JSON]:
    return {"host": socket_dir(pg_url), "port": 5432, "initialPoolSize": 1}


@pytest.fixture(autouse=True)
def _no_pg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PG_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def make_pg(pg_config: dict[str, JSON], app_dir: Path) -> AsyncIterator[MakePg]:
    made: list[PgMiddleware] = []

    def make(config: dict[str, JSON] | None = None, *, base: Path | None = None,
             use_config: bool = True) -> PgMiddleware:
        configs = {"pg": {**pg_config, **(config or {})}} if use_config else {}
        mw = PgMiddleware(SimpleHost(base=base or app_dir, configs=configs))
        made.append(mw)
        return mw

    yield make
    for mw in made:
        await mw.aclose()


@pytest.fixture
def pg(make_pg: MakePg) -> PgMiddleware:
    return make_pg()


@pytest.fixture
async def proxy(pg_url: str) -> AsyncIterator[TcpProxy]:
    """A TCP port in front of the session server's Unix socket."""
    tcp = TcpProxy(Path(socket_dir(pg_url)) / SOCKET_NAME)
    await tcp.start()
    yield tcp
    await tcp.stop()


async def run(mw: PgMiddleware, sql: str, params: list[JSON] | None = None, *,
              state: JSON = None, target: str | None = "r") -> JSON:
    args = (params,) if params is not None else ()
    result = await mw.run(state, mw.prepare(sql, None), StepCall("pg", sql, args, target))
    return result.value


async def rows(mw: PgMiddleware, sql: str, params: list[JSON] | None = None) -> list[JSON]:
    value = await run(mw, sql, params)
    assert "errors" not in value, value
    return list(value["rows"])


async def one(mw: PgMiddleware, expr: str, params: list[JSON] | None = None) -> JSON:
    return (await rows(mw, f"SELECT {expr} AS v", params))[0]["v"]


def sql_error(value: JSON) -> dict[str, JSON]:
    assert set(value) == {"errors"}, value
    error: dict[str, JSON] = value["errors"][0]
    assert error["type"] == "sqlError"
    return error


# -- contract and output placement --------------------------------------------------------


async def test_with_target_the_value_is_the_raw_result(pg: PgMiddleware) -> None:
    assert (PgMiddleware.behavior, PgMiddleware.wraps_data) == (Behavior.TRANSFORM, True)
    assert await run(pg, "SELECT 1 AS a") == {"rows": [{"a": 1}], "rowCount": 1}


async def test_without_target_the_result_sits_under_data(pg: PgMiddleware) -> None:
    value = await run(pg, "SELECT 1 AS a", target=None)
    assert value == {"data": {"rows": [{"a": 1}], "rowCount": 1}}


async def test_empty_result_is_an_empty_list(pg: PgMiddleware) -> None:
    assert await run(pg, "SELECT 1 AS a WHERE false") == {"rows": [], "rowCount": 0}


async def test_empty_sql_is_a_hard_error(pg: PgMiddleware) -> None:
    with pytest.raises(HardError, match="Empty SQL"):
        await run(pg, "   ")


# -- value conversion (§2.4) --------------------------------------------------------------

CONVERSIONS = [
    ("42::int4", 42),
    ("9007199254740993::int8", 9007199254740993),
    ("10.50::numeric", 10.5),
    ("123456789012345678901234567890::numeric", 123456789012345678901234567890),  # exact
    ("'NaN'::numeric", "NaN"),
    ("'Infinity'::float8", "Infinity"),
    ("1.5::float4", 1.5),
    ("true", True),
    ("'héllo'::text", "héllo"),
    ("'x'::varchar(3)", "x"),
    ("'{\"a\": [1, 2.5]}'::json", {"a": [1, 2.5]}),
    ("'{\"b\": {\"c\": null}}'::jsonb", {"b": {"c": None}}),
    ("ARRAY[1, 2, 3]", [1, 2, 3]),
    ("ARRAY[['a', 'b'], ['c', 'd']]", [["a", "b"], ["c", "d"]]),
    ("ARRAY[]::int[]", []),
    ("ROW(1, 'x')", {"f1": 1, "f2": "x"}),
    ("'2024-05-01'::date", "2024-05-01"),
    ("'2024-05-01 09:30'::timestamp", "2024-05-01T09:30:00"),
    ("'2024-05-01 09:30:00.25'::timestamp", "2024-05-01T09:30:00.25"),
    ("'2024-05-01 09:30+02'::timestamptz", "2024-05-01T07:30:00+00:00"),
    ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("'10.0.0.1/8'::inet", "10.0.0.1/8"),
    ("'1 day 02:00'::interval", "1 day 02:00:00"),
    ("12.5::money", "$12.50"),
    ("'\\xdeadbeef'::bytea", "\\xdeadbeef"),
    ("NULL", None),
]


@pytest.mark.parametrize(("expr", "expected"), CONVERSIONS, ids=[c[0] for c in CONVERSIONS])
async def test_conversion(pg: PgMiddleware, expr: str, expected: JSON) -> None:
    value = await one(pg, expr)
    assert value == expected
    assert type(value) is type(expected)


async def test_columns_keep_order_and_duplicates_collapse_to_the_last(pg: PgMiddleware,
                                                                      ) -> None:
    row = (await rows(pg, "SELECT 1 AS b, 2 AS a, 3 AS b"))[0]
    assert list(row) == ["b", "a"]
    assert row == {"b": 3, "a": 2}


# -- parameter binding (§2.2) -------------------------------------------------------------

BINDINGS = [
    (7, "bigint", 7),
    (2.5, "double precision", 2.5),
    ("7", "text", "7"),
    (True, "boolean", True),
    ({"k": [1, None]}, "jsonb", {"k": [1, None]}),
    ([1, "a"], "jsonb", [1, "a"]),
    (None, "text", None),  # untyped first; text where PostgreSQL cannot infer a type
]


@pytest.mark.parametrize(("param", "pg_type", "back"), BINDINGS,
                         ids=[type(b[0]).__name__ for b in BINDINGS])
async def test_each_json_type_binds_with_an_explicit_type(pg: PgMiddleware, param: JSON,
                                                          pg_type: str, back: JSON) -> None:
    row = (await rows(pg, "SELECT pg_typeof($1)::text AS t, $1 AS v", [param]))[0]
    assert row == {"t": pg_type, "v": back}


async def test_null_is_untyped_so_it_fits_any_column(pg: PgMiddleware) -> None:
    sql = ("SELECT $1::int AS i, $2::jsonb AS j, coalesce($3, 'dflt') AS t, $4 AS v, "
           "$5 IS NULL AS n")
    assert await rows(pg, sql, [None] * 5) == [{"i": None, "j": None, "t": "dflt", "v": None,
                                            "n": True}]


async def test_u64_above_the_i64_range_wraps(pg: PgMiddleware) -> None:
    assert await one(pg, "$1", [2**63]) == -(2**63)
    assert await one(pg, "pg_typeof($1)::text", [2**70]) == "double precision"


async def test_text_parameter_against_integer_column_is_a_type_error(pg: PgMiddleware,
                                                                     ) -> None:
    error = sql_error(await run(pg, "SELECT 1 AS a WHERE 1 = $1", ["1"]))
    assert (error["sqlstate"], error["message"]) == ("42883", "operator does not exist: "
                                                               "integer = text")


async def test_sql_params_from_the_state(pg: PgMiddleware) -> None:
    value = await run(pg, "SELECT $1::int + $2 AS v", state={"sqlParams": [1, 2]})
    assert value["rows"] == [{"v": 3}]


async def test_inline_argument_wins_over_sql_params(pg: PgMiddleware) -> None:
    value = await run(pg, "SELECT $1 AS v", ["inline"], state={"sqlParams": ["state"]})
    assert value["rows"] == [{"v": "inline"}]


async def test_sql_params_that_is_not_an_array_binds_nothing(pg: PgMiddleware) -> None:
    value = await run(pg, "SELECT 1 AS v", state={"sqlParams": {"a": 1}})
    assert value["rows"] == [{"v": 1}]


async def test_inline_argument_must_be_an_array(pg: PgMiddleware) -> None:
    with pytest.raises(StepError, match=r'pg argument 0 must evaluate to an array, got: "x"'):
        await run(pg, "SELECT $1", "x")  # type: ignore[arg-type]


async def test_placeholders_inside_literals_and_comments_are_left_alone(pg: PgMiddleware,
                                                                        ) -> None:
    sql = "SELECT '$1' AS s, $$ $1 $$ AS d, E'\\'$1' AS e, $1 AS v -- $1\n/* $2 */"
    assert (await rows(pg, sql, [5])) == [{"s": "$1", "d": " $1 ", "e": "'$1", "v": 5}]


async def test_surplus_parameters_are_ignored(pg: PgMiddleware) -> None:
    assert await one(pg, "$1", [1, 2, 3]) == 1


async def test_missing_parameters_are_a_driver_error(pg: PgMiddleware) -> None:
    error = sql_error(await run(pg, "SELECT $1::int + $2 AS v", [1]))
    assert "sqlstate" not in error and "severity" not in error
    assert "2 arguments" in error["message"]


async def test_values_are_never_interpolated(pg: PgMiddleware) -> None:
    evil = "'; DROP TABLE IF EXISTS pg_inject; --"
    assert await one(pg, "$1", [evil]) == evil


# -- statement classes (§2.3) -------------------------------------------------------------


@pytest.fixture
async def notes(pg: PgMiddleware) -> AsyncIterator[PgMiddleware]:
    await rows(pg, "DROP TABLE IF EXISTS notes")
    assert await run(pg, "CREATE TABLE notes (id serial PRIMARY KEY, body text UNIQUE)") == {
        "rows": [], "rowCount": 0}
    yield pg
    await run(pg, "DROP TABLE IF EXISTS notes")


async def test_insert_update_delete_report_affected_rows(notes: PgMiddleware) -> None:
    insert = await run(notes, "INSERT INTO notes (body) VALUES ($1), ($2)", ["a", "b"])
    assert insert == {"rows": [], "rowCount": 2}
    update = await run(notes, "UPDATE notes SET body = body || '!'")
    assert update == {"rows": [], "rowCount": 2}
    delete = await run(notes, "DELETE FROM notes WHERE body = $1", ["a!"])
    assert delete == {"rows": [], "rowCount": 1}


async def test_insert_returning_gives_rows(notes: PgMiddleware) -> None:
    value = await run(notes, "INSERT INTO notes (body) VALUES ($1) RETURNING id, body", ["x"])
    assert value == {"rows": [{"id": 1, "body": "x"}], "rowCount": 1}


async def test_returning_after_a_newline_and_a_trailing_semicolon(notes: PgMiddleware,
                                                                  ) -> None:
    value = await run(notes, "INSERT INTO notes (body)\nVALUES ('y')\nRETURNING\tbody;")
    assert value["rows"] == [{"body": "y"}]


async def test_with_queries_and_data_modifying_ctes(notes: PgMiddleware) -> None:
    await run(notes, "INSERT INTO notes (body) VALUES ('a'), ('b')")
    sql = ("WITH gone AS (DELETE FROM notes WHERE body = 'a' RETURNING *) "
           "SELECT count(*) AS n FROM gone")
    assert (await run(notes, sql))["rows"] == [{"n": 1}]
    update = await run(notes, "WITH v AS (SELECT 'z' AS s) UPDATE notes SET body = v.s FROM v")
    assert update == {"rows": [], "rowCount": 1}


async def test_values_and_leading_comments_return_rows(pg: PgMiddleware) -> None:
    assert (await run(pg, "VALUES (1, 'a')"))["rows"] == [{"column1": 1, "column2": "a"}]
    assert (await run(pg, "-- note\n/* x */ select 2 as n -- tail"))["rows"] == [{"n": 2}]


async def test_other_statements_run_plainly(pg: PgMiddleware) -> None:
    assert await run(pg, "SET LOCAL statement_timeout = 0") == {"rows": [], "rowCount": 0}
    assert await run(pg, "SHOW server_version") == {"rows": [], "rowCount": 0}


@pytest.mark.parametrize(("sql", "kind"), [
    ("SELECT 1", "rows"), ("  select 1;", "rows"), ("(SELECT 1) UNION (SELECT 2)", "rows"),
    ("TABLE notes", "rows"), ("INSERT INTO t VALUES (1)", "command"),
    ("insert into t values (1) returning id", "rows"), ("UPDATE t SET a = 'returning'", "command"),
    ("DELETE FROM t WHERE id IN (SELECT id FROM u RETURNING)", "command"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "rows"),
    ("WITH RECURSIVE r(n) AS (VALUES (1) UNION SELECT n + 1 FROM r) SELECT n FROM r", "rows"),
    ("WITH x AS (SELECT 1) DELETE FROM t", "command"), ("CREATE TABLE t (a int)", "command"),
    ("!raw SELECT '{}'::json", "raw"),
])
def test_classification(sql: str, kind: str) -> None:
    assert compile_statement(sql).kind == kind


# -- !raw ---------------------------------------------------------------------------------


async def test_raw_returns_the_json_value_itself(pg: PgMiddleware) -> None:
    sql = "!raw SELECT json_build_object('n', $1::int)"
    assert await run(pg, sql, [3]) == {"n": 3}
    assert await run(pg, sql, [4], target=None) == {"n": 4}


async def test_raw_needs_a_json_column_and_a_row(pg: PgMiddleware) -> None:
    error = sql_error(await run(pg, "!raw SELECT 1"))
    assert error["query"] == "SELECT 1" and "json" in error["message"]
    assert "no rows" in sql_error(await run(pg, "!raw SELECT '1'::jsonb WHERE false"))[
        "message"]


# -- sqlError envelopes (§2.6) ------------------------------------------------------------


async def test_sql_error_envelope_shape(pg: PgMiddleware) -> None:
    value = await run(pg, "SELECT * FROM nope;")
    assert value == {"errors": [{"type": "sqlError", "message": 'relation "nope" does not exist',
                                 "sqlstate": "42P01", "severity": "Error",
                                 "query": "SELECT * FROM nope;"}]}


@pytest.mark.parametrize(("sql", "sqlstate"), [
    ("SELEC 1", "42601"), ("SELECT 1 / 0", "22012"), ("SELECT 'x'::int", "22P02"),
])
async def test_sql_error_codes(pg: PgMiddleware, sql: str, sqlstate: str) -> None:
    error = sql_error(await run(pg, sql, target=None))
    assert (error["sqlstate"], error["severity"], error["query"]) == (sqlstate, "Error", sql)


async def test_unique_violation(notes: PgMiddleware) -> None:
    await run(notes, "INSERT INTO notes (body) VALUES ('dup')")
    error = sql_error(await run(notes, "INSERT INTO notes (body) VALUES ('dup')"))
    assert error["sqlstate"] == "23505"


async def test_error_from_plpgsql_raise(pg: PgMiddleware) -> None:
    sql = "DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = 'P0001'; END $$"
    assert sql_error(await run(pg, sql))["message"] == "boom"


# -- pool ---------------------------------------------------------------------------------


async def test_pool_exhaustion_is_a_sql_error_then_recovers(make_pg: MakePg) -> None:
    mw = make_pg({"maxPoolSize": 1})
    mw.acquire_timeout = 0.2
    await run(mw, "SELECT 1")
    slow = asyncio.create_task(run(mw, "SELECT pg_sleep(0.5)"))
    await asyncio.sleep(0.1)
    error = sql_error(await run(mw, "SELECT 2 AS v"))
    assert error == {"type": "sqlError", "message": POOL_TIMEOUT_MESSAGE, "query": "SELECT 2 AS v"}
    assert "errors" not in await slow
    assert (await run(mw, "SELECT 3 AS v"))["rows"] == [{"v": 3}]


async def test_pool_serves_concurrent_statements(make_pg: MakePg) -> None:
    mw = make_pg({"maxPoolSize": "4", "initialPoolSize": 2})
    results = await asyncio.gather(*(one(mw, "$1", [i]) for i in range(20)))
    assert results == list(range(20))


async def test_pool_size_zero_still_means_one_connection(make_pg: MakePg) -> None:
    mw = make_pg({"maxPoolSize": 0, "initialPoolSize": 0})
    assert await one(mw, "1") == 1


async def _backend(mw: PgMiddleware) -> int:
    pid: int = await one(mw, "pg_backend_pid()")
    return pid


async def test_session_settings_do_not_reach_the_next_request(make_pg: MakePg) -> None:
    mw = make_pg({"maxPoolSize": 1})  # one connection: every statement shares it
    before = await _backend(mw)
    for statement in ("SET application_name = 'leak'",
                      "SELECT set_config('application_name', 'leak', false) AS v"):
        assert "errors" not in await run(mw, statement)
        assert await one(mw, "current_setting('application_name')") != "leak"
    assert await _backend(mw) == before  # reset, not replaced


async def test_an_open_transaction_does_not_reach_the_next_request(make_pg: MakePg) -> None:
    mw = make_pg({"maxPoolSize": 1})
    assert "errors" not in await run(mw, "BEGIN")
    # two statements of one still-open transaction would see the same transaction id
    assert await one(mw, "txid_current()") != await one(mw, "txid_current()")


async def test_plain_statements_keep_the_connection_as_it_is(make_pg: MakePg) -> None:
    """No reset round trip after statements that cannot leave session state; the price,
    documented in spec/pg.md: a setting changed inside a function is not seen and stays."""
    mw = make_pg({"maxPoolSize": 1})
    create = ("CREATE OR REPLACE FUNCTION wp_test_mark() RETURNS text LANGUAGE sql AS "
              "$$ SELECT set_config('application_name', 'marked', false) $$")
    assert "errors" not in await run(mw, create)
    try:
        assert await one(mw, "wp_test_mark()") == "marked"
        assert await one(mw, "current_setting('application_name')") == "marked"
    finally:
        await run(mw, "DROP FUNCTION wp_test_mark()")


@pytest.mark.parametrize(("sql", "touches"), [
    ("SELECT 1", False),
    ("UPDATE t SET a = 1 WHERE b = 'begin'", False),
    ("INSERT INTO t (start, temp) VALUES (1, 2)", True),  # over-matching costs a reset only
    ("SELECT 'set_config' AS v -- begin", False),
    ("SET search_path TO app", True),
    ("  set local statement_timeout = 5", True),
    ("UPDATE t SET a = 1; SET x = 2", True),
    ("SELECT set_config('a.b', '1', false)", True),
    ("SELECT pg_advisory_lock(7)", True),
    ("LISTEN news", True),
    ("BEGIN", True),
    ("CREATE TEMP TABLE x (a int)", True),
    ("DO $$ BEGIN PERFORM set_config('a.b', '1', false); END $$", True),
    ("CALL refresh_all()", True),
    ("INSERT INTO t VALUES (1) ON CONFLICT (id) DO NOTHING", False),
    ("SELECT 'begin; set x' AS v", False),
])
def test_which_statements_touch_the_session(sql: str, touches: bool) -> None:
    assert compile_statement(sql).session is touches


# -- lazy connection and recovery ---------------------------------------------------------


async def test_unreachable_database_is_a_sql_error_at_the_step(make_pg: MakePg) -> None:
    mw = make_pg({"host": "127.0.0.1", "port": free_port()})
    error = sql_error(await run(mw, "SELECT 1"))
    assert "sqlstate" not in error and error["query"] == "SELECT 1"


async def test_database_that_goes_away_and_comes_back(make_pg: MakePg, proxy: TcpProxy,
                                                      ) -> None:
    mw = make_pg({"host": "127.0.0.1", "port": proxy.port, "initialPoolSize": 2})
    assert await one(mw, "1") == 1
    await proxy.stop()
    sql_error(await run(mw, "SELECT 1"))
    await proxy.start()
    assert await one(mw, "2") == 2
    assert await one(mw, "3") == 3


APP = """
config pg {
  host: "127.0.0.1"
  port: PORT
}

pg oneRow = `SELECT $1::int AS id`

GET /hello
  |> jq: `{ hello: "world" }`

GET /row/:id
  |> pg([.params.id]): oneRow

GET /named/:id
  |> pg([.params.id]): `SELECT $1::int AS id` @result(found)
"""


async def _get(wp: str, base: Path, path: str) -> httpx.Response:
    env = program_from_text(wp, base_dir=base)
    transport = httpx.ASGITransport(app=create_app(build_served(env)))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path)
    finally:
        await env.aclose()


async def test_app_with_config_pg_loads_and_serves_without_a_database(tmp_path: Path) -> None:
    wp = APP.replace("PORT", str(free_port()))
    response = await _get(wp, tmp_path, "/hello")
    assert (response.status_code, response.json()) == (200, {"hello": "world"})
    failed = (await _get(wp, tmp_path, "/row/1")).json()
    assert failed["errors"][0]["type"] == "sqlError"


async def test_app_places_results_under_data(tmp_path: Path, proxy: TcpProxy) -> None:
    wp = APP.replace("PORT", str(proxy.port))
    named = (await _get(wp, tmp_path, "/named/5")).json()
    assert named["data"] == {"found": {"rows": [{"id": 5}], "rowCount": 1}}
    assert "params" not in named  # carried along, not the route's answer (server.md §6)
    auto = (await _get(wp, tmp_path, "/row/6")).json()
    assert auto["data"] == {"oneRow": {"rows": [{"id": 6}], "rowCount": 1}}
    assert "resultName" not in auto


# -- which database (spec/pg.md) ----------------------------------------------------------


def test_precedence(tmp_path: Path) -> None:
    block = {"host": "db.example", "port": 6543, "user": "u", "password": "p@ss/word"}
    env = {"WP_PG_HOST": "wp", "WP_PG_DATABASE": "app", "DATABASE_URL": "postgres://url/x"}
    assert resolve_target(block, tmp_path, env) == PgTarget(
        "WP_PG_*", url="postgres://postgres@wp:5432/app")
    del env["WP_PG_HOST"], env["WP_PG_DATABASE"]
    assert resolve_target(block, tmp_path, env) == PgTarget("DATABASE_URL", "postgres://url/x")
    assert resolve_target(block, tmp_path, {}) == PgTarget(
        "config pg", url="postgres://u:p%40ss%2Fword@db.example:6543/postgres")
    assert resolve_target({"port": 1}, tmp_path, {}) == PgTarget(
        "embedded", data_dir=tmp_path / ".webpipe" / "pgdata")
    assert resolve_target(None, tmp_path, {"WP_PG_EMBEDDED": "off"}) is None


def test_urls_encode_socket_directories() -> None:
    assert make_url("/tmp/s", 5432, "db", "me", "") == "postgres://me@%2Ftmp%2Fs:5432/db"


async def test_wp_pg_variables_override_config_pg(make_pg: MakePg, pg_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WP_PG_HOST", socket_dir(pg_url))
    mw = make_pg({"host": "127.0.0.1", "port": free_port()})
    assert await one(mw, "1") == 1


async def test_database_url_overrides_config_pg(make_pg: MakePg, pg_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_url)
    mw = make_pg({"host": "127.0.0.1", "port": free_port()})
    assert await one(mw, "current_database()") == "postgres"


async def test_no_configuration_uses_the_embedded_server(make_pg: MakePg, app_dir: Path,
                                                         pg_url: str) -> None:
    mw = make_pg(use_config=False, base=app_dir)
    assert await one(mw, "1") == 1
    assert embedded_url(app_dir / ".webpipe" / "pgdata") == pg_url  # one server per dir


async def test_embedding_switched_off_is_the_hard_not_configured_error(
        make_pg: MakePg, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WP_PG_EMBEDDED", "0")
    mw = make_pg(use_config=False)
    with pytest.raises(HardError) as info:
        await run(mw, "SELECT 1")
    assert info.value.message == NOT_CONFIGURED
    with pytest.raises(HardError) as info:
        await mw.execute_sql("SELECT 1", [])
    assert info.value.message == "database not configured"


# -- executeSql (§5.3) --------------------------------------------------------------------


async def test_execute_sql_returns_rows(pg: PgMiddleware) -> None:
    result = await pg.execute_sql("SELECT $1::int + 1 AS v, $2 AS s", [41, "x"])
    assert result == {"rows": [{"v": 42, "s": "x"}], "rowCount": 1}


async def test_execute_sql_always_wraps_so_bare_writes_fail(notes: PgMiddleware) -> None:
    with pytest.raises(StepError, match="RETURNING"):
        await notes.execute_sql("INSERT INTO notes (body) VALUES ('w')", [])
    with pytest.raises(StepError, match='relation "nope" does not exist'):
        await notes.execute_sql("SELECT * FROM nope", [])


async def test_lua_execute_sql_uses_pg(pg: PgMiddleware, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from webpipe.middleware.lua import LuaMiddleware

    monkeypatch.setenv("WEBPIPE_SCRIPTS_DIR", str(tmp_path))
    # a long Lua budget: the sandbox worker's cold start counts against it
    lua = LuaMiddleware(SimpleHost(configs={"limits": {"luaTimeoutMs": 10000}}, others={"pg": pg}))
    code = ("local r, err = executeSql('SELECT $1::int * 2 AS v', { 21 }) "
            "local _, bad = executeSql('SELECT * FROM nope') "
            "return { v = r.rows[1].v, n = r.rowCount, bad = bad }")
    value = (await lua.run({}, lua.prepare(code, None), StepCall("lua", code))).value
    assert value == {"v": 42, "n": 1, "bad": 'relation "nope" does not exist'}
    await lua.aclose()
    await lua.host.sandbox().aclose()


# -- CLI helpers (webpipe.db) -------------------------------------------------------------


async def test_connection_url_and_run_sql_file(app_dir: Path, pg_url: str,
                                               make_pg: MakePg) -> None:
    app = app_dir / "app.wp"
    app.write_text("GET /x\n  |> jq: `{}`\n")
    assert await asyncio.to_thread(connection_url, app) == pg_url
    script = app_dir / "seed.sql"
    script.write_text("DROP TABLE IF EXISTS seeded;\nCREATE TABLE seeded (n int);\n"
                      "INSERT INTO seeded VALUES (1), (2);\n")
    assert await run_sql_file(app, script) == "INSERT 0 2"
    assert await one(make_pg(), "(SELECT json_agg(n) FROM seeded)") == [1, 2]


# -- bounds (issue 22, spec/limits.md) -----------------------------------------------------


async def test_a_statement_past_the_statement_timeout_is_a_timeout_envelope(
        make_pg: MakePg, pg_config: dict[str, JSON], app_dir: Path) -> None:
    def limited(limits: dict[str, JSON], pg: dict[str, JSON] | None = None) -> PgMiddleware:
        mw = PgMiddleware(SimpleHost(base=app_dir, configs={
            "pg": {**pg_config, **(pg or {})}, "limits": limits}))
        made.append(mw)
        return mw

    made: list[PgMiddleware] = []
    try:
        mw = limited({"pgStatementTimeoutMs": 200})
        value = await run(mw, "SELECT pg_sleep(5)")
        error = value["errors"][0]
        assert error["type"] == "timeout"
        assert error["message"] == ("canceling statement due to statement timeout "
                                    "(statement timeout 200 ms: pgStatementTimeoutMs)")
        assert (error["sqlstate"], error["query"]) == ("57014", "SELECT pg_sleep(5)")
        # the same connection serves the next statement, and a session reset keeps the bound
        assert await one(mw, "current_setting('statement_timeout')") == "200ms"
        await run(mw, "SET search_path TO public")
        assert await one(mw, "current_setting('statement_timeout')") == "200ms"
        # `config pg { statementTimeout }` names the same bound and wins
        both = limited({"pgStatementTimeoutMs": 200}, {"statementTimeout": "1500"})
        assert await one(both, "current_setting('statement_timeout')") == "1500ms"
    finally:
        for mw in made:
            await mw.aclose()


async def test_the_default_statement_timeout_is_thirty_seconds(pg: PgMiddleware) -> None:
    assert await one(pg, "current_setting('statement_timeout')") == "30s"


async def test_json_deeper_than_max_json_depth_is_a_limit_error(pg: PgMiddleware) -> None:
    deep = "[" * 513 + "]" * 513
    assert len(await one(pg, f"'{deep[1:-1]}'::jsonb")) == 1  # 512 levels: accepted
    for sql in (f"SELECT '{deep}'::jsonb AS v", f"!raw SELECT '{deep}'::json"):
        with pytest.raises(StepError) as caught:
            await run(pg, sql)
        assert caught.value.error_type == "limitError"
        assert "nested deeper than 512 levels" in caught.value.message


# -- the acquire's bound (BoundedWait) -----------------------------------------------------


async def test_bounded_wait_returns_at_once_or_after_waiting() -> None:
    async def at_once() -> str:
        return "idle connection"

    async def after(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "waited"

    assert await BoundedWait(at_once(), 0.001) == "idle connection"
    assert await BoundedWait(after(0.01), 5) == "waited"
    with pytest.raises(TimeoutError):
        await BoundedWait(after(5), 0.05)


async def test_bounded_wait_passes_errors_and_cancellation_through() -> None:
    seen: list[str] = []

    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("inner")

    async def waits() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            seen.append("cancelled inside")
            raise

    with pytest.raises(ValueError, match="inner"):
        await BoundedWait(fails(), 5)
    task = asyncio.ensure_future(BoundedWait(waits(), 5))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled inside"]
