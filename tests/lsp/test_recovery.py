"""The language server survives syntax errors: over stdio, a buffer with two syntax errors
(one an unclosed backtick) and a semantic one gets all three diagnostics, and the outline
and go-to-definition keep working for the rest of the file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lsp.test_protocol import Client, initialize, open_doc, position_of
from webpipe.lsp.analysis import analyze

pytest.importorskip("pygls", reason="the language server needs pygls (pip install webpipe[lsp])")

TEXT = """\
pipeline loadUser =
  |> jq: `{ id: 1 }`

GET /broken
  |> jq: `{ a: 1 }
  |> loadUser

GET /users/:id
  |> loadUser
  |> jqq: `.`

GET /branches
  |> result
    ok:
      |> jq: `.`

describe "users"
  it "loads one"
    when calling GET /users/1
    then status is 200
"""


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    client = Client()
    initialize(client)
    yield client
    client.request("shutdown", None)
    client.notify("exit", None)
    client.close()


def test_every_problem_is_published(client: Client, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "app.wp", TEXT)
    found = client.notification("textDocument/publishDiagnostics", uri)["diagnostics"]
    got = sorted((d["range"]["start"]["line"] + 1, d["code"], d["message"]) for d in found)
    assert got == [
        (5, "syntax", "unclosed backtick: this `…` string never ends"),
        (10, "unknown-name", "unknown middleware 'jqq'; did you mean 'jq'?"),
        (14, "syntax", "a result branch is written `name(status):`, for example `ok(200):`"),
    ]


def test_outline_keeps_the_items_that_parse(client: Client, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "outline.wp", TEXT)
    client.notification("textDocument/publishDiagnostics", uri)
    found = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert [s["name"] for s in found] == ["loadUser", "GET /users/:id", "users"]
    assert [c["name"] for c in found[-1]["children"]] == ["loads one"]


def test_definition_works_while_a_backtick_is_unclosed(client: Client, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "definition.wp", TEXT)
    client.notification("textDocument/publishDiagnostics", uri)
    [target] = client.request("textDocument/definition", {
        "textDocument": {"uri": uri}, "position": position_of(TEXT, "|> loadUser\n  |> jqq", 5)})
    assert target["range"]["start"] == position_of(TEXT, "pipeline loadUser =", 9)
    [route] = client.request("textDocument/definition", {
        "textDocument": {"uri": uri}, "position": position_of(TEXT, "GET /users/1", 5)})
    assert route["range"]["start"]["line"] == 7


def test_a_call_of_a_broken_declaration_is_not_a_second_error(tmp_path: Path) -> None:
    text = "pipeline load =\n  |> jq: `{ a: 1 }\n\nGET /a\n  |> load\n"
    found = analyze(text, tmp_path / "app.wp")
    assert [(d.code, d.span.line if d.span else 0) for d in found.diagnostics] == [
        ("syntax", 2)]


def test_a_did_you_mean_is_a_quick_fix(client: Client, tmp_path: Path) -> None:
    text = "pipeline loadUser =\n  |> jq: `{}`\n\nGET /a\n  |> loadUsr @asyn(x)\n"
    uri = open_doc(client, tmp_path / "fix.wp", text)
    client.notification("textDocument/publishDiagnostics", uri)
    line = {"line": 4, "character": 0}
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": {"start": line, "end": line},
        "context": {"diagnostics": []}})
    edits = {a["title"]: a["edit"]["changes"][uri] for a in actions}
    assert edits["Replace 'loadUsr' with 'loadUser'"] == [{"range": {
        "start": {"line": 4, "character": 5}, "end": {"line": 4, "character": 12}},
        "newText": "loadUser"}]
    assert edits["Replace '@asyn' with '@async'"][0]["newText"] == "@async"
    assert all(a["kind"] == "quickfix" for a in actions)


def test_no_fix_without_a_close_name() -> None:
    from webpipe.lsp.fixes import quick_fixes

    text = "GET /a\n  |> zzzzzz: `.`\n  |> jqq: `.`\n"
    found = analyze(text, Path("/tmp/app.wp")).diagnostics
    assert [f.new_text for f in quick_fixes(found, text, 0, len(text))] == ["jq"]
    assert quick_fixes(found, text, 0, 5) == []  # only the lines asked about
