"""Mutations of the repository's own `.wp` files, and the one property every stage keeps.

`mutated()` draws a corpus file (tests/ and examples/) and applies one to four edits: a
character range or a line deleted, a line or range duplicated, two lines swapped, a comment
line or a trailing comment added, a grammar token or an odd character inserted, a slice of
another corpus file spliced in; or, keeping the file's shape, a backtick text replaced by
another one of the corpus (or by tokens), a step's middleware renamed, a route's path
replaced.

`run_stages()` pushes the text through parse, the checker's error recovery, load
(`build_env` + `build_served`), the static checks and `fmt`: only `WebpipeError`s may
escape, and a file that parses formats to a fixed point with the same AST and comments.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from hypothesis import strategies as st

from webpipe.check import check_env
from webpipe.errors import CheckError, WebpipeError, WpSyntaxError
from webpipe.executor.env import build_env
from webpipe.executor.process_tasks import PROCESS_TASKS
from webpipe.loader import load_source
from webpipe.recovered import check_recovered, recovered_index
from webpipe.server import build_served
from webpipe.source import Source
from webpipe.syntax.fmt import format_source
from webpipe.syntax.layout import misplaced_steps
from webpipe.syntax.parser import parse
from webpipe.syntax.recover import Recovery, recover

ROOT = Path(__file__).resolve().parent.parent
TOKENS = [
    "|>", "|> ", "`", '"', '"""', "#", "# note\n", "@", "@!", "end", "then:", "else:",
    "default:", "case ", "case @flag(x):", "|> if\n", "|> dispatch\n", "|> foreach .x\n",
    "|> result\n", "ok(200):", "error(500):", "|> join: `a`", "@async(a)", "@timeout(5)",
    "pipeline p =\n", "GET /", "POST /x/:id", "/:id", "/:id/:id", "/*rest", ":", "::",
    "import \"", "import \"./x.wp\" as x\n", "config x {", "{", "}", "(", ")", "[", "]", ",",
    "$", "$X || 1", "||", "=", "describe \"d\"\n", "it \"x\"\n", "when calling GET /\n",
    "with mock jq returning `1`\n", "and mock jq returning `2`\n", "then status is 200\n",
    "let x = 1\n", "with body `{}`", "|> validate: `{ a: string, b: number }`",
    "|> jq: `.`", "|> lua: `return 1`", "|> handlebars: `{{x}}`", "|> pg: `select 1`",
    "99999999999999999999", "-1", "0", "\n", "\n\n", "  ", "    ", "\t", "\r", "\r\n",
    "\x00", "\x0b", "\x7f", "\u00e9", "\ufeff", "\u2028", "\U0001f600", "\\", "\\0",
]
MIDDLEWARE = ["jq", "lua", "handlebars", "pg", "fetch", "graphql", "validate", "assert", "auth",
              "cache", "rateLimit", "log", "debug", "join", "stdin", "mustache", "nosuch"]
LINE_OPS = ["delete_line", "duplicate_line", "swap_lines", "comment_line", "comment_after"]
RANGE_OPS = ["delete", "duplicate", "insert", "splice"]
# edits that keep the file's structure, so that load and check see odd configs and names
SHAPE_OPS = ["swap_config", "swap_name", "swap_path"]
_BACKTICK = re.compile(r"`[^`]*`")
_STEP_NAME = re.compile(r"(?<=\|> )[A-Za-z][A-Za-z0-9_]*")
_ROUTE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (\S+)", re.M)


@cache
def corpus() -> tuple[tuple[Path, str], ...]:
    """Every `.wp` file of the repository's tests and examples, with its text."""
    files = sorted([*(ROOT / "tests").rglob("*.wp"), *(ROOT / "examples").rglob("*.wp")])
    return tuple((p, p.read_text(encoding="utf-8")) for p in files)


def _edit_lines(draw: st.DrawFn, text: str, op: str) -> str:
    lines = text.split("\n")
    i = draw(st.integers(0, len(lines) - 1))
    if op == "delete_line":
        del lines[i]
    elif op == "comment_line":  # a comment on a line of its own, indented like the next
        lines.insert(i, lines[i][:len(lines[i]) - len(lines[i].lstrip())] + "# note")
    elif op == "comment_after":
        lines[i] += " # note"
    elif op == "duplicate_line":
        lines.insert(i, lines[i])
    else:
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def _edit_range(draw: st.DrawFn, text: str, op: str) -> str:
    pos = draw(st.integers(0, len(text)))
    size = draw(st.integers(1, 40))
    if op == "delete":
        return text[:pos] + text[pos + size:]
    if op == "duplicate":
        return text[:pos] + text[pos:pos + size] + text[pos:]
    if op == "insert":
        return text[:pos] + draw(st.sampled_from(TOKENS)) + text[pos:]
    _, other = draw(st.sampled_from(corpus()))
    start = draw(st.integers(0, len(other)))
    return text[:pos] + other[start:start + size * 8] + text[pos:]


@cache
def configs() -> tuple[str, ...]:
    """Every backtick text of the corpus: step configs, variables, tag arguments, values."""
    return tuple(sorted({m.group() for _, text in corpus() for m in _BACKTICK.finditer(text)}))


def _edit_shape(draw: st.DrawFn, text: str, op: str) -> str:
    pattern = {"swap_config": _BACKTICK, "swap_name": _STEP_NAME, "swap_path": _ROUTE}[op]
    found = list(pattern.finditer(text))
    if not found:
        return text
    match = draw(st.sampled_from(found))
    if op == "swap_config":
        new = draw(st.sampled_from(configs()) | st.builds(
            lambda parts: "`" + "".join(parts) + "`",
            st.lists(st.sampled_from([t for t in TOKENS if "`" not in t]), max_size=6)))
        return text[:match.start()] + new + text[match.end():]
    if op == "swap_name":
        return text[:match.start()] + draw(st.sampled_from(MIDDLEWARE)) + text[match.end():]
    path = draw(st.sampled_from(["/", "/a/:id", "/a/*rest", "/:x-y/:x__y", "/a/:id/:id",
                                 "/%00", "/a b", "/:", "/*", "/:1/*2", "//"]))
    return text[:match.start(2)] + path + text[match.end(2):]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Path, str]:
    """A corpus file's path (imports resolve beside it) and its mutated text."""
    path, text = draw(st.sampled_from(corpus()))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(LINE_OPS + RANGE_OPS + SHAPE_OPS))
        if op in SHAPE_OPS:
            text = _edit_shape(draw, text, op)
        elif op in LINE_OPS:
            text = _edit_lines(draw, text, op)
        else:
            text = _edit_range(draw, text, op)
    return path, text


def run_stages(path: Path, text: str) -> None:
    """Parse, recover, load, check and format `text` as if it were the file `path`."""
    source = Source.from_text(path.name, text)
    try:
        program = parse(source)
    except WpSyntaxError as exc:
        assert exc.span is not None, f"syntax error without a position: {exc.message}"
        str(exc)
        recovery = recover(source)
        assert recovery.errors, "the checker's recovery lost the error"
        _check_the_rest(source, path, recovery)
        return
    _load(source, path)
    if misplaced_steps(program):  # fmt refuses these files (webpipe/syntax/layout.py)
        with pytest.raises(CheckError):
            format_source(source)
        return
    formatted = format_source(source)
    again = Source.from_text(path.name, formatted)
    assert parse(again) == program, "fmt changed the AST"
    assert [c.text.rstrip() for c in parse(again).comments] == \
        [c.text.rstrip() for c in program.comments], "fmt lost or changed a comment"
    assert format_source(again) == formatted, "fmt is not idempotent"


def _check_the_rest(source: Source, path: Path, recovery: Recovery) -> None:
    """What recovery kept loads and checks like any program (only diagnostics come out)."""
    if recovery.program is not None:
        assert all(i.span.source is source for i in recovery.program.items)
    saved = PROCESS_TASKS.limits
    try:
        index = recovered_index(source, path, recovery)
        if index is not None:
            for diagnostic in check_recovered(index, recovery):
                diagnostic.render()
    finally:
        PROCESS_TASKS.configure(saved)


def _load(source: Source, path: Path) -> None:
    saved = PROCESS_TASKS.limits  # build_served configures the process-wide task caps
    try:
        env = build_env(load_source(source, path), None, {})
        build_served(env)
        for diagnostic in check_env(env):
            diagnostic.render()
    except WebpipeError as exc:
        str(exc)
    finally:
        PROCESS_TASKS.configure(saved)
