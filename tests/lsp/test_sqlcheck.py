"""Issue 24 outcomes 3 and 4 in the editor: with `webpipe.checkDatabase` on, a save prepares
the file's SQL on the database (a real embedded PostgreSQL), the errors are published at
the SQL's position, hover on a `pg` variable lists its columns and completion after
`.data.rows[0].` offers them. A newer save cancels a check still in flight."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.lsp.test_protocol import Client, position_of
from webpipe.errors import Diagnostic
from webpipe.lsp.sqlcheck import DatabaseChecks, column_completions, column_hover
from webpipe.pgembed import default_data_dir, embedded_url
from webpipe.source import Source
from webpipe.sqlcheck import SqlReport
from webpipe.sqlcheck.prepare import Column, Prepared

pytest.importorskip("pygls", reason="the language server needs pygls (pip install webpipe[lsp])")

APP = """pg byId = `SELECT id, name FROM users WHERE id = $1`
pg broken = `SELECT nmae FROM users`

GET /users/:id
  |> pg([.params.id | tonumber]): byId
  |> jq: `.data.byId.rows[0].name`

GET /list
  |> pg: `SELECT id, name, created FROM users`
  |> jq: `.data.rows[0].id`
"""
REPORT = SqlReport(prepared={
    "SELECT id, name FROM users WHERE id = $1": Prepared(
        ("int4",), (Column("id", "int4"), Column("name", "text"))),
    "SELECT id, name, created FROM users": Prepared(
        (), (Column("id", "int4"), Column("name", "text"), Column("created", "timestamptz"))),
})


def offset_after(text: str, needle: str) -> int:
    return text.index(needle) + len(needle)


def test_hover_on_a_pg_variable_lists_its_columns() -> None:
    for at in (APP.index("byId"), APP.index(": byId") + 3):
        markdown = column_hover(REPORT, None, APP, at)
        assert markdown is not None
        assert "| `id` | int4 |" in markdown and "| `name` | text |" in markdown
        assert "**Parameters**: $1: int4" in markdown
    assert column_hover(REPORT, None, APP, APP.index("jq")) is None
    assert column_hover(None, None, APP, APP.index("byId")) is None


def test_completion_after_rows_offers_the_columns() -> None:
    named = column_completions(REPORT, None, APP, offset_after(APP, ".data.byId.rows[0]."))
    assert [c.name for c in named] == ["id", "name"]
    nearest = column_completions(REPORT, None, APP, offset_after(APP, "`.data.rows[0]."))
    assert [(c.name, c.type) for c in nearest][-1] == ("created", "timestamptz")
    assert column_completions(REPORT, None, APP, APP.index("GET /list")) == []


def test_diagnostics_stay_on_lines_not_edited_since() -> None:
    old = Source("app.wp", APP)
    line2 = old.span(APP.index("nmae"), APP.index("nmae") + 4)
    checks = DatabaseChecks()
    checks.shown["u"] = (old, [Diagnostic('column "nmae" does not exist', line2)])
    moved = Source("app.wp", "# a new first line\n" + APP)
    [kept] = checks.kept("u", moved)
    assert (kept.span.line, kept.span.column) == (3, line2.column)  # type: ignore[union-attr]
    assert moved.text[kept.span.start:kept.span.end] == "nmae"  # type: ignore[union-attr]
    edited = Source("app.wp", APP.replace("nmae", "name"))
    assert checks.kept("u", edited) == []


async def test_a_newer_save_cancels_the_check_in_flight(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        ) -> None:
    """A server that accepts and never answers keeps the first check waiting."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgres://postgres@127.0.0.1:{port}/x")
    app = tmp_path / "app.wp"
    app.write_text(APP)
    checks = DatabaseChecks(enabled=True)
    first = asyncio.create_task(checks.run("u", app))
    for _ in range(400):
        if accepted:
            break
        await asyncio.sleep(0.05)
    second = asyncio.create_task(checks.run("u", app))
    assert await asyncio.wait_for(first, 30) is None  # cancelled by the newer save
    second.cancel()
    assert await asyncio.wait_for(second, 30) is None
    assert checks.running == {}
    for writer in accepted:
        writer.close()
    server.close()
    await server.wait_closed()


# ---- over the protocol, against the embedded PostgreSQL -----------------------------


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = embedded_url(default_data_dir(tmp_path_factory.mktemp("lsp-sql")))
    name = f"lsp_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        admin = await asyncpg.connect(url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        app = await asyncpg.connect(urlunsplit(urlsplit(url)._replace(path=f"/{name}")))
        try:
            await app.execute("CREATE TABLE users (id SERIAL PRIMARY KEY, name TEXT, "
                              "created TIMESTAMPTZ DEFAULT now())")
        finally:
            await app.close()

    asyncio.run(create())
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
def client(database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.setenv("DATABASE_URL", database)  # inherited by the server process
    for name in ("WP_PG_HOST", "WP_PG_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    client = Client()
    client.request("initialize", {"processId": None, "rootUri": None, "capabilities": {},
                                  "initializationOptions": {"checkDatabase": True}})
    client.notify("initialized", {})
    yield client
    client.request("shutdown", None)
    client.notify("exit", None)
    client.close()


def test_save_publishes_sql_errors_and_feeds_hover_and_completion(
        client: Client, tmp_path: Path) -> None:
    path = tmp_path / "app.wp"
    path.write_text(APP)
    uri = path.as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "webpipe", "version": 1, "text": APP}})
    assert client.notification("textDocument/publishDiagnostics", uri)["diagnostics"] == []
    client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    assert client.notification("textDocument/publishDiagnostics", uri)["diagnostics"] == []
    checked: dict[str, Any] = client.notification("textDocument/publishDiagnostics", uri)
    [problem] = checked["diagnostics"]
    assert problem["message"].startswith('column "nmae" does not exist\nhint: Perhaps')
    assert problem["range"]["start"] == position_of(APP, "nmae")
    assert problem["code"] == "sql" and problem["severity"] == 1
    hover = client.request("textDocument/hover", {
        "textDocument": {"uri": uri}, "position": position_of(APP, "byId", 1)})
    assert "| `name` | text |" in hover["contents"]["value"]
    done = client.request("textDocument/completion", {
        "textDocument": {"uri": uri}, "position": position_of(APP, "`.data.rows[0].", 15)})
    assert {"id", "name", "created"} <= {item["label"] for item in done["items"]}


def test_the_vscode_extension_passes_the_setting() -> None:
    import json

    vscode = Path(__file__).parents[2] / "editors" / "vscode"
    manifest = json.loads((vscode / "package.json").read_text(encoding="utf-8"))
    setting = manifest["contributes"]["configuration"]["properties"]["webpipe.checkDatabase"]
    assert setting["type"] == "boolean" and setting["default"] is False
    script = (vscode / "extension.js").read_text(encoding="utf-8")
    assert 'checkDatabase: config.get("checkDatabase", false)' in script
    assert 'configurationSection: "webpipe"' in script


def test_the_setting_is_read_from_options_and_configuration_changes() -> None:
    from webpipe.lsp.server import _check_database

    assert _check_database({"checkDatabase": True})
    assert not _check_database({"checkDatabase": "yes"})
    assert not _check_database(None)


def test_typing_is_answered_while_a_check_waits_for_the_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that never answers holds the save's check (until the 5 s connect timeout);
    the edit's diagnostics and a hover are answered meanwhile, the check's warning last."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the backlog; nothing ever answers
        monkeypatch.setenv("DATABASE_URL",
                           f"postgres://postgres@127.0.0.1:{silent.getsockname()[1]}/x")
        client = Client()
        try:
            client.request("initialize", {"processId": None, "rootUri": None,
                                          "capabilities": {},
                                          "initializationOptions": {"checkDatabase": True}})
            client.notify("initialized", {})
            path = tmp_path / "app.wp"
            path.write_text(APP)
            uri = path.as_uri()
            client.notify("textDocument/didOpen", {"textDocument": {
                "uri": uri, "languageId": "webpipe", "version": 1, "text": APP}})
            client.notification("textDocument/publishDiagnostics", uri)
            client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
            client.notification("textDocument/publishDiagnostics", uri)  # the save's analysis
            client.notify("textDocument/didChange", {
                "textDocument": {"uri": uri, "version": 2},
                "contentChanges": [{"text": APP + "\nGET /x\n  |> nope\n"}]})
            hover = client.request("textDocument/hover", {
                "textDocument": {"uri": uri}, "position": position_of(APP, "jq", 1)})
            assert hover["contents"]["value"].startswith("**jq**")
            edit = client.notification("textDocument/publishDiagnostics", uri)["diagnostics"]
            assert [d["message"] for d in edit] == ["unknown middleware or pipeline 'nope'"]
            nope, late = client.notification("textDocument/publishDiagnostics",
                                              uri)["diagnostics"]
            assert nope == edit[0]  # the buffer as it is now, with the check's outcome
            assert late["message"].startswith("SQL statements not checked: cannot connect")
            assert late["severity"] == 2
            client.request("shutdown", None)
            client.notify("exit", None)
        finally:
            client.close()
