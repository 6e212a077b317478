"""The database check in the editor: run on save, shown as diagnostics, hover and completion.

With `webpipe.checkDatabase` on, `DatabaseChecks.run(uri, path)` runs `check --db` on the
saved file (webpipe.sqlcheck) inside the save notification's own task; a newer save of the
same buffer cancels it, and blocking steps (loading the program, starting the embedded
server) run in worker threads, so typing never waits for the database. The last report per
buffer gives the result columns of each statement: `column_hover()` adds them to the hover
of a `pg` variable, `column_completions()` offers them after `.data.rows[0].` (the nearest
`pg` step above) or `.data.NAME.rows[0].` (the `pg` variable or `@result(NAME)` step NAME).
Diagnostics from the last check stay on lines the user has not edited since. Nothing here
imports pygls: `server.py` converts to protocol types.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path

from webpipe.errors import Diagnostic, WebpipeError
from webpipe.loader import ProgramIndex
from webpipe.lsp.locate import NAME
from webpipe.source import Source
from webpipe.sqlcheck import DatabaseUnavailable, SqlReport, check_sql, unavailable
from webpipe.sqlcheck.prepare import Column, Prepared
from webpipe.sqlcheck.sites import pg_site

_ROWS = re.compile(rf"\.data(?:\.({NAME}))?\.rows\[\d*\]\.[A-Za-z0-9_]*$")
_PG_STEP = re.compile(r"\|>[ \t]*pg\b(?:[(\[][^\n]*?[)\]])?[ \t]*:[ \t]*"
                      rf"(?:`(?P<sql>[^`]*)`|\"(?P<quoted>[^\"]*)\"|(?P<name>{NAME}))")
_DECLARED = re.compile(rf"^[ \t]*pg[ \t]+({NAME})[ \t]*=", re.M)


@dataclass
class DatabaseChecks:
    """Per-server state: the setting, the check in flight per buffer and the last report."""

    enabled: bool = False
    running: dict[str, asyncio.Task[object]] = field(default_factory=dict)
    reports: dict[str, SqlReport] = field(default_factory=dict)
    shown: dict[str, tuple[Source, list[Diagnostic]]] = field(default_factory=dict)

    async def run(self, uri: str, path: Path) -> list[Diagnostic] | None:
        """Check the saved file; None when a newer save cancelled this one."""
        previous, current = self.running.get(uri), asyncio.current_task()
        if previous is not None and previous is not current and not previous.done():
            previous.cancel()
        if current is not None:
            self.running[uri] = current
        try:
            return await self._check(uri, path)
        except asyncio.CancelledError:
            return None
        finally:
            if self.running.get(uri) is current:
                del self.running[uri]

    async def _check(self, uri: str, path: Path) -> list[Diagnostic]:
        from webpipe.program import load_program

        try:
            env = await asyncio.to_thread(load_program, path)
        except WebpipeError:
            return []  # the analysis already shows why it does not load
        try:
            report = await check_sql(env)
        except DatabaseUnavailable as exc:
            return [unavailable(exc, "warning")]
        finally:
            await env.aclose()
        self.reports[uri] = report
        mine = [d for d in report.diagnostics
                if d.span is not None and Path(d.span.source.name).resolve() == path]
        where = mine[0].span if mine else None
        if where is not None:
            self.shown[uri] = (where.source, mine)
        else:
            self.shown.pop(uri, None)
        return mine

    def forget(self, uri: str) -> None:
        task = self.running.pop(uri, None)
        if task is not None:
            task.cancel()
        self.reports.pop(uri, None)
        self.shown.pop(uri, None)

    def kept(self, uri: str, source: Source) -> list[Diagnostic]:
        """The last check's diagnostics on lines that are unchanged in `source`, moved to
        where those lines are now (the nearest copy)."""
        old_source, found = self.shown.get(uri, (None, []))
        if old_source is None:
            return []
        lines = source.text.split("\n")
        out = []
        for d in found:
            old = d.span
            assert old is not None, "only diagnostics with a place are kept"
            text = old_source.line_text(old.line)
            candidates = [i + 1 for i, line in enumerate(lines) if line == text]
            if not candidates or old.end_line != old.line:
                continue
            line = min(candidates, key=lambda i: abs(i - old.line))
            start = len("\n".join(lines[:line - 1])) + (1 if line > 1 else 0)
            span = source.span(start + old.column - 1, start + old.end_column - 1)
            out.append(Diagnostic(d.message, span, d.severity, d.code, d.notes))
        return out


def statement_of(index: ProgramIndex | None, text: str, name: str) -> str | None:
    """The SQL text of the `pg` variable `name` (from the index, else the buffer text)."""
    if index is not None:
        found = index.variable(index.main, "pg", name)
        if found is not None:
            site = pg_site(found.body, found.span.source, 0)
            return site.sql if site else None
    declared = re.search(rf"^[ \t]*pg[ \t]+{re.escape(name)}[ \t]*=[ \t]*`([^`]*)`", text,
                         re.M)
    site = pg_site(declared.group(1), Source("", ""), 0) if declared else None
    return site.sql if site else None


def column_hover(report: SqlReport | None, index: ProgramIndex | None, text: str,
                 offset: int) -> str | None:
    """Markdown listing the columns of the `pg` variable named at `offset`, if known."""
    if report is None:
        return None
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line = text[line_start:len(text) if line_end < 0 else line_end]
    for m in (*_DECLARED.finditer(line), *_PG_STEP.finditer(line)):
        group = 1 if m.re is _DECLARED else "name"
        if m.group(group) and m.start(group) <= offset - line_start <= m.end(group):
            sql = statement_of(index, text, m.group(group))
            prepared = report.prepared.get(sql) if sql else None
            return _columns_markdown(prepared) if prepared else None
    return None


def _columns_markdown(prepared: Prepared) -> str:
    if prepared.problem is not None:
        return f"**SQL error**: {prepared.problem.message}"
    if not prepared.columns:
        return "**Returns no columns**"
    rows = "\n".join(f"| `{c.name}` | {c.type} |" for c in prepared.columns)
    params = ", ".join(f"${i}: {t}" for i, t in enumerate(prepared.params, 1))
    head = f"**Parameters**: {params}\n\n" if params else ""
    return f"{head}| column | type |\n|---|---|\n{rows}"


def column_completions(report: SqlReport | None, index: ProgramIndex | None, text: str,
                       offset: int) -> list[Column]:
    """Result columns after `.data.rows[0].` or `.data.NAME.rows[0].`."""
    if report is None:
        return []
    before = text[text.rfind("\n", 0, offset) + 1:offset]
    m = _ROWS.search(before)
    if m is None:
        return []
    sql = _named_statement(index, text, m.group(1)) if m.group(1) \
        else _nearest_statement(index, text, offset)
    prepared = report.prepared.get(sql) if sql else None
    return list(prepared.columns) if prepared else []


def _nearest_statement(index: ProgramIndex | None, text: str, offset: int) -> str | None:
    steps = list(_PG_STEP.finditer(text, 0, offset))
    return _step_statement(index, text, steps[-1]) if steps else None


def _named_statement(index: ProgramIndex | None, text: str, name: str) -> str | None:
    """The `pg` variable `name`, else the `pg` step tagged `@result(name)`."""
    sql = statement_of(index, text, name)
    if sql is not None:
        return sql
    for m in _PG_STEP.finditer(text):
        line_end = text.find("\n", m.end())
        rest = text[m.end():len(text) if line_end < 0 else line_end]
        if re.search(rf"@result\(\s*{re.escape(name)}\s*\)", rest):
            return _step_statement(index, text, m)
    return None


def _step_statement(index: ProgramIndex | None, text: str, m: re.Match[str]) -> str | None:
    if m.group("name"):
        return statement_of(index, text, m.group("name"))
    body = m.group("sql") if m.group("sql") is not None else m.group("quoted")
    site = pg_site(body, Source("", ""), 0)
    return site.sql if site else None
