"""Preparing statements on PostgreSQL: each distinct text once, several at a time, cached.

`prepare_all(target, texts)` opens up to `CONNECTIONS` connections to the check database and
prepares every distinct text on them concurrently (the extended protocol's Parse + Describe:
PostgreSQL parses, resolves names and infers types, and runs nothing). The answer per text
is a `Prepared`: the parameter types PostgreSQL inferred and the result columns, or the
`Problem` it reported (message, SQLSTATE, hint, detail, position inside the text). Results
are cached by (database, schema fingerprint, text) for the life of the process, so a second
check of an unchanged schema (the editor's next save, a reload) prepares only new texts.

At run time `pg` writes a cast on every placeholder from its JSON value; preparing sends
the placeholders bare, so a placeholder whose type only the cast decides (`SELECT $1`) is
retried with a `text` cast rather than reported (spec/sqlcheck.md).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from webpipe.errors import ConfigError
from webpipe.middleware.pg_statement import split_params
from webpipe.sqlcheck.database import (
    CheckTarget,
    DatabaseUnavailable,
    asyncpg_module,
    connect,
)

CONNECTIONS = 4
CACHE_SIZE = 4096
UNTYPED = frozenset({"42P18", "42P08"})  # could not determine / inconsistent parameter type
TYPE_MISMATCH = frozenset({"42883", "42804"})  # no such operator / datatype mismatch
GONE = frozenset({"08", "57"})  # SQLSTATE classes: connection lost, server shutting it down
# a fingerprint of everything a statement can name outside the system catalogs
FINGERPRINT = """
SELECT md5(current_setting('search_path') || coalesce(string_agg(x, ',' ORDER BY x), ''))
FROM (
  SELECT c.oid::text || c.relname || coalesce(a.attname || a.atttypid::text, '') AS x
  FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  WHERE s.nspname NOT IN ('pg_catalog', 'information_schema') AND s.nspname !~ '^pg_toast'
  UNION ALL
  SELECT p.oid::text || p.proname || pg_get_function_identity_arguments(p.oid)
         || p.prorettype::text
  FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace
  WHERE s.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL
  SELECT t.oid::text || t.typname FROM pg_type t JOIN pg_namespace s ON s.oid = t.typnamespace
  WHERE s.nspname NOT IN ('pg_catalog', 'information_schema') AND s.nspname !~ '^pg_toast'
) q
"""
_PARAM_NUMBER = re.compile(r"\$(\d+)")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Problem:
    """PostgreSQL's error for a statement; `position` is a 0-based offset in its text."""

    message: str
    sqlstate: str | None = None
    position: int | None = None
    hint: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """What preparing one text gave: parameter types and columns, or a problem."""

    params: tuple[str, ...] = ()
    columns: tuple[Column, ...] = ()
    problem: Problem | None = None
    cast: frozenset[int] = frozenset()  # placeholders prepared with our `text` cast
    untyped: bool = False  # a placeholder's type is decided only by the run-time cast


@dataclass(frozen=True, slots=True)
class Probe:
    """`sql` with placeholder `slot` written `($slot::cast)`, as `pg` binds a JSON value
    of that type at run time: does PostgreSQL accept it?"""

    sql: str
    slot: int
    cast: str


Job = str | Probe
_CACHE: dict[tuple[str, Job], Prepared | bool] = {}  # (database and schema, job)


async def prepare_all(target: CheckTarget, first: Any, texts: Iterable[str],
                      probes: Iterable[Probe] = ()) -> dict[Job, Prepared | bool]:
    """Every distinct text prepared, and every probe answered, on the check database, on
    `first` (a connection to it, closed here) and up to CONNECTIONS - 1 more at once
    (raises DatabaseUnavailable)."""
    wanted: list[Job] = [*dict.fromkeys(texts), *dict.fromkeys(probes)]
    conns = [first]
    try:
        key = f"{target.url}|{target.database}|{await conns[0].fetchval(FINGERPRINT)}"
        done = {job: _CACHE[(key, job)] for job in wanted if (key, job) in _CACHE}
        todo = [job for job in wanted if job not in done]
        extra = min(CONNECTIONS, len(todo)) - 1
        if extra > 0:
            conns += await asyncio.gather(*(connect(target.url, target.database)
                                            for _ in range(extra)))
        queue, failed = list(reversed(todo)), list[DatabaseUnavailable]()
        await asyncio.gather(*(_worker(conn, queue, done, failed) for conn in conns))
        if failed:
            raise failed[0]
    finally:
        await asyncio.gather(*(conn.close() for conn in conns), return_exceptions=True)
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.clear()
    _CACHE.update(((key, job), done[job]) for job in todo)
    return done


async def _worker(conn: object, queue: list[Job], done: dict[Job, Prepared | bool],
                  failed: list[DatabaseUnavailable]) -> None:
    """Take jobs until none is left or a worker lost its connection (recorded in `failed`
    rather than raised, so the other workers stop at their next job, not mid-statement)."""
    asyncpg = asyncpg_module()
    while queue and not failed:
        job = queue.pop()
        try:
            done[job] = await (prepare_one(conn, job) if isinstance(job, str)
                               else probe_one(conn, job))
        except (asyncpg.InterfaceError, OSError) as exc:  # the connection went away
            failed.append(DatabaseUnavailable(f"the check's connection ended: {exc}"))
        except DatabaseUnavailable as exc:
            failed.append(exc)


async def prepare_one(conn: object, sql: str) -> Prepared:
    """Prepare `sql`; a placeholder PostgreSQL cannot type is given a `text` cast (as the
    run time would for a string) and the statement prepared again."""
    errors = asyncpg_module().PostgresError
    try:
        pieces, slots = split_params(sql)
    except ConfigError as exc:
        return Prepared(problem=Problem(exc.message))
    cast: dict[int, str] = {}
    while True:
        query, shifts = _with_casts(pieces, slots, cast)
        try:
            stmt = await conn.prepare(query)  # type: ignore[attr-defined]
        except errors as exc:
            state = getattr(exc, "sqlstate", None) or ""
            if state[:2] in GONE:
                raise DatabaseUnavailable(f"the check's connection ended: {exc}") from None
            number = _untyped_param(exc)
            if state in UNTYPED and number in slots and number not in cast:
                cast[number] = "text"
                continue
            if cast and state in TYPE_MISMATCH:
                return Prepared(cast=frozenset(cast), untyped=True)  # the cast's doing
            return Prepared(problem=_problem(exc, shifts), cast=frozenset(cast))
        params = tuple(p.name for p in stmt.get_parameters())
        columns = tuple(Column(a.name, a.type.name) for a in stmt.get_attributes())
        return Prepared(params, columns, cast=frozenset(cast), untyped=bool(cast))


async def probe_one(conn: object, probe: Probe) -> bool:
    """False when PostgreSQL refuses the statement for the probe's type (no operator or
    function for it, a type mismatch); any other outcome is not the type's doing."""
    try:
        pieces, slots = split_params(probe.sql)
        query, _ = _with_casts(pieces, slots, {probe.slot: probe.cast})
        await conn.prepare(query)  # type: ignore[attr-defined]
    except asyncpg_module().PostgresError as exc:
        return getattr(exc, "sqlstate", None) not in TYPE_MISMATCH
    except ConfigError:
        return True
    return True


def _untyped_param(exc: BaseException) -> int | None:
    found = _PARAM_NUMBER.search(str(getattr(exc, "message", "") or exc))
    return int(found.group(1)) if found else None


def _with_casts(pieces: tuple[str, ...], slots: tuple[int, ...], cast: dict[int, str],
                ) -> tuple[str, list[tuple[int, int]]]:
    """The query with `($N::type)` for each N in `cast`, and (query offset, shift so far)
    pairs for mapping a position in it back to the text."""
    out, shifts, length, shift = [pieces[0]], [(0, 0)], len(pieces[0]), 0
    for slot, piece in zip(slots, pieces[1:], strict=True):
        placeholder = f"${slot}"
        if slot in cast:
            placeholder = f"({placeholder}::{cast[slot]})"
            shift += len(placeholder) - len(f"${slot}")
        out += [placeholder, piece]
        length += len(placeholder)
        shifts.append((length, shift))
        length += len(piece)
    return "".join(out), shifts


def _problem(exc: BaseException, shifts: list[tuple[int, int]]) -> Problem:
    position = None
    raw = getattr(exc, "position", None)
    if raw is not None and str(raw).isdigit():
        at = int(str(raw)) - 1
        shift = max((s for start, s in shifts if start <= at), default=0)
        position = max(0, at - shift)
    message = str(getattr(exc, "message", None) or exc)
    return Problem(message, getattr(exc, "sqlstate", None), position,
                   getattr(exc, "hint", None) or None, getattr(exc, "detail", None) or None)
