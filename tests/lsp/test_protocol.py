"""`webpipe lsp` over the real protocol: a subprocess spoken to in JSON-RPC over stdio."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from webpipe.source import Source
from webpipe.syntax.fmt import format_source

pytest.importorskip("pygls", reason="the language server needs pygls (pip install webpipe[lsp])")

DATA = Path(__file__).parent / "data"
APP = (DATA / "app.wp").resolve()
TIMEOUT = 20.0


class Client:
    """A minimal LSP client: Content-Length framing, requests by id, notifications queued."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "webpipe", "lsp"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.notes: list[dict[str, Any]] = []
        self.next_id = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            headers: dict[str, str] = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("ascii").partition(":")
                headers[name.strip().lower()] = value.strip()
            if not line:
                self.inbox.put(None)
                return
            self.inbox.put(json.loads(stream.read(int(headers["content-length"]))))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self._next()
            if message.get("id") == self.next_id and "method" not in message:
                assert "error" not in message, message["error"]
                return message.get("result")
            self.notes.append(message)

    def notification(self, method: str, uri: str) -> dict[str, Any]:
        """The next `method` notification about `uri` (earlier ones already queued first)."""
        while True:
            for index, note in enumerate(self.notes):
                if note.get("method") == method and note["params"].get("uri") == uri:
                    return self.notes.pop(index)["params"]  # type: ignore[no-any-return]
            self.notes.append(self._next())

    def _next(self) -> dict[str, Any]:
        message = self.inbox.get(timeout=TIMEOUT)
        assert message is not None, "the server closed its output"
        return message

    def close(self) -> int:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        try:
            return self.proc.wait(timeout=TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def initialize(client: Client) -> dict[str, Any]:
    result = client.request("initialize", {"processId": None, "rootUri": DATA.as_uri(),
                                           "capabilities": {}})
    client.notify("initialized", {})
    return result  # type: ignore[no-any-return]


def open_doc(client: Client, path: Path, text: str) -> str:
    uri = path.as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "webpipe", "version": 1, "text": text}})
    return uri


def position_of(text: str, needle: str, delta: int = 0) -> dict[str, int]:
    offset = text.index(needle) + delta
    line = text.count("\n", 0, offset)
    return {"line": line, "character": offset - (text.rfind("\n", 0, offset) + 1)}


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    client = Client()
    initialize(client)
    yield client
    client.request("shutdown", None)
    client.notify("exit", None)
    client.close()


def test_initialize_advertises_the_features() -> None:
    client = Client()
    try:
        caps = initialize(client)["capabilities"]
        assert caps["definitionProvider"] and caps["documentSymbolProvider"]
        assert caps["documentFormattingProvider"] and caps["hoverProvider"]
        assert "@" in caps["completionProvider"]["triggerCharacters"]
        assert client.request("shutdown", None) is None
        client.notify("exit", None)
        assert client.proc.wait(timeout=TIMEOUT) == 0
    finally:
        client.close()


def test_diagnostics_on_open_and_after_a_fix(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "app.wp"
    uri = open_doc(client, path, "GET /a\n  |> jqq: `.`\n")
    [problem] = client.notification("textDocument/publishDiagnostics", uri)["diagnostics"]
    assert problem["message"] == "unknown middleware 'jqq'; did you mean 'jq'?"
    assert problem["range"]["start"] == {"line": 1, "character": 2}
    assert problem["severity"] == 1 and problem["source"] == "webpipe"
    client.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": 2},
        "contentChanges": [{"range": {"start": {"line": 1, "character": 5},
                                      "end": {"line": 1, "character": 8}}, "text": "jq"}]})
    assert client.notification("textDocument/publishDiagnostics", uri)["diagnostics"] == []


def test_syntax_error_is_published(client: Client, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "bad.wp", "GET /a\n  |> jq: `.\n")
    [problem] = client.notification("textDocument/publishDiagnostics", uri)["diagnostics"]
    assert problem["code"] == "syntax"


def test_definition_across_files(client: Client) -> None:
    text = APP.read_text(encoding="utf-8")
    uri = open_doc(client, APP, text)
    client.notification("textDocument/publishDiagnostics", uri)
    [local] = client.request("textDocument/definition", {
        "textDocument": {"uri": uri}, "position": position_of(text, "|> loadBooks", 5)})
    assert local["uri"] == uri
    assert local["range"]["start"] == position_of(text, "pipeline loadBooks =", 9)
    [imported] = client.request("textDocument/definition", {
        "textDocument": {"uri": uri}, "position": position_of(text, '"lib/shared.wp"', 2)})
    assert imported["uri"] == (DATA / "lib" / "shared.wp").resolve().as_uri()


def test_document_symbols(client: Client) -> None:
    text = APP.read_text(encoding="utf-8")
    uri = open_doc(client, APP, text)
    found = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    names = [s["name"] for s in found]
    assert "loadBooks" in names and "GET /books/:id" in names
    describe = found[-1]
    assert [c["name"] for c in describe["children"]] == ["lists books", "loads books"]


def test_formatting(client: Client, tmp_path: Path) -> None:
    text = "GET /a\n|> jq: `.`\n\n\n\nGET /b\n    |> jq: `.`"
    uri = open_doc(client, tmp_path / "fmt.wp", text)
    [edit] = client.request("textDocument/formatting", {
        "textDocument": {"uri": uri}, "options": {"tabSize": 2, "insertSpaces": True}})
    assert edit["newText"] == format_source(Source.from_text("fmt.wp", text))
    assert edit["range"] == {"start": {"line": 0, "character": 0},
                             "end": {"line": 6, "character": 14}}


def test_hover_and_completion(client: Client, tmp_path: Path) -> None:
    text = "GET /a\n  |> jq: `.` @\n"
    uri = open_doc(client, tmp_path / "edit.wp", text)
    hover = client.request("textDocument/hover", {
        "textDocument": {"uri": uri}, "position": position_of(text, "jq", 1)})
    assert hover["contents"]["value"].startswith("**jq**")
    done = client.request("textDocument/completion", {
        "textDocument": {"uri": uri}, "position": position_of(text, "@", 1)})
    assert "async" in [item["label"] for item in done["items"]]


def test_positions_are_utf16_and_close_clears(client: Client, tmp_path: Path) -> None:
    text = 'GET /a\n  |> jq: `"\U0001F600"` @nope\n'
    uri = open_doc(client, tmp_path / "emoji.wp", text)
    [problem] = client.notification("textDocument/publishDiagnostics", uri)["diagnostics"]
    assert problem["code"] == "unknown-tag"
    # `@` is the 16th code point of the line; the emoji before it takes two UTF-16 units
    assert problem["range"]["start"] == {"line": 1, "character": 16}
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert client.notification("textDocument/publishDiagnostics", uri)["diagnostics"] == []


def test_untitled_buffers_are_checked(client: Client) -> None:
    uri = "untitled:Untitled-1"
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "webpipe", "version": 1, "text": "GET /a\n  |> nope\n"}})
    [problem] = client.notification("textDocument/publishDiagnostics", uri)["diagnostics"]
    assert problem["message"] == "unknown middleware or pipeline 'nope'"
