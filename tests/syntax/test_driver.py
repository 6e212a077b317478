"""The parse driver (webpipe/syntax/driver.py) against Lark's own parser and `ToAst` walk.

Both paths must give the same AST with the same spans (node equality ignores spans, so the
comparison here lays every span out explicitly), the same comments and the same errors.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from lark.exceptions import UnexpectedInput

from tests.syntax.test_fuzz import mutated
from webpipe.errors import WpSyntaxError
from webpipe.source import Source, Span
from webpipe.syntax.driver import _token
from webpipe.syntax.parser import _driver, parse
from webpipe.syntax.transform import ToAst

ROOT = Path(__file__).resolve().parents[2]
WP_FILES = sorted(p for p in ROOT.rglob("*.wp")
                  if not any(part.startswith(".") for part in p.relative_to(ROOT).parts))

EDGES = {
    "empty": "",
    "only comments": "# one\n  # two\n",
    "empty bodies": "GET /a\nGET /b\n  |> if\n    then:\n  end\npipeline p =\n",
    "tags in parentheses": (
        "GET /t\n  |> jq: `.` @guard(`.a`) and (@flag(x) or @!env(prod)) @async(a)\n"
        "  |> join: a\n"),
    "comments everywhere": (
        "config pg { # c1\n  host: $H || \"x\" # c2\n}\n"
        "GET /c # c3\n  |> dispatch # c4\n    case @flag(a): # c5\n      |> jq: `1`\n"
        "    default:\n      |> jq: `2` # c6\n  end\n"),
    "tests": (
        'describe "d"\n  let n = 2\n  with mock pg returning `{}`\n'
        '  it "i"\n    when calling GET /x?n={{n}}\n    with body `{}`\n'
        '    then status is 200\n    and output `.a` equals 3\n'
        '    and selector `p` text equals hello there # note\n'
        '    and call query q with arguments `{}`\n'),
    "multi-line strings": (
        'handlebars page = """\n<p>{{x}}</p>\n"""\n'
        "GET /m\n  |> jq: `{\n    a: 1\n  }`\n  |> handlebars: page\n"),
    # whitespace is skipped in the same match as the token after it (driver `_skipping`)
    "whitespace of every kind": (
        "\f\r\n \tGET /w \t\f\n  |>\tjq: `.`   # c\n\n\r\n  |> foreach  \t items \n"
        "    |> jq: `.` \f\n  end\t \n  |> dispatch\n    case\t@flag(a)\t:\n"
        "      |> jq:\n        `1`\n  end \n\t \f"),
    "no final newline after blanks": "GET /e\n  |> jq: `.` @async(a)   \t",
    "a comment last, after blanks": "GET /e\n  |> jq: `.`\n\n   # the end",
}


def _layout(value: Any) -> Any:
    """Every field of an AST value, spans included, as nested tuples."""
    if isinstance(value, Span):
        return ("span", value.line, value.column, value.end_line, value.end_column,
                value.start, value.end)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (type(value).__name__, *((f.name, _layout(getattr(value, f.name))) for f in fields))
    if isinstance(value, tuple | list):
        return tuple(_layout(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _layout(v)) for k, v in value.items())
    return (type(value).__name__, value)


def _both(name: str, text: str) -> tuple[Any, Any]:
    results = []
    for lark_only in (True, False):
        try:
            results.append(_layout(parse(Source.from_text(name, text), lark_only=lark_only)))
        except WpSyntaxError as exc:
            results.append(("error", str(exc), exc.span and _layout(exc.span)))
    return results[0], results[1]


def _generated() -> str:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from parse_check import generate
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return generate(20_000)


@pytest.mark.parametrize("path", WP_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_file_parses_the_same(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lark, driver = _both(path.name, text)
    assert driver == lark
    if lark[0] != "error":  # a valid file is the driver's, not a fallback's
        source = Source.from_text(path.name, text)
        assert _driver().parse(source.text, ToAst(source)) is not None


@pytest.mark.parametrize("name", list(EDGES))
def test_edge_cases_parse_the_same(name: str) -> None:
    lark, driver = _both(name, EDGES[name])
    assert lark[0] == "Program"
    assert driver == lark


def test_the_benchmark_file_parses_the_same_with_its_comments() -> None:
    text = _generated()
    lark, driver = _both("gen.wp", text)
    assert driver == lark
    comments = dict(lark[1:])["comments"]
    assert len(comments) == text.count("# ttl below")


ERRORS = {
    "unexpected token": "GET /x\n  |> jq: `.`\n  |> )\n",
    "token another state reads": "GET /x\n  |> jq: `.`\nconfig pg {\n  host \"h\"\n}\n",
    "unreadable character": "GET /x\n  |> jq: `.`\n  ~~\n",
    "unexpected end": "GET /x\n  |> foreach data.items\n    |> jq: `.`\n",
    "unknown method": "FETCH /x\n  |> jq: `.`\n",
    "missing pipe": "GET /x\n  jq: `.`\n",
    "blanks before an unreadable character": "GET /x\n  |> jq: `.`\n \t\f ~~\n",
    "blanks before a token another state reads": "GET /x\n  |>   \t }\n",
    "blanks at the end of an unfinished file": "GET /x\n  |> foreach data.items  \n\t ",
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_syntax_errors_read_as_lark_reports_them(name: str) -> None:
    source = Source.from_text("bad.wp", ERRORS[name])
    with pytest.raises(UnexpectedInput) as raised:
        _driver().parse(source.text, ToAst(source))
    assert str(raised.value)  # a readable Lark exception, as Lark's own
    lark, driver = _both("bad.wp", ERRORS[name])
    assert lark[0] == "error"
    assert driver == lark


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_files_parse_or_fail_the_same(text: str) -> None:
    lark, driver = _both("fuzz.wp", text)
    assert driver == lark


def test_keyword_tables_read_as_lark_callbacks() -> None:
    """The driver's keyword tables (`_keywords`) give every word the type Lark's
    `UnlessCallback` gives it, in every lexer state."""
    lexers = _driver()._lexers
    scanners = {state: _driver()._scanners[state] for state in lexers}  # sets `callback`
    words = {t.pattern.value for lexer in lexers.values() for cb in lexer.callback.values()
             for t in cb.scanner.terminals}
    words |= {w + "x" for w in words} | {w[:-1] for w in words} | {"x", "GET", "a-b", "_"}
    checked = 0
    for state, lexer in lexers.items():
        keywords = scanners[state][1]
        for kind, callback in lexer.callback.items():
            for word in sorted(words):
                token = _token(kind, word, 0, len(word))
                assert keywords[kind].get(word, kind) == callback(token).type, (kind, word)
                checked += 1
    assert checked > 1000
