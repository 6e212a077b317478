"""The VS Code grammars run by VS Code's own engine: `vscode-textmate` on Oniguruma, through
`editors/vscode/test/tokenize.js`, with the real SQL, Lua, Handlebars and GraphQL grammars
(tm-grammars) for the code `.wp` files embed and the jq grammar the extension ships.

Needs `node` and `npm`; the node modules are installed with `npm ci` into the extension's
folder once per lockfile (a stamp file remembers which), so later runs start at once.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
VSCODE = ROOT / "editors" / "vscode"
EXAMPLES = sorted((ROOT / "examples").glob("*/app.wp"))
NODE, NPM = shutil.which("node"), shutil.which("npm")

pytestmark = pytest.mark.skipif(not (NODE and NPM),
                                reason="node and npm run vscode-textmate (not installed here)")

Lines = list[list[list[Any]]]  # per line: [start, end, scope, ...] tokens


@pytest.fixture(scope="module")
def installed() -> None:
    """`npm ci` into editors/vscode unless the installed modules match the lockfile."""
    assert NPM is not None
    stamp = VSCODE / "node_modules" / ".webpipe-lockfile-sha256"
    digest = hashlib.sha256((VSCODE / "package-lock.json").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return
    done = subprocess.run([NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                          cwd=VSCODE, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"npm ci failed in {VSCODE}:\n{done.stdout}{done.stderr}"
    stamp.write_text(digest)


def tokenize(*files: Path) -> dict[Path, Lines]:
    assert NODE is not None
    done = subprocess.run([NODE, "test/tokenize.js", *map(str, files)], cwd=VSCODE,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return {Path(name): lines for name, lines in json.loads(done.stdout).items()}


def tokenize_text(tmp_path: Path, text: str) -> Lines:
    path = tmp_path / "snippet.wp"
    path.write_text(text, encoding="utf-8")
    return tokenize(path)[path]


def scopes_at(text: str, lines: Lines, needle: str, nth: int = 0) -> set[str]:
    """Scopes shared by every character of the `nth` occurrence of `needle` (one line)."""
    offset = -1
    for _ in range(nth + 1):
        offset = text.index(needle, offset + 1)
    line = text.count("\n", 0, offset)
    column = offset - (text.rfind("\n", 0, offset) + 1)
    found = [set(token[2:]) for token in lines[line]
             for _ in range(max(token[0], column), min(token[1], column + len(needle)))]
    assert len(found) == len(needle), (needle, lines[line])
    return set.intersection(*found)


def backticks(text: str, lines: Lines) -> list[tuple[int, str]]:
    """(line, "begin"/"end"/scopes) for each backtick outside a `#` comment of the file."""
    out: list[tuple[int, str]] = []
    for number, (line, tokens) in enumerate(zip(text.split("\n"), lines, strict=False), 1):
        for start, end, *scopes in tokens:
            for column in range(start, end):
                if line[column] != "`" or "comment.line.number-sign.webpipe" in scopes:
                    continue
                kind = [s.split(".")[3] for s in scopes
                        if s.startswith("punctuation.definition.string.") and
                        s.endswith(".webpipe")]
                out.append((number, kind[0] if kind else " ".join(scopes)))
    return out


def assert_balanced(text: str, lines: Lines) -> None:
    """Every backtick opens or closes a region of the .wp grammar, in turn: none is
    swallowed by the code inside it."""
    ticks = backticks(text, lines)
    want = ["begin", "end"] * (len(ticks) // 2)
    assert [kind for _, kind in ticks] == want, ticks
    assert len(ticks) % 2 == 0


@pytest.mark.usefixtures("installed")
def test_npm_ci_built_the_bundle_the_manifest_names() -> None:
    manifest = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    bundle = (VSCODE / manifest["main"]).read_text(encoding="utf-8")
    # vscode-languageclient is inside it, so the .vsix needs no node_modules
    assert "vscode" in _requires(bundle)
    assert set(_requires(bundle)) <= {"vscode", *NODE_BUILTINS}


NODE_BUILTINS = {"child_process", "crypto", "fs", "net", "os", "path", "util", "events",
                 "stream", "url", "assert", "buffer", "string_decoder", "tty", "worker_threads",
                 "node:child_process", "node:fs", "node:path", "node:os", "node:net"}


def _requires(bundle: str) -> list[str]:
    return re.findall(r"""require\(["']([^"']+)["']\)""", bundle)


@pytest.mark.usefixtures("installed")
def test_every_example_tokenizes_with_every_backtick_in_place() -> None:
    tokens = tokenize(*EXAMPLES)
    assert set(tokens) == set(EXAMPLES) and len(EXAMPLES) >= 7
    seen: set[str] = set()
    for path, lines in tokens.items():
        text = path.read_text(encoding="utf-8")
        assert len(lines) == text.count("\n") + 1
        assert_balanced(text, lines)
        seen |= {s for line in lines for token in line for s in token[2:]}
    # the embedded grammars were loaded and ran, not only named
    assert {"keyword.other.DML.sql", "keyword.control.lua", "support.function.builtin.jq",
            "variable.other.definition.task.webpipe", "variable.other.task.webpipe"} <= seen


SNIPPET = """GET /a
  |> pg: `SELECT 1 -- the one`
  |> lua: `return 1 -- one`
  |> lua: `return 1 --[[ block ]]`
  |> pg: `SELECT 'it''s' /* note`
  |> lua: `return "unclosed`
  |> jq: `. # a comment`
  |> graphql: `{ a } # graphql note`
  |> handlebars: `<p>{{! hb }}</p> <!-- open html`
  |> handlebars: `<p>{{!-- open hb`
GET /b
  |> jq: `.`
"""


@pytest.mark.usefixtures("installed")
def test_a_comment_or_string_before_the_closing_backtick_ends_there(tmp_path: Path) -> None:
    lines = tokenize_text(tmp_path, SNIPPET)
    assert_balanced(SNIPPET, lines)
    assert "comment.line.double-dash.sql" in scopes_at(SNIPPET, lines, "-- the one")
    assert "comment.line.double-dash.lua" in scopes_at(SNIPPET, lines, "-- one")
    assert "comment.block.lua" in scopes_at(SNIPPET, lines, "--[[ block ]]")
    assert "comment.block.sql" in scopes_at(SNIPPET, lines, "/* note")
    assert "comment.line.number-sign.jq" in scopes_at(SNIPPET, lines, "# a comment")
    assert "comment.line.number-sign.graphql" in scopes_at(SNIPPET, lines, "# graphql note")
    assert "comment.block.html" in scopes_at(SNIPPET, lines, "<!-- open html")
    assert "comment.block.handlebars" in scopes_at(SNIPPET, lines, "{{!-- open hb")
    assert scopes_at(SNIPPET, lines, "GET", 1) == {"source.webpipe",
                                                   "keyword.other.method.webpipe"}


JQ = ("GET /a\n  |> jq: `def twice(f): f | f; reduce .items[] as $x (0; . + $x)"
      ' | "n=\\(.n + 1)" | @base64 | if .ok then true else null end'
      ' | { total: length, first: .items[0]? // "none" }`\n')


@pytest.mark.usefixtures("installed")
def test_jq_is_highlighted_by_the_grammar_the_extension_ships(tmp_path: Path) -> None:
    lines = tokenize_text(tmp_path, JQ)
    assert_balanced(JQ, lines)
    expect = {"def": "storage.type.function.jq", "twice": "entity.name.function.jq",
              "reduce": "keyword.control.jq", "$x": "variable.other.jq",
              "items": "variable.other.property.jq", '"n=': "string.quoted.double.jq",
              "\\(": "punctuation.section.interpolation.begin.jq", "@base64":
              "support.function.format.jq", "if": "keyword.control.jq",
              "true": "constant.language.jq", "total": "support.type.property-name.jq",
              "length": "support.function.builtin.jq", "//": "keyword.operator.jq",
              "0;": "constant.numeric.jq"}
    for needle, scope in expect.items():
        found = scopes_at(JQ, lines, needle.rstrip(";"))
        assert {scope, "source.jq", "meta.embedded.block.jq"} <= found, (needle, found)


TASKS = """GET /a
  |> fetch: `https://a.example` @async(weather) @timeout(2000)
  |> fetch: `https://b.example` @async("news")
  |> join: `weather, news`
  |> join: `["weather"]`
  |> join: news
"""


@pytest.mark.usefixtures("installed")
def test_task_names_in_async_and_join_have_scopes(tmp_path: Path) -> None:
    lines = tokenize_text(tmp_path, TASKS)
    assert_balanced(TASKS, lines)
    definition, use = "variable.other.definition.task.webpipe", "variable.other.task.webpipe"
    assert definition in scopes_at(TASKS, lines, "weather")
    assert definition in scopes_at(TASKS, lines, "news")
    assert "entity.other.attribute-name.tag.webpipe" in scopes_at(TASKS, lines, "async")
    for needle, nth in (("weather", 1), ("news", 1), ("weather", 2), ("news", 2)):
        assert use in scopes_at(TASKS, lines, needle, nth), (needle, nth)
    assert "support.function.middleware.webpipe" in scopes_at(TASKS, lines, "join")
