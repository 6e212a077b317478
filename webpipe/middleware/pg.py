"""`pg`: run one SQL statement on PostgreSQL through asyncpg (middleware.md §2, spec/pg.md).

`prepare()` compiles the SQL once at load (`pg_statement.py`: classified, row-returning
ones wrapped in the `json_agg(row_to_json(..))` CTE, split at its `$N` placeholders). Per
request, each placeholder gets an explicit cast chosen from the JSON parameter's type
(`int8`, `float8`, `text`, `bool`, `jsonb`; middleware.md §2.2) and the query runs through
asyncpg's per-connection statement cache; a reading statement whose column types allow it
runs without the CTE, its rows built from asyncpg's records (`pg_rows.py`). The pool is
created lazily on first use, so an app with `config pg` loads and serves its other routes
without a reachable database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Generator, Mapping, Sequence
from typing import Any, ClassVar

from webpipe.config import config_int
from webpipe.db import NOT_CONFIGURED, SERVER_SETTINGS, effective_url, resolve_target
from webpipe.errors import HardError, StepError
from webpipe.limits import Limits
from webpipe.middleware import pg_rows
from webpipe.middleware.base import (
    JSON,
    BaseMiddleware,
    Behavior,
    MiddlewareHost,
    StepCall,
    StepResult,
)
from webpipe.middleware.pg_statement import PgStatement, compile_statement
from webpipe.pgembed import EmbeddedUnavailable, start_embedded
from webpipe.source import Span
from webpipe.wire import MAX_JSON_DEPTH, JsonTooDeep, loads_exact_bounded

# asyncpg ships no type information: it is imported lazily and used as Any
Pool = Any
Connection = Any


ACQUIRE_TIMEOUT_S = 3.0  # middleware.md §2.7
QUERY_CANCELED = "57014"  # SQLSTATE of a statement stopped by `statement_timeout`
POOL_TIMEOUT_MESSAGE = "pool timed out while waiting for an open connection"


class JsonText(str):
    """A json/jsonb value as text, so `!raw` can tell JSON columns from others."""

    __slots__ = ()


class RawModeError(Exception):
    """A `!raw` query that did not yield one JSON value."""


async def _init_connection(conn: Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=str, decoder=JsonText,
                                  format="text")


async def _execute(conn: Connection, stmt: PgStatement, params: Sequence[JSON],
                   max_depth: int, decisions: dict[str, pg_rows.Decision] | None) -> JSON:
    errors = _asyncpg().exceptions
    try:
        return await _execute_as(conn, stmt, params, None, max_depth, decisions)
    except (errors.IndeterminateDatatypeError, errors.AmbiguousParameterError):
        # an untyped NULL fits any column, but `$1 IS NULL` alone needs a type: use text
        if None not in params:
            raise
        return await _execute_as(conn, stmt, params, "text", max_depth, decisions)


async def _execute_as(conn: Connection, stmt: PgStatement, params: Sequence[JSON],
                      null_type: str | None, max_depth: int,
                      decisions: dict[str, pg_rows.Decision] | None) -> JSON:
    casts, args = stmt.bind(params, null_type)
    query, direct_query = stmt.queries(casts)
    if stmt.kind == "command":
        status: str = await conn.execute(query, *args)
        count = status.rsplit(" ", 1)[-1]
        return {"rows": [], "rowCount": int(count) if count.isdigit() else 0}
    if stmt.kind == "rows":
        rows = await _rows(conn, query, direct_query, args, max_depth, decisions)
        return {"rows": rows, "rowCount": len(rows)}
    row = await conn.fetchrow(query, *args)
    if row is None:
        raise RawModeError("!raw query returned no rows")
    if len(row) == 0 or not (row[0] is None or isinstance(row[0], JsonText)):
        raise RawModeError("!raw query must return a json or jsonb first column")
    return None if row[0] is None else _load_json(row[0], max_depth)


async def _rows(conn: Connection, query: str, direct_query: str | None, args: list[Any],
                max_depth: int, decisions: dict[str, pg_rows.Decision] | None,
                ) -> list[JSON]:
    """The statement's rows: built from its own records once it was decided so (pg_rows)
    while its results stay small, else from the CTE's JSON; the first run of a statement
    text runs the CTE, then decides."""
    if direct_query is None or decisions is None:
        return await _cte_rows(conn, query, args, max_depth)
    decision = decisions.get(direct_query)
    if isinstance(decision, pg_rows.Direct) and decision.small:
        records = await conn.fetch(direct_query, *args)
        rows = pg_rows.rows_of(records, decision,
                               functools.partial(_load_json, max_depth=max_depth))
        if rows is not None:
            decision.count(len(rows))
            return rows
        decisions.pop(direct_query, None)  # the schema changed: the CTE again, then decide
        return await _cte_rows(conn, query, args, max_depth)
    rows = await _cte_rows(conn, query, args, max_depth)
    if isinstance(decision, pg_rows.Direct):
        decision.count(len(rows))
    elif decision is None:
        pg_rows.remember(decisions, direct_query, await pg_rows.decide(
            conn, direct_query, args, query, JsonText, len(rows)))
    return rows


async def _cte_rows(conn: Connection, query: str, args: list[Any],
                    max_depth: int) -> list[JSON]:
    row = await conn.fetchrow(query, *args)
    # two levels are the row list and the row object around the column values
    rows: list[JSON] = _load_json(row[0], max_depth, 2) if row is not None else []
    return rows


def _load_json(text: str, max_depth: int, wrapping: int = 0) -> JSON:
    """Postgres' JSON text (numerics of any size stay exact), at most `max_depth` levels
    deep (`maxJsonDepth`) inside `wrapping` levels: deeper is a `limitError`, never a
    RecursionError downstream. Not bounded by `maxJsonContainers` (a bound on what clients
    and upstreams send): the app's own rows are as many as its query asks for, whichever
    way they are read (pg_rows)."""
    plain = str(text)  # orjson refuses a str subclass (JsonText) as is
    try:
        value = loads_exact_bounded(plain, max_depth + wrapping, sys.maxsize)
    except JsonTooDeep:
        raise StepError(f"JSON from the database nested deeper than {max_depth} levels "
                        "(maxJsonDepth)", error_type="limitError") from None
    return value


def statement_timeout_ms(pg_block: Mapping[str, JSON] | None, limits: Limits) -> int:
    """The one statement timeout of the app's pool, in ms (0: none): `config pg
    { statementTimeout }` when given, else `config limits { pgStatementTimeoutMs }`."""
    return config_int(pg_block, "statementTimeout", limits.pg_statement_timeout_ms)


def sql_error(exc: BaseException, query: str, timeout_ms: int = 0) -> dict[str, JSON]:
    """The `sqlError` envelope for a failed statement (middleware.md §2.6); a statement
    stopped by the statement timeout is a `timeout` envelope with the same fields."""
    asyncpg = _asyncpg()
    error: dict[str, JSON] = {"type": "sqlError", "message": _message(exc)}
    if getattr(exc, "sqlstate", None) == QUERY_CANCELED:
        error = {"type": "timeout", "message": f"{error['message']} (statement timeout "
                                               f"{timeout_ms} ms: pgStatementTimeoutMs)"}
    if isinstance(exc, asyncpg.PostgresError):
        error["sqlstate"] = exc.sqlstate
        severity = getattr(exc, "severity_en", None) or getattr(exc, "severity", None)
        if severity:
            error["severity"] = str(severity).capitalize()  # sqlx's enum name: `Error`
    error["query"] = query
    return {"errors": [error]}


def _message(exc: BaseException) -> str:
    asyncpg = _asyncpg()
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "message", None) or exc)
    if isinstance(exc, TimeoutError):
        return POOL_TIMEOUT_MESSAGE
    return str(exc) or type(exc).__name__


@functools.cache
def _asyncpg() -> Any:
    return importlib.import_module("asyncpg")


def _db_errors() -> tuple[type[BaseException], ...]:
    asyncpg = _asyncpg()
    return (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
            OSError, TimeoutError, RawModeError)


class PgMiddleware(BaseMiddleware):
    """One pool per app, opened on the first statement and closed by `aclose()`."""

    behavior: ClassVar[Behavior] = Behavior.TRANSFORM
    wraps_data: ClassVar[bool] = True
    config_keys: ClassVar[frozenset[str] | None] = frozenset({
        "host", "port", "database", "user", "password", "maxPoolSize", "initialPoolSize",
        "ssl", "statementTimeout"})

    def __init__(self, host: MiddlewareHost) -> None:
        super().__init__(host)
        self.acquire_timeout = ACQUIRE_TIMEOUT_S
        self._pool: Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        # statement text → how its rows are built (pg_rows), decided at its first run;
        # None: every row through the CTE (`WEBPIPE_PG_ROWS_CTE=1`, for comparisons)
        self._decisions: dict[str, pg_rows.Decision] | None = (
            None if pg_rows.cte_forced() else {})

    @property
    def statement_timeout_ms(self) -> int:
        return statement_timeout_ms(self.host.config_block("pg"), self.limits)

    def prepare(self, config: str, span: Span | None) -> PgStatement:
        return compile_statement(config)

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert isinstance(prepared, PgStatement)
        if not prepared.sql:
            raise HardError("Empty SQL config for pg middleware")
        params = _params(state, call)
        try:
            value = await self._query(prepared, params)
        except _db_errors() as exc:
            return StepResult(sql_error(exc, prepared.sql, self.statement_timeout_ms))
        if call.target is None and prepared.kind != "raw":
            value = {"data": value}  # middleware.md §2.5: no target, legacy shape
        return StepResult(value)

    def dedup_identity(self, state: JSON, prepared: object, call: StepCall,
                       ) -> tuple[JSON, JSON]:
        """`@dedup`: the statement and its parameters; the app's own connection carries no
        per-user credentials."""
        assert isinstance(prepared, PgStatement)
        return [prepared.sql, _params(state, call)], []

    async def execute_sql(self, sql: str, params: list[JSON]) -> dict[str, JSON]:
        """Lua's `executeSql` (middleware.md §5.3): always the row CTE; raises on failure."""
        stmt = compile_statement(sql, force_rows=True)
        try:
            result: dict[str, JSON] = await self._query(stmt, params)
        except HardError:
            raise HardError("database not configured") from None
        except _db_errors() as exc:
            raise StepError(_message(exc)) from exc
        return result

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if self._loop is not asyncio.get_running_loop():
            _terminate(pool)  # its connections belong to another (finished) loop
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=5)
        except TimeoutError:
            _terminate(pool)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection from the app's one pool, for middleware with SQL of their own (auth).

        The pool is created on first use as for a `pg` step: `HardError` when no database is
        configured; driver errors (asyncpg's, `OSError`, `TimeoutError`) propagate as is.
        """
        pool, conn = await self._acquire()
        try:
            yield conn
        finally:
            await pool.release(conn)

    async def _query(self, stmt: PgStatement, params: Sequence[JSON]) -> JSON:
        """One step's statement (no context-manager generator around it: one per query)."""
        pool, conn = await self._acquire()
        try:
            return await _execute(conn, stmt, params,
                                  min(self.limits.max_json_depth, MAX_JSON_DEPTH),
                                  self._decisions)
        finally:
            try:
                if stmt.session:
                    await _reset_session(conn)
            finally:
                await pool.release(conn)

    async def _acquire(self) -> tuple[Pool, Connection]:
        """The pool (made on first use, or afresh on a new loop) and a connection from it."""
        pool = self._pool
        if pool is None or self._loop is not asyncio.get_running_loop():
            pool = await self._ensure_pool()
        # bounded here, not by asyncpg's own `timeout=` (it runs the acquire in a new task
        # through wait_for and times the release too, costing a loop pass or two)
        return pool, await BoundedWait(pool.acquire(), self.acquire_timeout)

    async def _ensure_pool(self) -> Pool:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (reload, tests): start afresh
            if self._pool is not None:
                _terminate(self._pool)
            self._pool, self._loop, self._lock = None, loop, asyncio.Lock()
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                self._pool = await self._create_pool()
            return self._pool

    async def _create_pool(self) -> Pool:
        asyncpg = _asyncpg()
        block = self.host.config_block("pg")
        size = max(1, config_int(block, "maxPoolSize", 20))
        initial = min(max(1, config_int(block, "initialPoolSize", 5)), size)
        # the timeout is a session default (startup packet), so the RESET ALL of a session
        # reset keeps it; Postgres itself cancels a statement past it
        settings = {**SERVER_SETTINGS, "statement_timeout": str(self.statement_timeout_ms)}
        pool = asyncpg.create_pool(await self._url(), min_size=initial, max_size=size,
                                   init=_init_connection, reset=_keep_session,
                                   server_settings=settings, timeout=self.acquire_timeout)
        try:
            return await asyncio.wait_for(pool, timeout=self.acquire_timeout)
        except BaseException:
            _terminate(pool)
            raise

    async def _url(self) -> str:
        target = resolve_target(self.host.config_block("pg"), self.host.base_dir)
        if target is None:
            raise HardError(NOT_CONFIGURED)
        if target.url is not None:
            return await effective_url(target, target.url, self.host.base_dir)
        assert target.data_dir is not None
        try:
            url = await start_embedded(target.data_dir)
        except EmbeddedUnavailable as exc:
            raise HardError(f"{NOT_CONFIGURED} ({exc})") from None
        return await effective_url(target, url, self.host.base_dir)


class BoundedWait:
    """Await `awaitable`, bounded by `seconds` (`TimeoutError` past it) once it has to wait.

    A pool acquire that finds an idle connection completes in its first step: no timer is
    armed then (asyncio.timeout costs ~5 µs per use under uvloop, a timer armed and
    cancelled, for a bound that cannot be reached). Otherwise the rest of it runs under
    `asyncio.timeout(seconds)`: the bound counts from the first wait.
    """

    __slots__ = ("_awaitable", "_seconds")

    def __init__(self, awaitable: Awaitable[Any], seconds: float) -> None:
        self._awaitable, self._seconds = awaitable, seconds

    def __await__(self) -> Generator[Any, Any, Any]:
        steps = self._awaitable.__await__()
        try:
            waiting_on = steps.send(None)
        except StopIteration as done:
            return done.value
        return (yield from _bounded(steps, waiting_on, self._seconds).__await__())


async def _bounded(steps: Generator[Any, Any, Any], waiting_on: Any, seconds: float) -> Any:
    async with asyncio.timeout(seconds):
        return await _Resumed(steps, waiting_on)


class _Resumed:
    """The rest of an awaitable already started: what it waits on goes to the task, what
    the task sends or throws (a cancellation) goes back into it, as `yield from` would."""

    __slots__ = ("_steps", "_waiting_on")

    def __init__(self, steps: Generator[Any, Any, Any], waiting_on: Any) -> None:
        self._steps, self._waiting_on = steps, waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        steps, item = self._steps, self._waiting_on
        while True:
            try:
                try:
                    sent = yield item
                except GeneratorExit:  # closed: close it too (PEP 380)
                    steps.close()
                    raise
                except BaseException as exc:  # a cancellation goes in as is
                    item = steps.throw(exc)
                else:
                    item = steps.send(sent)
            except StopIteration as done:
                return done.value


async def _keep_session(conn: Connection) -> None:
    """The pool's reset on release: nothing beyond what asyncpg always does (roll back an
    open transaction). Statements that touch session state reset in `_query` instead; the
    default reset would cost every query a second round trip."""


async def _reset_session(conn: Connection) -> None:
    """asyncpg's full reset; a connection that cannot be reset is closed (the pool opens a
    fresh one), so no state it may hold reaches another request."""
    try:
        await conn.reset()
    except asyncio.CancelledError:
        conn.terminate()
        raise
    except Exception:
        conn.terminate()


def _terminate(pool: Pool) -> None:
    with contextlib.suppress(RuntimeError):  # its loop is closed: nothing left to abort
        pool.terminate()


def _params(state: JSON, call: StepCall) -> list[JSON]:
    if call.args:
        value = call.args[0]
        if not isinstance(value, list):
            raise StepError("pg argument 0 must evaluate to an array, got: "
                            + json.dumps(value, default=str))
        return value
    params = state.get("sqlParams") if isinstance(state, dict) else None
    return params if isinstance(params, list) else []
