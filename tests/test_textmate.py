"""The TextMate grammar (editors/vscode/syntaxes/webpipe.tmLanguage.json) and its VS Code wiring.

Editors run TextMate grammars on Oniguruma; these tests compile every regex with Python's
`re` (the grammar avoids constructs both engines do not share) and run a small highlighter
of begin/end and match rules over sample lines and the example programs. Embedded grammars
(`source.sql`, ...) are not loaded: the tests check that their regions get the right scope.
tests/test_textmate_vscode.py runs the grammars in VS Code's own engine, embedded ones too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
VSCODE = ROOT / "editors" / "vscode"
GRAMMAR_PATH = VSCODE / "syntaxes" / "webpipe.tmLanguage.json"
JQ_PATH = VSCODE / "syntaxes" / "jq.tmLanguage.json"
EMBEDDED = {"source.sql", "source.lua", "text.html.handlebars", "source.jq", "source.graphql"}

Rule = dict[str, Any]


@cache
def grammar() -> Rule:
    loaded: Rule = json.loads(GRAMMAR_PATH.read_text(encoding="utf-8"))
    return loaded


@cache
def compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def rules_in(node: object, where: str = "") -> Iterator[tuple[str, Rule]]:
    """Every rule object in the grammar, with a JSON-ish path for messages."""
    if isinstance(node, dict):
        if any(key in node for key in ("match", "begin", "include", "patterns")):
            yield where, node
        for key, value in node.items():
            yield from rules_in(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from rules_in(value, f"{where}/{index}")


# ---- a tiny TextMate engine: first match wins, ties go to the earlier rule ----------


@dataclass
class Frame:
    rule: Rule
    end: re.Pattern[str]
    scopes: list[str]  # the rule's name, then what is inside it (contentName)


def expand(rules: list[Rule]) -> Iterator[Rule]:
    """Match/begin rules reachable from `rules` through `#name` and `$self` includes."""
    for rule in rules:
        include = rule.get("include")
        if include == "$self":
            yield from expand(grammar()["patterns"])
        elif include is not None and include.startswith("#"):
            yield from expand([grammar()["repository"][include[1:]]])
        elif include is not None:
            continue  # another language's grammar: not loaded here
        elif "match" in rule or "begin" in rule:
            yield rule
        else:
            yield from expand(rule.get("patterns", []))


def highlight(text: str) -> list[list[str]]:
    """The scope names of every character of `text`."""
    scopes: list[list[str]] = [[] for _ in text]
    stack: list[Frame] = []
    base = 0
    for line in text.splitlines(keepends=True):
        pos = 0
        while pos < len(line):
            pos = step(line, pos, base, stack, scopes)
        base += len(line)
    return scopes


def step(line: str, pos: int, base: int, stack: list[Frame], out: list[list[str]]) -> int:
    """Handle the next match on `line` at or after `pos`; return where to continue."""
    inside = [s for frame in stack for s in frame.scopes]
    rules = list(expand(stack[-1].rule.get("patterns", []) if stack else grammar()["patterns"]))
    best: tuple[int, int, Rule | None, re.Match[str]] | None = None
    if stack and (m := stack[-1].end.search(line, pos)):
        best = (m.start(), -1, None, m)
    for order, candidate in enumerate(rules):
        m = compiled(candidate.get("match") or candidate["begin"]).search(line, pos)
        if m and (best is None or (m.start(), order) < best[:2]):
            best = (m.start(), order, candidate, m)
    if best is None:
        paint(out, base + pos, base + len(line), inside)
        return len(line)
    start, _, rule, m = best
    paint(out, base + pos, base + start, inside)
    if rule is None:  # the innermost region ends
        frame = stack.pop()
        outer = inside[:len(inside) - len(frame.scopes)] + frame.scopes[:1]
        paint_match(out, base, m, outer, frame.rule.get("endCaptures", {}))
        return m.end()
    names = [rule["name"]] if "name" in rule else []
    if "match" in rule:
        paint_match(out, base, m, inside + names, rule.get("captures", {}))
        return max(m.end(), start + 1)
    paint_match(out, base, m, inside + names, rule.get("beginCaptures", {}))
    content = rule["contentName"].split() if "contentName" in rule else []
    stack.append(Frame(rule, compiled(rule["end"]), names + content))
    return m.end()


def paint(out: list[list[str]], start: int, end: int, scopes: list[str]) -> None:
    for i in range(start, end):
        out[i] = list(scopes)


def paint_match(out: list[list[str]], base: int, m: re.Match[str], scopes: list[str],
                captures: dict[str, Rule]) -> None:
    paint(out, base + m.start(), base + m.end(), scopes)
    for group, capture in captures.items():
        start, end = m.span(int(group))
        if start < 0:
            continue
        for i in range(base + start, base + end):
            out[i] = out[i] + capture.get("name", "").split()
        for rule in expand(capture.get("patterns", [])):  # match rules inside a capture
            for inner in compiled(rule["match"]).finditer(m.string, start, end):
                for i in range(base + inner.start(), base + inner.end()):
                    out[i] = out[i] + rule["name"].split()


def scopes_of(text: str, needle: str, nth: int = 0) -> set[str]:
    """Scopes shared by every character of the `nth` occurrence of `needle`."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(needle, start + 1)
    painted = highlight(text)[start:start + len(needle)]
    return set.intersection(*(set(s) for s in painted))


# ---- the grammar file -------------------------------------------------------------


def test_grammar_is_json_with_its_scope_name() -> None:
    assert grammar()["scopeName"] == "source.webpipe"
    assert grammar()["fileTypes"] == ["wp"]


def test_every_regex_compiles_with_python_re() -> None:
    jq = json.loads(JQ_PATH.read_text(encoding="utf-8"))
    found = [(where, key, rule[key]) for node in (grammar(), jq)
             for where, rule in rules_in(node)
             for key in ("match", "begin", "end") if key in rule]
    assert len(found) > 60
    for where, key, pattern in found:
        try:
            re.compile(pattern)
        except re.error as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{where}/{key}: {pattern!r} does not compile: {exc}")


def test_every_include_resolves() -> None:
    repository = grammar()["repository"]
    for where, rule in rules_in(grammar()):
        include = rule.get("include")
        if include is None or include == "$self":
            continue
        if include.startswith("#"):
            assert include[1:] in repository, where
        else:
            assert include in EMBEDDED, where


def test_begin_rules_have_ends() -> None:
    for where, rule in rules_in(grammar()):
        assert ("begin" in rule) == ("end" in rule), where


# ---- embedded languages -----------------------------------------------------------

EMBEDDED_CASES = [
    ("GET /a\n  |> pg: `SELECT id FROM books`\n", "SELECT id", "source.sql"),
    ("GET /a\n  |> pg([.params.id, (.x // 1)]): `SELECT $1`\n", "SELECT $1", "source.sql"),
    ("GET /a\n  |> lua: `return { n = 1 }`\n", "return", "source.lua"),
    ("GET /a\n  |> handlebars: `<p>{{x}}</p>`\n", "<p>", "text.html.handlebars"),
    ("GET /a\n  |> mustache: `<p>{{x}}</p>`\n", "<p>", "text.html.handlebars"),
    ("GET /a\n  |> jq: `{ a: .b }`\n", "{ a: .b }", "source.jq"),
    ("GET /a\n  |> graphql: `{ books { title } }`\n", "books", "source.graphql"),
    ("graphqlSchema = `\n  type Query { a: Int }\n`\n", "type Query", "source.graphql"),
    ("pg allBooks = `SELECT 1`\n", "SELECT", "source.sql"),
    ("lua helper = `return 1`\n", "return", "source.lua"),
    ("handlebars page = `<p>{{x}}</p>`\n", "{{x}}", "text.html.handlebars"),
    ("mustache page = `<p>{{x}}</p>`\n", "{{x}}", "text.html.handlebars"),
    ("jq double = `. * 2`\n", ". * 2", "source.jq"),
    ("graphql q = `{ a }`\n", "{ a }", "source.graphql"),
    ("GET /a\n  |> jq: `.` @guard(`.x > 1`)\n", ".x > 1", "source.jq"),
]


@pytest.mark.parametrize(("text", "needle", "scope"), EMBEDDED_CASES)
def test_embedded_regions(text: str, needle: str, scope: str) -> None:
    found = scopes_of(text, needle)
    assert scope in found
    assert f"meta.embedded.block.{scope.split('.')[-1]}" in found


def test_a_region_ends_at_its_backtick_and_spans_lines() -> None:
    text = "pg t = `CREATE TABLE x (\n  id INT\n)`\nGET /a\n  |> jq: `.`\n"
    assert "source.sql" in scopes_of(text, "id INT")
    assert scopes_of(text, "GET") == {"keyword.other.method.webpipe"}
    assert "punctuation.definition.string.end.webpipe" in scopes_of(text, "`", 1)


def test_other_backtick_configs_are_plain_strings() -> None:
    text = "GET /a\n  |> validate: `{ name: string }`\n"
    assert scopes_of(text, "name: string") == {"string.quoted.other.backtick.webpipe"}
    assert "support.function.middleware.webpipe" in scopes_of(text, "validate")


GUARD_CASES = [  # (text, the part before the closing backtick, its scope)
    ("GET /a\n  |> pg: `SELECT 1 -- one`\nGET /b\n", "-- one", "comment.line.double-dash.sql"),
    ("pg q = `SELECT 1 /* a`\nGET /b\n", "/* a", "comment.block.sql"),
    ("GET /a\n  |> pg: `SELECT 'a`\nGET /b\n", "'a", "string.quoted.single.sql"),
    ("GET /a\n  |> lua: `return 1 -- one`\nGET /b\n", "-- one", "comment.line.double-dash.lua"),
    ("lua f = `return 1 --[[ x`\nGET /b\n", "--[[ x", "comment.block.lua"),
    ("GET /a\n  |> lua: `return \"a`\nGET /b\n", '"a', "string.quoted.double.lua"),
    ("GET /a\n  |> graphql: `{ a } # b`\nGET /b\n", "# b", "comment.line.number-sign.graphql"),
    ("graphqlSchema = `\n  \"\"\"doc\n`\nGET /b\n", '"""doc', "string.quoted.block.graphql"),
    ("GET /a\n  |> handlebars: `{{!-- x`\nGET /b\n", "{{!-- x", "comment.block.handlebars"),
    ("handlebars p = `<!-- x`\nGET /b\n", "<!-- x", "comment.block.html"),
]


@pytest.mark.parametrize(("text", "part", "scope"), GUARD_CASES)
def test_a_comment_or_string_stops_at_the_closing_backtick(text: str, part: str,
                                                           scope: str) -> None:
    assert scope in scopes_of(text, part)
    assert "punctuation.definition.string.end.webpipe" in scopes_of(text, "`", 1)
    assert scopes_of(text, "GET", text.count("GET") - 1) == {"keyword.other.method.webpipe"}


def test_task_names_in_async_and_join() -> None:
    text = ("GET /a\n  |> fetch: `u` @async(now)\n  |> join: `now, week`\n"
            "  |> join: week\n")
    assert "variable.other.definition.task.webpipe" in scopes_of(text, "now")
    assert "variable.other.task.webpipe" in scopes_of(text, "now", 1)
    assert "variable.other.task.webpipe" in scopes_of(text, "week")
    assert "variable.other.task.webpipe" in scopes_of(text, "week", 1)


def test_hash_inside_a_string_is_not_a_comment() -> None:
    text = "GET /a  # the route\n  |> jq: `\"#1\"`\n"
    assert "comment.line.number-sign.webpipe" in scopes_of(text, "# the route")
    assert "comment.line.number-sign.webpipe" not in scopes_of(text, "#1")


# ---- the rest of the language -----------------------------------------------------


def test_declarations_imports_and_config() -> None:
    text = ('import "lib/a.wp" as lib\n'
            "config pg {\n  host: $PG_HOST || \"localhost\"\n  port: 5432\n}\n"
            "pipeline load =\n  |> lib::stamp\n"
            "resolver Book.author =\n  |> jq: `.`\n")
    assert "keyword.control.import.webpipe" in scopes_of(text, "import")
    assert "entity.name.namespace.webpipe" in scopes_of(text, "lib", 1)
    assert "variable.other.property.webpipe" in scopes_of(text, "host")
    assert "variable.other.env.webpipe" in scopes_of(text, "$PG_HOST")
    assert "constant.numeric.webpipe" in scopes_of(text, "5432")
    assert "entity.name.function.pipeline.webpipe" in scopes_of(text, "load")
    assert "entity.name.function.call.webpipe" in scopes_of(text, "lib::stamp")
    assert "entity.name.type.webpipe" in scopes_of(text, "Book")
    assert "entity.name.function.resolver.webpipe" in scopes_of(text, "author")


def test_steps_tags_and_flow() -> None:
    text = ("GET /a\n  |> pg([.params.id]): byId @result(one) @!env(demo)\n"
            "  |> if\n    |> jq: `.x`\n  then:\n    |> jq: `1`\n  end\n")
    assert "keyword.operator.pipe.webpipe" in scopes_of(text, "|>")
    assert "support.function.middleware.webpipe" in scopes_of(text, "pg")
    assert "variable.other.webpipe" in scopes_of(text, "byId")
    assert "entity.other.attribute-name.tag.webpipe" in scopes_of(text, "result")
    assert "keyword.operator.negation.webpipe" in scopes_of(text, "!")
    assert "keyword.control.flow.webpipe" in scopes_of(text, "if")
    assert "keyword.control.flow.webpipe" in scopes_of(text, "then:")
    assert "keyword.control.flow.webpipe" in scopes_of(text, "end")


# ---- the example programs ---------------------------------------------------------


EXAMPLE_CASES = [  # (example, a unique context, the part of it to check, a scope it has)
    ("todos", "# A todo API", "", "comment.line.number-sign.webpipe"),
    ("todos", "pg allTodos", "allTodos", "variable.other.definition.webpipe"),
    ("todos", "SELECT id, title, done FROM todos ORDER BY id", "", "source.sql"),
    ("todos", "GET /todos/:id", "GET", "keyword.other.method.webpipe"),
    ("todos", "GET /todos/:id", "/todos/", "string.unquoted.path.webpipe"),
    ("todos", "GET /todos/:id", ":id", "variable.parameter.path.webpipe"),
    ("aggregate", "GET /dashboard\n  |> base", "base", "entity.name.function.call.webpipe"),
    ("todos", "|> pg: allTodos", "allTodos", "variable.other.webpipe"),
    ("todos", "validationError(422):", "validationError", "entity.name.label.branch.webpipe"),
    ("todos", "validationError(422):", "422", "constant.numeric.status.webpipe"),
    ("todos", 'describe "todos with', "describe", "keyword.control.test.webpipe"),
    ("todos", "mock pg.allTodos", "pg.allTodos", "entity.name.function.mock.webpipe"),
    ("todos", "mock pg.todoById returning `{ rows: [], rowCount: 0 }`", "rows: []",
     "source.jq"),
    ("todos", "when calling GET /todos/99", "calling", "keyword.control.test.webpipe"),
    ("todos", "when calling GET /todos/99", "/todos/99", "string.unquoted.path.webpipe"),
    ("todos", "then status is 404", "status", "variable.other.subject.webpipe"),
    ("todos", "then status is 404", "is", "keyword.operator.assertion.webpipe"),
    ("todos", "`.count` equals 1", "equals", "keyword.operator.assertion.webpipe"),
    ("todos", "`.count` equals 1", ".count", "string.quoted.other.backtick.webpipe"),
    ("todos", "with body `{ done: true }`", "with", "keyword.control.test.webpipe"),
    ("todos", "with body `{ done: true }`", "body", "keyword.control.test.webpipe"),
    ("lua", "local values = {}", "", "source.lua"),
    ("lua", "|> dispatch", "dispatch", "keyword.control.flow.webpipe"),
    ("lua", "case @when(empty):", "case", "keyword.control.flow.webpipe"),
    ("lua", "case @when(empty):", "when", "entity.other.attribute-name.tag.webpipe"),
    ("lua", "default:", "", "keyword.control.flow.webpipe"),
    ("lua", "median, sorted }`\n  end", "end", "keyword.control.flow.webpipe"),
    ("pages", "{{> @partial-block}}", "", "text.html.handlebars"),
    ("pages", "{{> bookRow}}", "", "text.html.handlebars"),
    ("pages", "select(.read | not)", "", "source.jq"),
    ("hello", "selector `h1` text equals", "selector", "keyword.control.test.webpipe"),
    ("hello", "selector `h1` text equals", "text", "keyword.control.test.webpipe"),
    ("hello", "ok(201):", "201", "constant.numeric.status.webpipe"),
]


@pytest.mark.parametrize(("name", "context", "part", "scope"), EXAMPLE_CASES)
def test_example_programs(name: str, context: str, part: str, scope: str) -> None:
    text = (ROOT / "examples" / name / "app.wp").read_text(encoding="utf-8")
    assert text.count(context) == 1, context
    start = text.index(context) + context.index(part or context)
    painted = highlight(text)[start:start + len(part or context)]
    assert scope in set.intersection(*(set(s) for s in painted))


def test_a_describe_block_ends_at_the_next_item() -> None:
    text = ('describe "a"\n  let n = `1`\n  it "b"\n    when calling GET /x\n'
            "    then status is 200\nGET /x\n  |> jq: `.`\n")
    assert "meta.test.webpipe" in scopes_of(text, "let")
    assert "meta.test.webpipe" in scopes_of(text, "is 200")
    assert "meta.test.webpipe" not in scopes_of(text, "GET", 1)
    assert "meta.test.webpipe" not in scopes_of(text, "|> jq")


# ---- the VS Code extension --------------------------------------------------------


def test_vscode_manifest_wires_grammar_language_and_server() -> None:
    manifest = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    [language] = manifest["contributes"]["languages"]
    [entry, jq] = manifest["contributes"]["grammars"]
    assert jq == {"scopeName": "source.jq", "path": "./syntaxes/jq.tmLanguage.json"}
    assert json.loads((VSCODE / jq["path"]).read_text(encoding="utf-8"))["scopeName"] == \
        "source.jq"
    assert language["id"] == entry["language"] == "webpipe"
    assert ".wp" in language["extensions"]
    assert (VSCODE / language["configuration"]).is_file()
    assert entry["scopeName"] == grammar()["scopeName"]
    assert (VSCODE / entry["path"]).resolve() == GRAMMAR_PATH
    assert set(entry["embeddedLanguages"]) == {
        f"meta.embedded.block.{scope.split('.')[-1]}" for scope in EMBEDDED}
    # main is the bundle `npm run build` (esbuild) makes from extension.js, before packaging
    # (vscode:prepublish) and on `npm install`/`npm ci` (prepare)
    assert manifest["main"] == "./dist/extension.js"
    assert manifest["scripts"]["build"].startswith("esbuild extension.js --bundle ")
    assert "--outfile=dist/extension.js" in manifest["scripts"]["build"]
    assert manifest["scripts"]["vscode:prepublish"] == manifest["scripts"]["prepare"] == \
        "npm run build"
    assert (VSCODE / "extension.js").is_file()
    assert "vscode-languageclient" in manifest["dependencies"]
    assert manifest["repository"]["directory"] == "editors/vscode"
    assert (VSCODE / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    ignored = (VSCODE / ".vscodeignore").read_text(encoding="utf-8").split()
    assert {"node_modules/**", "test/**", "extension.js"} <= set(ignored)
    json.loads((VSCODE / "language-configuration.json").read_text(encoding="utf-8"))
