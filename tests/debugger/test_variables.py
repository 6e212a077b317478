"""The state as DAP variables, edits by copy, breakpoint binding and the message framing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from webpipe.cli import _inspect_flags, cli
from webpipe.debugger.breakpoints import Breakpoints, LineIndex
from webpipe.debugger.variables import children, jq_path, set_in
from webpipe.debugger.wire import MAX_BODY, WireError, encode, read_message
from webpipe.loader import load_source
from webpipe.source import Source


def test_set_in_copies_the_path_and_leaves_the_original_alone() -> None:
    shared = {"keep": [1]}
    state = {"params": {"id": "1"}, "other": shared, "list": [{"a": 1}, {"a": 2}]}
    edited = set_in(state, ("list", 1, "a"), 9)
    assert edited["list"][1] == {"a": 9} and state["list"][1] == {"a": 2}
    assert edited["other"] is shared  # untouched branches are shared, not copied
    with pytest.raises(KeyError):
        set_in(state, ("params", "id", "deeper"), 1)


def test_children_names_paths_and_pages() -> None:
    refs: list[tuple[str | int, ...]] = []

    def ref_of(path: tuple[str | int, ...]) -> int:
        refs.append(path)
        return len(refs)

    rows = children([*range(10), {"x": 1}], ("items",), ref_of, start=9, count=5)
    assert [(r["name"], r["evaluateName"], r["variablesReference"]) for r in rows] == [
        ("[9]", ".items[9]", 0), ("[10]", ".items[10]", 1)]
    assert refs == [("items", 10)]
    assert jq_path(("odd key", 0, "ok")) == '."odd key"[0].ok'
    assert jq_path(()) == "."


def test_breakpoints_bind_to_the_innermost_step_and_rebind_when_the_file_changes() -> None:
    text = ("GET /a\n  |> jq: `.`\n  |> if\n    |> jq: `.x`\n  then:\n"
            "    |> jq: `{\n      y: 1\n    }`\n  end\n")
    program = load_source(Source.from_text("app.wp", text), Path("/tmp/dap/app.wp"))
    index = LineIndex()
    index.add(program, tests=False)
    key = str(Path("/tmp/dap/app.wp").resolve())
    marks = Breakpoints()
    answers = marks.set(key, [2, 4, 7, 1], index)
    assert [(a["verified"], a["line"]) for a in answers] == [
        (True, 2), (True, 4), (True, 6), (False, 1)]
    # a reload with a line added on top: the asked lines stay (the editor moves its own
    # markers and sends them again); the ones whose binding changed are reported
    moved = load_source(Source.from_text("app.wp", "\n" + text), Path("/tmp/dap/app.wp"))
    index.add(moved, tests=False)
    changed = marks.rebind(index)
    assert [(a["id"], a["verified"], a["line"]) for a in changed] == [
        (1, False, 2), (3, True, 7)]


async def _read(data: bytes) -> object:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return await read_message(reader)


async def test_framing() -> None:
    assert await _read(encode({"seq": 1, "type": "request"})) == {"seq": 1, "type": "request"}
    assert await _read(b"") is None
    for broken in (b"Content-Length: 3\r\n\r\n[1]", b"X: 1\r\n\r\n{}",
                   b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1), b"Content-Length: 9\r\n\r\n{}",
                   b"Content-Length: 2\r\n"):
        with pytest.raises(WireError):
            await _read(broken)


def test_cli_flags(tmp_path: Path) -> None:
    assert _inspect_flags(["--port", "1", "--inspect", "--inspect-port=7"]) == [
        "--inspect", "--inspect-port", "7"]
    assert _inspect_flags(["--port", "1"]) == []
    app = tmp_path / "app.wp"
    app.write_text("GET /a\n  |> jq: `.`\n")
    result = CliRunner().invoke(cli, ["serve", str(app), "--inspect", "--workers", "2"])
    assert result.exit_code == 2 and "--inspect cannot be combined" in result.output
