"""Human messages for syntax errors.

Lark reports "unexpected token X, expected one of {…}"; users need "unclosed backtick",
"missing `|>`", "`end` missing after `foreach`". These functions look at the failing
position (and the parser's value stack) and return `(message, start, end)` offsets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lark import Token
from lark.exceptions import UnexpectedToken

from webpipe.source import Source

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_NAMES = {
    "_PIPE": "`|>`", "IDENT": "a name", "SCOPED": "a name `alias::name`",
    "BACKTICK": "a `backtick` string", "STRING": 'a "quoted" string', "NUMBER": "a number",
    "PATH": "a route path", "CALL_PATH": "a path such as `/users/1`",
    "METHOD": "a route method", "COLON": "`:`", "EQUAL": "`=`",
    "LBRACE": "`{`", "RBRACE": "`}`", "LPAR": "`(`", "RPAR": "`)`", "COMMA": "`,`",
    "END": "`end`", "THEN_COLON": "`then:`", "ELSE_COLON": "`else:`",
    "DEFAULT_COLON": "`default:`", "BRANCH_HEAD": "a result branch like `ok(200):`",
    "TAG_NAME": "a tag", "TAG_CALL": "a tag", "ENV_REF": "`$VARIABLE`",
    "ASSERT_OP": "a comparison (equals, contains, matches, is, …)",
    "REST_OF_LINE": "a value", "FOREACH_SELECTOR": "a selector such as `items` or `data.rows`",
    "NAME_ARGS": "a step name", "$END": "end of file", "MOCK_TOKEN": "a mock target",
    "WITH_MOCK": "`with mock`",
    "CLAUSE_KIND": "input, body, headers or cookies", "WHEN": "`when`",
    "TRIPLE_STRING": 'a """triple-quoted""" string',
}
_TOP_LEVEL_HINT = ("expected a route (`GET /path`), `pipeline NAME =`, a variable "
                   "(`TYPE NAME = `…``), `config`, `import`, `featureFlags =`, `query`, "
                   "`mutation`, `resolver`, `graphqlSchema =` or `describe`")
_SELECTOR_HINT = ("a selector check is `exists`, `does not exist`, `text <op> V`, "
                  "`count <op> N` or `attribute `name` <op> V`")
_WORD_AT_LINE_START = re.compile(r"[ \t]*([A-Za-z0-9_][A-Za-z0-9_-]*)\s*(?:\(|\[|:)")
_KEYWORDS = {"config", "import", "featureFlags", "graphqlSchema", "query", "mutation",
             "resolver", "pipeline", "describe", "it", "let", "with", "and", "then", "when",
             "case", "default", "end"}


def human(terminal: str) -> str:
    if terminal in _NAMES:
        return _NAMES[terminal]
    if terminal.isupper() and terminal.isalpha():
        return f"`{terminal.lower()}`"
    return terminal


def expected_list(expected: Iterable[str]) -> str:
    names = sorted({human(t) for t in expected if not t.startswith("__")})
    if not names or len(names) > 5:
        return ""
    return "; expected " + (names[0] if len(names) == 1 else ", ".join(names[:-1])
                            + " or " + names[-1])


def describe_unexpected_char(source: Source, pos: int, allowed: Iterable[str] | None,
                             ) -> tuple[str, int, int]:
    text = source.text
    ch = text[pos]
    backtick = _missing_opening(source, pos) or _unbalanced_backtick(source)
    if backtick is not None:
        return backtick
    if ch == "`" and text.find("`", pos + 1) == -1:
        return "unclosed backtick: this `…` string never ends", pos, pos + 1
    if ch == '"' and text.find('"', pos + 1) == -1:
        return 'unclosed string: this "…" string never ends', pos, pos + 1
    line_start = text.rfind("\n", 0, pos) + 1
    before = text[line_start:pos]
    if re.search(r"@!?[A-Za-z0-9_-]+\([^)]*$", before):
        return ("tag arguments must be names or `backtick` strings "
                "(write jq in backticks: @guard(`.x == 1`))"), pos, pos + 1
    if before.rstrip().endswith(":") and "|>" in before:
        return ("a step config must be a `backtick` string, a \"quoted\" string or a name"
                ), pos, pos + 1
    missing = _missing_pipe(source, pos)
    if missing:
        return missing
    word = re.match(r"\S+", text[pos:])
    shown = word.group(0) if word else ch
    return f"unexpected {shown!r}" + expected_list(allowed or ()), pos, pos + len(shown)


def describe_unexpected_token(source: Source, exc: UnexpectedToken) -> tuple[str, int, int]:
    tok: Token = exc.token
    expected = set(exc.expected)
    start = tok.start_pos if tok.start_pos is not None else len(source.text)
    end = tok.end_pos if tok.end_pos is not None else start
    if tok.type == "$END":
        start = end = len(source.text.rstrip())
    backtick = _missing_opening(source, start) or _unbalanced_backtick(source)
    if backtick is not None:
        return backtick
    opener = _open_block(exc)
    if "RBRACE" in expected and "IDENT" in expected:
        return "`}` missing: this config block is not closed", start, end
    if "BRANCH_HEAD" in expected and _line_word_colon(source, start):
        return ("a result branch is written `name(status):`, for example `ok(200):`",
                start, end)
    if "END" in expected and opener and opener[0] == "foreach":
        line = source.position(opener[1])[0]
        return (f"`end` missing: the `foreach` opened at line {line} is not closed",
                start, end)
    if "THEN_COLON" in expected:
        return "`if` needs a `then:` branch after its condition", start, end
    if tok.type == "PATH":
        return _bad_method(source, start, exc)
    missing = _missing_pipe(source, start)
    if missing:
        return missing
    what = "end of file" if tok.type == "$END" else repr(str(tok))
    line_start = source.text.rfind("\n", 0, start) + 1
    before = source.text[line_start:start]
    if "selector" in before and ("then" in before or "and" in before):
        return f"unexpected {what}: {_SELECTOR_HINT}", start, end
    if _stack_has(exc, "EQUAL") and tok.type == "IDENT" and "BACKTICK" in expected:
        return "a variable body must be a `backtick` string", start, end
    if _stray_top_level(source, line_start, exc):
        return f"cannot read this line: {_TOP_LEVEL_HINT}", line_start, end
    return f"unexpected {what}" + expected_list(expected), start, end


def _line_word_colon(source: Source, pos: int) -> bool:
    line_start = source.text.rfind("\n", 0, pos) + 1
    return re.match(r"[ \t]*[A-Za-z0-9_-]+[ \t]*:", source.text[line_start:]) is not None


def _stray_top_level(source: Source, line_start: int, exc: UnexpectedToken) -> bool:
    """A line at column 1 that no top-level item accepts (`IDENT IDENT` then junk)."""
    if not re.match(r"[A-Za-z0-9_]", source.text[line_start:line_start + 1]):
        return False
    parser = getattr(exc, "interactive_parser", None)
    stack = parser.parser_state.value_stack if parser is not None else []
    tokens = [v for v in stack if isinstance(v, Token)]
    return bool(tokens) and all((t.start_pos or 0) >= line_start for t in tokens) \
        and tokens[0].type == "IDENT"


def _unbalanced_backtick(source: Source) -> tuple[str, int, int] | None:
    """An odd number of backticks: find the string that swallowed following code."""
    text = source.text
    positions = [i for i, ch in enumerate(text) if ch == "`"]
    for open_, close in zip(positions[::2], positions[1::2], strict=False):
        body = text[open_ + 1:close]
        if re.search(r"\n[ \t]*\|>|\n(GET|POST|PUT|PATCH|DELETE|pipeline|describe) ", body):
            end_line = source.position(close)[0]
            return (f"unclosed backtick: this string runs on to line {end_line} "
                    "(backtick strings may span lines)", open_, open_ + 1)
    if len(positions) % 2 == 0:
        return None
    last = positions[-1]
    return _missing_opening(source, last) or \
        ("unclosed backtick: this `…` string never ends", last, last + 1)


_STEP_CONFIG = re.compile(
    r"[ \t]*\|>[ \t]*[A-Za-z0-9_:-]+(?:\([^)\n]*\)|\[[^\]\n]*\])?[ \t]*:[ \t]*")
_VARIABLE_BODY = re.compile(r"[A-Za-z0-9_-]+[ \t]+[A-Za-z0-9_-]+[ \t]*=[ \t]*")


def _missing_opening(source: Source, pos: int) -> tuple[str, int, int] | None:
    """A step config or variable body that ends with a backtick (on its line, or the lines
    up to the next step) but does not start with one: report the missing one where it
    belongs, not the closing one as unclosed (that would swallow the file up to the next
    backtick)."""
    text = source.text
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start:line_end if line_end >= 0 else len(text)]
    m = _STEP_CONFIG.match(line) or _VARIABLE_BODY.match(line)
    if m is None:
        return None
    rest = line[m.end():]
    if "`" not in rest:  # a body over several lines: up to the next step or item
        after = text[line_start + len(line):]
        stop = re.search(r"\n(?:[ \t]*\|>|[^ \t\n])", after)
        rest += after[:stop.start() if stop else len(after)]
    if rest[:1] in ("`", '"', "") or rest.count("`") % 2 == 0 or "@" in rest.split("`")[0]:
        return None
    at = line_start + m.end()
    return ("missing opening backtick: this config ends with ` but does not start with one "
            "(write `…`)"), at, at + 1


def _bad_method(source: Source, path_start: int, exc: UnexpectedToken,
                ) -> tuple[str, int, int]:
    line_start = source.text.rfind("\n", 0, path_start) + 1
    word = source.text[line_start:path_start].strip()
    offset = source.text.find(word, line_start)
    if word in METHODS and _stack_has(exc, "CONFIG"):
        return "`}` missing: the config block above is not closed", offset, offset + len(word)
    return (f"unknown route method {word!r}; expected one of {', '.join(METHODS)}",
            offset, offset + len(word))


def _missing_pipe(source: Source, pos: int) -> tuple[str, int, int] | None:
    """`  jq: ...` on a line after a route or step: the user forgot `|>`."""
    line_start = source.text.rfind("\n", 0, pos) + 1
    m = _WORD_AT_LINE_START.match(source.text, line_start)
    if not m or m.group(1) in _KEYWORDS or (m.end() < pos - 1 and pos > m.end() + 1):
        return None
    if _in_result_block(source.text[:line_start]) and \
            re.match(r"[ \t]*[A-Za-z0-9_-]+[ \t]*:", source.text[line_start:]):
        return ("a result branch is written `name(status):`, for example `ok(200):`",
                m.start(1), m.end(1))
    prev = source.text[:line_start].rstrip()
    prev_line = prev[prev.rfind("\n") + 1:].strip()
    if not prev_line.startswith(("|>", "GET", "POST", "PUT", "PATCH", "DELETE", "pipeline ")) \
            and not prev_line.endswith(("`", '"', ":", "=")):
        return None
    return (f"missing `|>` before step {m.group(1)!r}", m.start(1), m.end(1))


def _stack_has(exc: UnexpectedToken, token_type: str) -> bool:
    parser = getattr(exc, "interactive_parser", None)
    stack = parser.parser_state.value_stack if parser is not None else []
    return any(isinstance(v, Token) and v.type == token_type for v in stack)


def _in_result_block(before: str) -> bool:
    at = before.rfind("|> result")
    return at >= 0 and re.search(r"\n[^ \t\n#]", before[at:]) is None


def _open_block(exc: UnexpectedToken) -> tuple[str, int] | None:
    """The innermost `foreach`/`if`/`dispatch` keyword still open on the parser stack."""
    parser = getattr(exc, "interactive_parser", None)
    if parser is None:
        return None
    for value in reversed(parser.parser_state.value_stack):
        if isinstance(value, Token) and value.type in ("FOREACH", "IF", "DISPATCH"):
            return value.type.lower(), value.start_pos or 0
    return None
