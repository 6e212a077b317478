"""Language-server features as plain functions (no pygls needed): webpipe/lsp/features.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from webpipe.check import KNOWN_TAGS
from webpipe.lsp import features as f
from webpipe.lsp.analysis import Document, analyze
from webpipe.lsp.docs import MIDDLEWARE_DOCS, TAG_DOCS
from webpipe.middleware import BUILTIN_MIDDLEWARE
from webpipe.source import Source
from webpipe.syntax.fmt import format_source

DATA = Path(__file__).parent / "data"
APP = DATA / "app.wp"
SHARED = (DATA / "lib" / "shared.wp").resolve()


@pytest.fixture(scope="module")
def doc() -> Document:
    return analyze(APP.read_text(encoding="utf-8"), APP)


def at(doc: Document, needle: str, delta: int = 0) -> int:
    """Offset of `needle` in the buffer (+ delta); the needle must be unique."""
    text = doc.source.text
    assert text.count(needle) == 1, needle
    return text.index(needle) + delta


def define(doc: Document, needle: str, delta: int = 0) -> list[tuple[str, int, str]]:
    """Definitions at a cursor as (file name, line, text of the name)."""
    return [(t.path.name, t.span.line if t.span else 0,
             t.span.source.text[t.span.start:t.span.end] if t.span else "")
            for t in f.definitions(doc, at(doc, needle, delta))]


# ---- diagnostics ------------------------------------------------------------------


def test_clean_fixture_has_no_diagnostics(doc: Document) -> None:
    assert doc.diagnostics == []
    assert doc.index is not None


def test_syntax_error_is_a_diagnostic_and_the_broken_item_is_not_indexed() -> None:
    found = analyze("GET /a\n  |> jq: `.\n", DATA / "broken.wp")
    assert found.index is not None and found.index.main.program.items == ()
    assert len(found.diagnostics) == 1
    assert found.diagnostics[0].code == "syntax"
    assert found.diagnostics[0].span is not None


def test_every_syntax_error_is_reported_like_check() -> None:
    text = "GET /a\n  |> jq: `.` @\n\nGET /b\n  |> result\n    ok:\n      |> jq: `.`\n"
    found = analyze(text, DATA / "broken.wp")
    assert [(d.code, d.span.line if d.span else 0) for d in found.diagnostics] == [
        ("syntax", 2), ("syntax", 6)]


def test_check_diagnostics_match_webpipe_check(tmp_path: Path) -> None:
    text = "GET /a\n  |> jqq: `.`\n  |> jq: `.` @nope\n"
    found = analyze(text, tmp_path / "app.wp")
    messages = [(d.span.line if d.span else 0, d.message) for d in found.diagnostics]
    assert (2, "unknown middleware 'jqq'; did you mean 'jq'?") in messages
    assert any(line == 3 and "unknown tag @nope" in m for line, m in messages)


def test_unsaved_text_resolves_imports_from_the_files_directory() -> None:
    text = 'import "lib/shared.wp" as shared\nGET /a\n  |> shared::stamp\n'
    found = analyze(text, DATA / "unsaved.wp")
    assert found.diagnostics == []
    assert found.index is not None
    assert SHARED in [m.path for m in found.index.modules]


def test_missing_import_reports_on_the_import_and_keeps_symbols(tmp_path: Path) -> None:
    text = 'import "nowhere.wp" as gone\npipeline p =\n  |> jq: `.`\n'
    found = analyze(text, tmp_path / "app.wp")
    assert [d.span.line for d in found.diagnostics if d.span] == [1]
    assert found.index is not None
    assert [s.name for s in f.symbols(found.index.main.program)] == ["gone", "p"]


def test_errors_in_an_imported_file_land_on_the_import_line(tmp_path: Path) -> None:
    (tmp_path / "lib.wp").write_text("pipeline p =\n  |> jq: `.\n", encoding="utf-8")
    found = analyze('\nimport "lib.wp" as lib\n', tmp_path / "app.wp")
    [problem] = found.diagnostics
    assert problem.span is not None and problem.span.line == 2
    assert problem.message.startswith(f"{tmp_path / 'lib.wp'}:")


# ---- symbols ----------------------------------------------------------------------


def test_document_symbols(doc: Document) -> None:
    assert doc.index is not None
    found = f.symbols(doc.index.main.program)
    assert [(s.kind, s.name) for s in found] == [
        ("import", "shared"), ("config", "config log"), ("variable", "allBooks"),
        ("variable", "row"), ("variable", "list"), ("schema", "graphqlSchema"),
        ("resolver", "books"), ("resolver", "Book.author"), ("pipeline", "loadBooks"),
        ("route", "GET /books"), ("route", "GET /books/:id"), ("describe", "books")]
    describe = found[-1]
    assert [(c.kind, c.name) for c in describe.children] == [
        ("test", "lists books"), ("test", "loads books")]


def test_symbol_selection_is_the_name(doc: Document) -> None:
    assert doc.index is not None
    text = doc.source.text
    picked = {(s.kind, s.name): text[s.selection.start:s.selection.end]
              for s in f.symbols(doc.index.main.program)}
    assert picked["variable", "allBooks"] == "allBooks"
    assert picked["pipeline", "loadBooks"] == "loadBooks"
    assert picked["resolver", "Book.author"] == "Book.author"
    assert picked["resolver", "books"] == "books"
    assert picked["route", "GET /books"] == "GET /books"
    assert picked["describe", "books"] == '"books"'
    assert picked["import", "shared"] == "shared"
    assert picked["config", "config log"] == "log"


# ---- definitions ------------------------------------------------------------------


def test_pipeline_call(doc: Document) -> None:
    assert define(doc, "|> loadBooks", 5) == [("app.wp", 25, "loadBooks")]


def test_scoped_pipeline_call_goes_to_the_imported_file(doc: Document) -> None:
    [target] = f.definitions(doc, at(doc, "shared::stamp", 10))
    assert target.path == SHARED
    assert target.span is not None and target.span.line == 4


def test_variable_config(doc: Document) -> None:
    assert define(doc, "|> pg: allBooks", 9) == [("app.wp", 8, "allBooks")]


def test_partials_in_step_config_and_in_variables(doc: Document) -> None:
    assert define(doc, "{{> list}}", 5) == [("app.wp", 12, "list")]
    assert define(doc, "{{> row}}", 6) == [("app.wp", 10, "row")]
    assert define(doc, "{{> shared/footer}}", 12) == [("shared.wp", 2, "footer")]


def test_import_path_goes_to_the_file(doc: Document) -> None:
    [target] = f.definitions(doc, at(doc, '"lib/shared.wp"', 3))
    assert target.path == SHARED and target.span is None


def test_resolvers_from_schema_graphql_step_and_tests(doc: Document) -> None:
    assert define(doc, "books: [Book!]!", 1) == [("app.wp", 19, "books")]
    assert define(doc, "author: String", 2) == [("app.wp", 22, "Book.author")]
    assert define(doc, "{ books { title } }", 3) == [("app.wp", 19, "books")]
    assert define(doc, "call query books", 13) == [("app.wp", 19, "books")]


def test_test_dsl_targets(doc: Document) -> None:
    assert define(doc, "mock pg.allBooks", 9) == [("app.wp", 8, "allBooks")]
    assert define(doc, "mock pipeline loadBooks", 16) == [("app.wp", 25, "loadBooks")]
    assert define(doc, "executing pipeline loadBooks", 20) == [("app.wp", 25, "loadBooks")]
    assert define(doc, "calling GET /books/7", 10) == [("app.wp", 34, "GET /books/:id")]


def test_nothing_to_define(doc: Document) -> None:
    assert define(doc, "|> jq: `[{ id: 1", 4) == []  # a middleware name
    assert define(doc, "then status is 200", 6) == []
    broken = analyze("GET /a\n  |> p: `", DATA / "broken.wp")
    assert f.definitions(broken, 10) == []


# ---- hover ------------------------------------------------------------------------


def test_every_builtin_middleware_and_known_tag_is_described() -> None:
    assert set(MIDDLEWARE_DOCS) == set(BUILTIN_MIDDLEWARE) | {"join"}  # join: an executor step
    assert set(TAG_DOCS) == KNOWN_TAGS


def test_hover_middleware(doc: Document) -> None:
    found = f.hover(doc, at(doc, "|> graphql:", 5))
    assert found is not None
    assert found.markdown.startswith("**graphql**: Execute a GraphQL operation")
    assert doc.source.text[found.span.start:found.span.end] == "graphql"


def test_hover_tag_and_flow(doc: Document) -> None:
    found = f.hover(doc, at(doc, "@async(one)", 2))
    assert found is not None and found.markdown.startswith("**@async**")
    text = "GET /a\n  |> result\n    ok(200):\n      |> jq: `.`\n"
    flow = f.hover(analyze(text, DATA / "x.wp"), text.index("result") + 1)
    assert flow is not None and flow.markdown.startswith("**result**")


def test_hover_previews_the_declaration(doc: Document) -> None:
    found = f.hover(doc, at(doc, "|> loadBooks", 5))
    assert found is not None
    assert "pipeline loadBooks =\n  |> pg: allBooks" in found.markdown
    assert found.markdown.startswith("```webpipe")


def test_hover_on_nothing(doc: Document) -> None:
    assert f.hover(doc, at(doc, "then status", 8)) is None


# ---- completion -------------------------------------------------------------------


def buffer(text: str, index_from: Document | None = None) -> Document:
    return Document(path=APP, source=Source.from_text(str(APP), text),
                    index=index_from.index if index_from else None)


def labels(items: list[f.Completion], kind: str) -> list[str]:
    return [c.label for c in items if c.kind == kind]


def test_middleware_names_after_pipe() -> None:
    text = "pipeline local =\n  |> jq: `.`\nGET /a\n  |> "
    items = f.completions(buffer(text), len(text))
    assert labels(items, "middleware") == sorted(BUILTIN_MIDDLEWARE)
    assert "result" in labels(items, "flow")
    assert labels(items, "pipeline") == ["local"]
    assert f.completions(buffer(text + "pg"), len(text) + 2) == items


def test_imported_pipelines_come_from_the_last_good_index(doc: Document) -> None:
    text = "GET /a\n  |> sh"
    items = f.completions(buffer(text, doc), len(text))
    assert "shared::stamp" in labels(items, "pipeline")


def test_tag_names_after_at() -> None:
    text = "GET /a\n  |> jq: `.` @"
    items = f.completions(buffer(text), len(text))
    assert labels(items, "tag") == sorted(KNOWN_TAGS)
    assert f.completions(buffer(text + "!fl"), len(text) + 3) == items


def test_variable_names_after_colon() -> None:
    text = "pg one = `SELECT 1`\njq two = `.`\nGET /a\n  |> pg([.x]): "
    items = f.completions(buffer(text), len(text))
    assert [(c.label, c.kind) for c in items] == [("one", "variable")]


def test_no_completion_elsewhere() -> None:
    text = "GET /a\n  |> jq: `.a`\n"
    assert f.completions(buffer(text), text.index(".a")) == []


# ---- formatting -------------------------------------------------------------------


def test_format_text_is_webpipe_fmt() -> None:
    text = APP.read_text(encoding="utf-8")
    assert f.format_text(text) == format_source(Source.from_text("x", text))
    assert f.format_text("GET /a\n  |> jq: `") is None
