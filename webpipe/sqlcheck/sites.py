"""Where a program's SQL is: every statement `check --db` prepares, with its place in the file.

A `Site` is one SQL text as it appears in a `.wp` source: the body of a `pg` variable, the
config of a `pg` step written inline, or the literal first argument of an `executeSql` call
in a Lua or JavaScript step or variable. `start` is the offset of the SQL's first character
in the source, so a position PostgreSQL reports inside the statement maps back to a line and
column of the file. A `Use` is one `pg` step with what is known at load about the parameters
it passes (spec/sqlcheck.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from webpipe.loader import Module, ProgramIndex
from webpipe.source import Source, Span
from webpipe.sqlcheck.params import ParamShape, step_params
from webpipe.syntax import nodes as n

Origin = Literal["pg", "executeSql"]

# the call and its literal, the whole argument: "...", '...', Lua's [[...]] / [==[...]==], JS `...`
_CALL = re.compile(r"""\bexecuteSql\s*\(\s*(?:
      "(?P<dq>[^"\\\n]*)"
    | '(?P<sq>[^'\\\n]*)'
    | `(?P<bt>[^`\\$]*)`
    | \[(?P<eq>=*)\[(?P<long>.*?)\](?P=eq)\]
)(?=\s*[,)])   # the whole first argument, not the start of `"..." + x`
""", re.S | re.X)
_COMMENT = {"lua": "--", "js": "//"}
_SCRIPTS = ("lua", "js")


@dataclass(frozen=True, slots=True)
class Site:
    """One SQL statement in a source: the text PostgreSQL sees and where it starts."""

    sql: str
    source: Source
    start: int
    origin: Origin

    def span(self, at: int = 0, length: int = 0) -> Span:
        """The span of `length` characters at offset `at` of the SQL."""
        begin = self.start + max(0, min(at, len(self.sql)))
        return self.source.span(begin, min(begin + length, self.start + len(self.sql)))

    @property
    def label(self) -> str:
        return self.span().label


@dataclass(frozen=True, slots=True)
class Use:
    """A `pg` step running `site` with the parameters it passes, as far as load can tell."""

    site: Site
    step: n.MiddlewareStep
    params: ParamShape


def collect(index: ProgramIndex) -> tuple[list[Site], list[Use]]:
    """Every SQL site of the program (source order per module) and every `pg` step's use."""
    sites: list[Site] = []
    by_variable: dict[Span, Site] = {}
    for module in index.modules:
        for item in module.program.items:
            if isinstance(item, n.Variable):
                found = list(_variable_sites(item))
                sites += found
                if item.kind == "pg" and found:
                    by_variable[item.span] = found[0]
    uses: list[Use] = []
    for module in index.modules:
        for item in module.program.items:
            pipeline = getattr(item, "pipeline", None)
            if isinstance(pipeline, n.Pipeline):
                route = item if isinstance(item, n.Route) else None
                for step, shape in step_params(pipeline, route):
                    if step.name == "pg":
                        site = _pg_step_site(index, module, step, by_variable)
                        if site is not None:
                            uses.append(Use(site, step, shape))
                            if step.config_kind is not n.ConfigKind.IDENT:
                                sites.append(site)
                    elif step.name in _SCRIPTS:
                        sites += _inline_script_sites(step)
    return sites, uses


def _variable_sites(item: n.Variable) -> Iterator[Site]:
    start = body_start(item.span, item.body)
    if item.kind == "pg":
        site = pg_site(item.body, item.span.source, start)
        if site is not None:
            yield site
    elif item.kind in _SCRIPTS:
        yield from _script_sites(item.body, item.span.source, start, item.kind)


def _pg_step_site(index: ProgramIndex, module: Module, step: n.MiddlewareStep,
                  by_variable: dict[Span, Site]) -> Site | None:
    """The statement a `pg` step runs: its own text, or its variable's."""
    if step.config is None:
        return None
    if step.config_kind is n.ConfigKind.IDENT:
        variable = index.variable(module, "pg", step.config)
        return None if variable is None else by_variable.get(variable.span)
    start = config_start(step)
    return None if start is None else pg_site(step.config, step.span.source, start)


def _inline_script_sites(step: n.MiddlewareStep) -> Iterator[Site]:
    """`executeSql` literals of a Lua/JS step written inline (variables are scanned once,
    as declarations)."""
    start = config_start(step)
    if step.config is not None and start is not None:
        yield from _script_sites(step.config, step.span.source, start, step.name)


def pg_site(text: str, source: Source, start: int) -> Site | None:
    """The statement of a `pg` config as PostgreSQL gets it: `!raw` and the surrounding
    blanks and trailing `;` removed (as `compile_statement` does), positions kept."""
    lead = len(text) - len(text.lstrip())
    sql = text[lead:]
    if sql.startswith("!raw"):
        rest = sql[4:]
        lead += 4 + len(rest) - len(rest.lstrip())
        sql = rest.lstrip()
    sql = sql.rstrip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    return Site(sql, source, start + lead, "pg") if sql else None


def _script_sites(code: str, source: Source, start: int, language: str) -> Iterator[Site]:
    """`executeSql("literal", …)` calls of a Lua or JavaScript text, outside line comments.
    Literals with escapes or `${}` are skipped: their text is not the SQL that runs."""
    marker = _COMMENT.get(language, "--")
    for m in _CALL.finditer(code):
        line_start = code.rfind("\n", 0, m.start()) + 1
        if marker in code[line_start:m.start()]:
            continue
        group = next(g for g in ("dq", "sq", "bt", "long") if m.group(g) is not None)
        if (group == "bt" and language != "js") or (group == "long" and language != "lua"):
            continue
        text, offset = m.group(group), m.start(group)
        if group == "long" and text.startswith("\n"):  # Lua drops a first newline
            text, offset = text[1:], offset + 1
        site = pg_site(text, source, start + offset)
        if site is not None:
            yield Site(site.sql, source, site.start, "executeSql")


def body_start(span: Span, body: str) -> int:
    """Offset of a backtick or triple-quoted body that ends its node."""
    closing = 3 if span.source.text.endswith('"""', 0, span.end) else 1
    return span.end - closing - len(body)


def config_start(step: n.MiddlewareStep) -> int | None:
    """Offset of a backtick or quoted step config's first character (None otherwise)."""
    if step.config_kind not in (n.ConfigKind.BACKTICK, n.ConfigKind.QUOTED):
        return None
    quote = "`" if step.config_kind is n.ConfigKind.BACKTICK else '"'
    text = step.span.source.text
    at = text.find(f"{quote}{step.config}{quote}", step.span.start, step.span.end + 1)
    return None if at < 0 else at + 1
