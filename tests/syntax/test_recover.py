"""Syntax recovery: every error of a file, resync at the next top-level item (an unclosed
backtick swallows its own item only), and a program of what parses, placed in the file."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from pytest import MonkeyPatch

from webpipe.source import Source
from webpipe.syntax import nodes as n
from webpipe.syntax.parser import parse
from webpipe.syntax.recover import item_ranges, recover

TWO_ERRORS = """\
pipeline load =
  |> jq: `{ a: 1 }`

GET /broken
  |> jq: `{ unclosed
  |> load

graphql q = `
query {
  users { id }
}
`

GET /branch
  |> result
    ok:
      |> jq: `.`

GET /fine
  |> load
"""


def test_every_error_is_found_and_the_rest_is_kept() -> None:
    source = Source("app.wp", TWO_ERRORS)
    found = recover(source)
    assert [(e.span.line if e.span else 0, e.message.split(":")[0]) for e in found.errors] == [
        (5, "unclosed backtick"), (16, "a result branch is written `name(status)")]
    assert found.program is not None
    kept = [getattr(i, "name", None) or getattr(i, "path", None) for i in found.program.items]
    assert kept == ["load", "q", "/fine"]
    assert all(i.span.source is source for i in found.program.items)
    assert [TWO_ERRORS[a:b].split("\n")[0] for a, b in found.dropped] == [
        "GET /broken", "GET /branch"]


def test_a_string_holding_an_item_like_line_is_not_cut() -> None:
    # `query {` at column 1 inside the graphql variable is not an item start
    starts = [TWO_ERRORS[a:b].split("\n")[0] for a, b in item_ranges(TWO_ERRORS)]
    assert starts == ["pipeline load =", "GET /broken", "graphql q = `", "GET /branch",
                      "GET /fine"]


def test_a_file_that_parses_is_returned_as_is() -> None:
    source = Source("app.wp", "GET /a\n  |> jq: `.`\n")
    found = recover(source)
    assert found.errors == [] and found.program == parse(source)


def test_positions_of_errors_in_later_items_are_those_of_the_file() -> None:
    text = "GET /a\n  |> jq: `.`\n" * 3 + "GET /b\n  |> jq: `.` @guard(.x)\n"
    [error] = recover(Source("app.wp", text)).errors
    assert error.span is not None and (error.span.line, error.span.column) == (8, 21)


@given(st.text(alphabet="ab\n", max_size=40), st.data())
def test_an_item_source_has_the_lines_of_a_fresh_one(text: str, data: st.DataObject) -> None:
    source = Source("x.wp", text)
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    start = data.draw(st.sampled_from(starts))
    end = data.draw(st.integers(start, len(text)))
    part = source.item(start, end)
    fresh = Source("x.wp", part.text)
    assert len(part.text) == end
    assert [part.position(i) for i in range(end + 1)] == [fresh.position(i) for i in
                                                        range(end + 1)]
    assert part.text[start:] == text[start:end]


def test_program_items_are_nodes() -> None:
    found = recover(Source("app.wp", TWO_ERRORS))
    assert found.program is not None
    assert isinstance(found.program.items[0], n.NamedPipeline)


def test_the_fallback_loop_also_keeps_the_rest() -> None:
    from webpipe.syntax.recover import _one_by_one

    text = "GET /a\n  |> jq: `.` @guard(.x)\n\nGET /b\n  |> jq: `.`\n\nGET /c\n  jq: `1`\n"
    found = _one_by_one(Source("app.wp", text))
    assert [e.span.line for e in found.errors if e.span] == [2, 8]
    assert found.program is not None and len(found.program.items) == 1
    assert [text[a:b].split("\n")[0] for a, b in found.dropped] == ["GET /a", "GET /c"]


def test_check_reports_a_broken_import_as_well(tmp_path: Path, monkeypatch: MonkeyPatch,
                                               ) -> None:
    from webpipe.check import check_file

    (tmp_path / "lib.wp").write_text("GET /x\n  |> jq: `.` @guard(.y)\n\nGET /z\n  jq: `1`\n")
    (tmp_path / "app.wp").write_text(
        'import "./lib.wp" as lib\n\nGET /a\n  |> jq: `{ a: 1 }\n')
    monkeypatch.chdir(tmp_path)
    found = [(d.span.source.name if d.span else "", d.span.line if d.span else 0)
             for d in check_file("app.wp")]
    assert found == [("app.wp", 4), ("lib.wp", 2), ("lib.wp", 5)]


def test_check_also_checks_the_items_that_parse(tmp_path: Path) -> None:
    from webpipe.check import check_file

    app = tmp_path / "app.wp"
    app.write_text(TWO_ERRORS + "\nGET /typo\n  |> jqq: `.`\n")
    found = [(d.span.line if d.span else 0, d.code) for d in check_file(app)]
    assert found == [(5, "syntax"), (16, "syntax"), (23, "unknown-name")]
