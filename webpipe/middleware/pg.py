"""`pg`: run one SQL statement on PostgreSQL through asyncpg (middleware.md §2, spec/pg.md).

`prepare()` lexes the SQL once at load: it classifies the statement (row-returning,
command or `!raw`), wraps row-returning ones in the `json_agg(row_to_json(..))` CTE so
PostgreSQL itself converts values to JSON, and splits the text at its `$N` placeholders.
Per request, each placeholder gets an explicit cast chosen from the JSON parameter's type
(`int8`, `float8`, `text`, `bool`, `jsonb`; middleware.md §2.2) and the query runs through
asyncpg's per-connection statement cache. The pool is created lazily on first use, so an
app with `config pg` loads and serves its other routes without a reachable database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from webpipe.config import config_int
from webpipe.db import NOT_CONFIGURED, SERVER_SETTINGS, effective_url, resolve_target
from webpipe.errors import ConfigError, HardError, StepError
from webpipe.limits import Limits
from webpipe.middleware.base import (
    JSON,
    BaseMiddleware,
    Behavior,
    MiddlewareHost,
    StepCall,
    StepResult,
)
from webpipe.pgembed import EmbeddedUnavailable, start_embedded
from webpipe.source import Span
from webpipe.wire import MAX_JSON_DEPTH, JsonTooDeep, loads_exact_bounded

# asyncpg ships no type information: it is imported lazily and used as Any
Pool = Any
Connection = Any

Kind = Literal["rows", "command", "raw"]

ACQUIRE_TIMEOUT_S = 3.0  # middleware.md §2.7
QUERY_CANCELED = "57014"  # SQLSTATE of a statement stopped by `statement_timeout`
POOL_TIMEOUT_MESSAGE = "pool timed out while waiting for an open connection"
ROWS_SQL = ("{head}_wp_t AS (\n{body}\n) "
            "SELECT COALESCE(json_agg(row_to_json(_wp_t)), '[]'::json) AS rows FROM _wp_t")
ROW_WORDS = frozenset({"select", "values", "table"})
WRITE_WORDS = frozenset({"insert", "update", "delete", "merge"})
MAIN_WORDS = ROW_WORDS | WRITE_WORDS

# Just enough SQL lexing to find words, parentheses and `$N` outside literals/comments.
_TOKENS = re.compile(r"""
    (?P<skip>
        [eE]'(?:[^'\\]|\\.|'')*'                        # E'...' string
      | '(?:[^']|'')*'                                  # '...' string
      | "(?:[^"]|"")*"                                  # quoted identifier
      | --[^\n]*                                        # line comment
      | /\*.*?\*/                                       # block comment
      | \$(?P<tag>(?:[^\W\d]\w*)?)\$.*?\$(?P=tag)\$     # dollar-quoted string
    )
  | (?P<word>[^\W\d][\w$]*)
  | (?P<param>\$\d+)
  | (?P<open>\()
  | (?P<close>\))
""", re.S | re.X)


@dataclass(frozen=True, slots=True)
class PgStatement:
    """A prepared step: the SQL as written, its class, and the query split at `$N`."""

    sql: str
    kind: Kind
    pieces: tuple[str, ...]
    slots: tuple[int, ...]
    session: bool = False  # may leave session state behind: reset the connection after it

    def render(self, params: Sequence[JSON], null_type: str | None = None,
               ) -> tuple[str, list[Any]]:
        """The query with a cast on every bound placeholder, and the driver arguments."""
        bound = [_bind(p) if p is not None else (null_type, None) for p in params]
        out = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            cast = bound[slot - 1][0] if 0 < slot <= len(bound) else None
            out.append(f"(${slot}::{cast})" if cast else f"${slot}")
            out.append(piece)
        # PostgreSQL ignores surplus typed parameters; asyncpg would reject them
        return "".join(out), [value for _, value in bound[:max(self.slots, default=0)]]


@functools.lru_cache(maxsize=512)
def compile_statement(config: str, *, force_rows: bool = False) -> PgStatement:
    """Classify and wrap one step's SQL (middleware.md §2.3, spec/pg.md)."""
    sql = config.strip()
    raw = sql.startswith("!raw")
    if raw:
        sql = sql[4:].strip()
    text = sql
    while text.endswith(";"):  # a trailing `;` would end up inside the CTE
        text = text[:-1].rstrip()
    kind: Kind
    kind, query = ("raw", text) if raw else _wrap(text, force_rows)
    pieces, slots = split_params(query)
    return PgStatement(sql, kind, pieces, slots, touches_session(text))


# Statements that can leave state on a connection for the next request to find (settings,
# LISTEN, cursors, prepared statements, transactions, locks, temporary tables): after one of
# these the connection gets asyncpg's full reset before it returns to the pool; after any
# other statement it returns as it is (spec/pg.md). Over-matching only costs a reset.
_SESSION_WORDS = frozenset({
    "reset", "listen", "unlisten", "declare", "prepare", "deallocate", "discard", "begin",
    "start", "commit", "rollback", "savepoint", "release", "lock", "load", "temp",
    "temporary", "set_config",
})
# ... and statements that start with these (an anonymous block or a procedure may do any of
# the above inside; `ON CONFLICT DO` and `UPDATE … SET` are not meant)
_SESSION_STARTS = frozenset({"set", "do", "call"})


def touches_session(text: str) -> bool:
    """Whether `text` (one or more statements) may change the connection's session state:
    a word of `_SESSION_WORDS` or an advisory-lock function anywhere outside literals and
    comments, or a statement starting with a word of `_SESSION_STARTS`."""
    initial, last = True, 0
    for m in _TOKENS.finditer(text):
        if m.lastgroup == "word":
            word = m.group().lower()
            initial = initial or ";" in text[last:m.start()]
            if word in _SESSION_WORDS or word.startswith("pg_advisory") or (
                    initial and word in _SESSION_STARTS):
                return True
            initial = False
        elif m.lastgroup != "skip":
            initial = False
        last = m.end()
    return False


def _wrap(text: str, force_rows: bool) -> tuple[Kind, str]:
    first, main, main_start, returning = _shape(text)
    rows = main in ROW_WORDS or first == "(" or (main in WRITE_WORDS and returning)
    if not (rows or force_rows):
        return "command", text
    if first == "with" and main_start is not None:
        # splice into the statement's own WITH: data-modifying CTEs must stay top level
        head, body = text[:main_start].rstrip() + ",\n", text[main_start:]
    else:
        head, body = "WITH ", text
    return "rows", ROWS_SQL.format(head=head, body=body)


def _shape(text: str) -> tuple[str | None, str | None, int | None, bool]:
    """First token, main statement keyword and offset, and a top-level RETURNING."""
    depth, first, main, start, returning = 0, None, None, None, False
    for m in _TOKENS.finditer(text):
        group = m.lastgroup
        if group == "open":
            if first is None:
                first, start = "(", m.start()
            depth += 1
        elif group == "close":
            depth = max(0, depth - 1)
        elif group == "word" and depth == 0:
            word = m.group().lower()
            if first is None:
                first = word
            if main is None and word in MAIN_WORDS and (word == first or first == "with"):
                main, start = word, m.start()
            elif main is not None and word == "returning":
                returning = True
    return first, main, start, returning


def split_params(query: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The query's text around its `$N` placeholders (outside literals and comments), and
    the N of each (also used by webpipe.sqlcheck)."""
    pieces, slots, last = [], [], 0
    for m in _TOKENS.finditer(query):
        if m.lastgroup == "param":
            pieces.append(query[last:m.start()])
            digits = m.group()[1:]
            if len(digits) > 5 or int(digits) > 65535:  # PostgreSQL's own bound
                raise ConfigError(f"parameter {m.group()[:12]} is past $65535")
            slots.append(int(digits))
            last = m.end()
    pieces.append(query[last:])
    return tuple(pieces), tuple(slots)


def _bind(value: JSON) -> tuple[str | None, Any]:
    """(cast, driver value) for one JSON parameter (middleware.md §2.2)."""
    if value is None:
        return None, None  # untyped: PostgreSQL infers the type from the context
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return "int8", value
        if 0 <= value < 2**64:
            return "int8", value - 2**64  # a u64 above the i64 range wraps [Parity]
        return "float8", float(value) if abs(value) < 2**1023 else float("inf")
    if isinstance(value, float):
        return "float8", value
    if isinstance(value, str):
        return "text", value
    return "jsonb", json.dumps(value, ensure_ascii=False, default=str)


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
                   max_depth: int = MAX_JSON_DEPTH) -> JSON:
    errors = _asyncpg().exceptions
    try:
        return await _execute_as(conn, stmt, params, None, max_depth)
    except (errors.IndeterminateDatatypeError, errors.AmbiguousParameterError):
        # an untyped NULL fits any column, but `$1 IS NULL` alone needs a type: use text
        if None not in params:
            raise
        return await _execute_as(conn, stmt, params, "text", max_depth)


async def _execute_as(conn: Connection, stmt: PgStatement, params: Sequence[JSON],
                      null_type: str | None, max_depth: int) -> JSON:
    query, args = stmt.render(params, null_type)
    if stmt.kind == "command":
        status: str = await conn.execute(query, *args)
        count = status.rsplit(" ", 1)[-1]
        return {"rows": [], "rowCount": int(count) if count.isdigit() else 0}
    row = await conn.fetchrow(query, *args)
    if stmt.kind == "rows":
        # two levels are the row list and the row object around the column values
        rows = _load_json(row[0], max_depth, 2) if row is not None else []
        return {"rows": rows, "rowCount": len(rows)}
    if row is None:
        raise RawModeError("!raw query returned no rows")
    if len(row) == 0 or not (row[0] is None or isinstance(row[0], JsonText)):
        raise RawModeError("!raw query must return a json or jsonb first column")
    return None if row[0] is None else _load_json(row[0], max_depth)


def _load_json(text: str, max_depth: int, wrapping: int = 0) -> JSON:
    """Postgres' JSON text (numerics of any size stay exact), at most `max_depth` levels
    deep (`maxJsonDepth`) inside `wrapping` levels: deeper is a `limitError`, never a
    RecursionError downstream."""
    plain = str(text)  # orjson refuses a str subclass (JsonText) as is
    try:
        value = loads_exact_bounded(plain, max_depth + wrapping)
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
        pool = await self._ensure_pool()
        # asyncio.timeout around a plain acquire: asyncpg's own `timeout=` runs the acquire
        # in a new task (wait_for) and times the release too, costing a loop pass or two
        async with asyncio.timeout(self.acquire_timeout):
            conn = await pool.acquire()
        try:
            yield conn
        finally:
            await pool.release(conn)

    async def _query(self, stmt: PgStatement, params: Sequence[JSON]) -> JSON:
        async with self.connection() as conn:
            try:
                return await _execute(conn, stmt, params,
                                      min(self.limits.max_json_depth, MAX_JSON_DEPTH))
            finally:
                if stmt.session:
                    await _reset_session(conn)

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
