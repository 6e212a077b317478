"""`check --db`: every SQL statement of a program prepared on a real database, as diagnostics.

`check_sql(env)` collects the statements (`sites.collect`), finds the database
(`database`), prepares each distinct text once (`prepare`) and turns the answers into
diagnostics at the SQL's own line and column: PostgreSQL's message, with its hint and
detail as notes. It adds the parameter checks of `pg` steps (a count known at load that
differs from the statement's placeholders is an error; a route parameter fed unconverted
to a placeholder is a warning when PostgreSQL refuses the statement with the parameter
bound as a string, as a number, or both) and keeps every statement's result columns for
the language server. spec/sqlcheck.md is the contract.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from webpipe.errors import ConfigError, Diagnostic
from webpipe.executor.env import Env
from webpipe.middleware.pg_statement import split_params
from webpipe.migrate.files import MIGRATIONS_DIR, MigrationError
from webpipe.source import Span
from webpipe.sqlcheck.database import (
    DatabaseUnavailable,
    NotCreatedYet,
    check_target,
    pending_on_app_database,
    server_url,
)
from webpipe.sqlcheck.params import describe
from webpipe.sqlcheck.prepare import Job, Prepared, Probe, Problem, prepare_all
from webpipe.sqlcheck.sites import Site, Use, collect

BINDINGS = ("text", "int8")  # how `pg` binds a route parameter: a string, or an integer
log = logging.getLogger("webpipe.serve")
SWITCH = "WEBPIPE_DB_CHECK"  # "0": serve skips the database check
MULTIPLE = "cannot insert multiple commands into a prepared statement"
# undefined table, column, object, function, schema: what a program's own DDL may create
MISSING = frozenset({"42P01", "42703", "42704", "42883", "3F000"})
_CREATES = re.compile(r"\bcreate\s+(?:or\s+replace\s+)?(?:(?:temp|temporary|unlogged)\s+)?"
                      r"(?:table|view|materialized\s+view|function|schema|type)\b", re.I)
_WORD = re.compile(r'"(?:[^"]|"")*"|[\w$.]+|\S')


@dataclass(eq=False)
class SqlReport:
    """The outcome of one database check."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    prepared: dict[str, Prepared] = field(default_factory=dict)  # by SQL text
    database: str = ""
    statements: int = 0  # distinct texts prepared
    missing: list[Diagnostic] = field(default_factory=list)  # errors of MISSING sqlstates
    creates: Site | None = None  # the first statement that creates a table, view, ...


async def check_sql(env: Env, *, start_embedded: bool = True) -> SqlReport:
    """Prepare every statement of `env`'s program; DatabaseUnavailable when there is no
    database to prepare on (nothing is connected when the program has no SQL)."""
    sites, uses = collect(env.index)
    if not sites:
        return SqlReport()
    url, description = await asyncio.to_thread(server_url, env.config_block("pg"),
                                                env.base_dir, start_embedded)
    try:
        target, first = await check_target(url, description, env.base_dir / MIGRATIONS_DIR)
    except MigrationError as exc:
        return SqlReport([Diagnostic(f"the migrations do not apply to an empty database, so "
                                     f"no statement was checked: {exc.message}",
                                     code="sql-migrations")], database=description)
    answers, pending = await asyncio.gather(
        prepare_all(target, first, (s.sql for s in sites),
                    [p for use in uses for p in route_probes(use)]),
        pending_on_app_database(target))
    prepared = {job: answer for job, answer in answers.items()
                if isinstance(job, str) and isinstance(answer, Prepared)}
    found = [Diagnostic(note, None, "warning", "sql") for note in target.notes]
    if pending:
        names = ", ".join(m.filename for m in pending)
        found.append(Diagnostic(
            f"{len(pending)} migration(s) not applied to the app's database ({names}): the "
            "statements were checked on the schema the migrations make; apply them with "
            f"`webpipe migrate up {env.index.main.path.name}`", None, "warning",
            "sql-migrations"))
    missing: list[Diagnostic] = []
    for site in sites:
        mine = site_diagnostics(site, prepared[site.sql])
        found += mine
        problem = prepared[site.sql].problem
        if problem is not None and problem.sqlstate in MISSING:
            missing += mine
    for use in uses:
        found += use_diagnostics(use, prepared.get(use.site.sql), answers)
    creates = next((site for site in sites if _CREATES.search(site.sql)), None)
    return SqlReport(found, prepared, target.description, len(prepared), missing, creates)


def check_sql_blocking(env: Env, *, start_embedded: bool = True) -> SqlReport:
    """`check_sql` from synchronous code (in a thread of its own when a loop is running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(check_sql(env, start_embedded=start_embedded))
    with ThreadPoolExecutor(1, thread_name_prefix="webpipe-sqlcheck") as pool:
        return pool.submit(asyncio.run, check_sql(env, start_embedded=start_embedded)
                           ).result()


def site_diagnostics(site: Site, prepared: Prepared) -> list[Diagnostic]:
    problem = prepared.problem
    if problem is not None:
        if problem.message.startswith(MULTIPLE) and site.origin == "pg":
            return []  # a command list: `pg` runs it as a script (spec/pg.md), not prepared
        return [problem_diagnostic(site, problem)]
    if site.origin == "executeSql" and not prepared.columns and not prepared.untyped:
        return [Diagnostic("executeSql always reads rows, and this statement returns none: "
                           "it fails at run time (add RETURNING, or run it in a pg step)",
                           _word_span(site, 0), code="sql")]
    return []


def problem_diagnostic(site: Site, problem: Problem) -> Diagnostic:
    """PostgreSQL's error at the word it points to (the statement's start if nowhere)."""
    notes = tuple(f"{label}: {text}" for label, text in
                  (("hint", problem.hint), ("detail", problem.detail)) if text)
    at = problem.position if problem.position is not None else 0
    return Diagnostic(problem.message, _word_span(site, at), "error", "sql", notes)


def _word_span(site: Site, at: int) -> Span:
    match = _WORD.search(site.sql, at)
    if match is None or match.start() != at:
        return site.span(at, 1)
    return site.span(at, len(match.group()))


def route_probes(use: Use) -> list[Probe]:
    """For each raw route parameter the step passes: its statement with that placeholder
    bound as a string and as a number, the two ways `pg` binds a route parameter (they are
    number-coerced, spec/http.md)."""
    elements = use.params.elements or ()
    return [Probe(use.site.sql, index + 1, cast) for index in range(len(elements))
            if use.params.route_param(index) is not None for cast in BINDINGS]


def use_diagnostics(use: Use, prepared: Prepared | None,
                    answers: Mapping[Job, Prepared | bool]) -> list[Diagnostic]:
    """The parameter count and type checks of one `pg` step."""
    elements = use.params.elements
    if elements is None:
        return []
    try:
        wanted = max(split_params(use.site.sql)[1], default=0)
    except ConfigError:  # a bad `$N`: reported on the statement itself
        return []
    where = _step_head(use)
    if len(elements) != wanted:
        placeholders = f"$1..${wanted}" if wanted > 1 else ("$1" if wanted else "none")
        return [Diagnostic(f"pg passes {len(elements)} parameter(s), but the statement at "
                           f"{use.site.label} has {wanted} (placeholders: {placeholders})",
                           where, "error", "sql-params")]
    if prepared is None or prepared.problem is not None:
        return []
    out = []
    for index, element in enumerate(elements):
        if use.params.route_param(index) is None:
            continue
        slot = index + 1
        refused = frozenset(cast for cast in BINDINGS
                            if answers.get(Probe(use.site.sql, slot, cast)) is False)
        type_name = prepared.params[index] if index < len(prepared.params) else "?"
        message = _route_param_message(slot, type_name, describe(element), refused)
        if message is not None:
            out.append(Diagnostic(message, where, "warning", "sql-params"))
    return out


def _route_param_message(slot: int, type_name: str, element: str, refused: frozenset[str],
                         ) -> str | None:
    head = (f"${slot} is {type_name} to PostgreSQL, but {element} is a route parameter "
            "no step converts:")
    if refused == {"text"}:
        return (f"{head} a path segment that is not a number (say `abc`) stays a string, "
                "binds as text and fails the statement with a sqlError; check or convert "
                f"it first ({element} | tonumber)")
    if refused == {"int8"}:
        return (f"{head} a path segment that looks like a number (say `42`) becomes one, "
                "binds as int8 and fails the statement with a sqlError; convert it first "
                f"({element} | tostring) or cast it in SQL (${slot}::text)")
    if refused:
        return (f"{head} bound as text or as a number, the statement fails either way; "
                f"cast it in SQL (${slot}::{type_name})")
    return None


def _step_head(use: Use) -> Span:
    span = use.step.span
    text = span.source.text
    line_end = text.find("\n", span.start, span.end)
    return span.source.span(span.start, span.end if line_end < 0 else line_end)


def unavailable(exc: DatabaseUnavailable, severity: str = "error") -> Diagnostic:
    """The one diagnostic for a check that found no database."""
    return Diagnostic(f"SQL statements not checked: {exc}", None,
                      "error" if severity == "error" else "warning", "sql-database")


def database_diagnostics(env: Env, announce: Callable[[str], None] | None = None,
                         ) -> list[Diagnostic]:
    """`webpipe check --db`: the database check's diagnostics; no database is an error."""
    try:
        report = check_sql_blocking(env)
    except DatabaseUnavailable as exc:
        return [unavailable(exc)]
    if announce is not None and report.database:
        announce(f"database: {report.database}: {report.statements} statement(s) prepared")
    return report.diagnostics


def serve_diagnostics(env: Env) -> list[Diagnostic]:
    """`webpipe serve` at start: the same check when the database is reachable (an embedded
    one already created, or a configured server answering); otherwise one warning (only a
    log line for an embedded database not created yet). Off with `serve --no-db-check`
    (WEBPIPE_DB_CHECK=0)."""
    if os.environ.get(SWITCH, "").strip().lower() in ("0", "false", "off", "no"):
        return []
    try:
        report = check_sql_blocking(env, start_embedded=False)
    except NotCreatedYet as exc:  # a new app: its first statement creates the database
        log.info("SQL statements not checked: %s", exc)
        return []
    except DatabaseUnavailable as exc:
        return [unavailable(exc, "warning")]
    if report.statements:
        log.info("SQL checked: %d statement(s) prepared on the %s", report.statements,
                 report.database)
    return _run_time_schema(env, report)


def _run_time_schema(env: Env, report: SqlReport) -> list[Diagnostic]:
    """A program without migrations that creates tables itself (a `CREATE TABLE` in a step)
    may make at run time what the database lacks at start: a missing table, column or
    function is then a warning for `serve`, not a refusal (`check --db` keeps the error)."""
    site = report.creates
    if site is None or not report.missing or (env.base_dir / MIGRATIONS_DIR).is_dir():
        return report.diagnostics
    where = site.span()
    note = (f"the program creates tables at run time ({where.source.name}:{where.line}): "
            "serve starts anyway; add migrations to have this refused")
    return [replace(d, severity="warning", notes=(*d.notes, note))
            if d in report.missing else d for d in report.diagnostics]
