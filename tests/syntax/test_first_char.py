"""`may_start_with` (webpipe/syntax/first_char.py), which decides where the parse driver
skips whitespace inside the next token's match: it may say "maybe" too often, never "no"
for a terminal that can match at one of the characters."""

from __future__ import annotations

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from webpipe.syntax import lark_tables
from webpipe.syntax.first_char import may_start_with
from webpipe.syntax.parser import _driver

WS = frozenset(" \t\f\r\n")
_FRONTEND = lark_tables.Lark_StandAlone().parser
TERMINALS = {t.name: t.pattern.to_regexp() for lexer in _FRONTEND.lexer.lexers.values()
             for t in lexer.scanner.terminals}


def test_forms_it_reads() -> None:
    no = ["abc", r"\|>", r"\$[A-Z]+", "[A-Za-z0-9_][A-Za-z0-9_-]*", "(?:headers|body)",
          "(GET|POST)(?![A-Za-z])", "-?[0-9]+", "@!?[a-z]+", "`[^`]*`", "(?<![ ])#", "$a",
          "(?P<x>a|b)c", "a{2}b", r"[\-\]x]+"]
    maybe = ["[ \t]+x", r"\ x", "a?\tb", "(?:a| )", "[^a]", ".x", r"\sx", r"\x20", "(?i:a)",
             "a*\n", "(?:a|)\r", "a{0,2}\f", "[\t-\r]", "( |x)", "(a", "a)b", r"[!-\x7f]"]
    for pattern in no:
        assert may_start_with(pattern, WS) is False, pattern
    for pattern in maybe:
        assert may_start_with(pattern, WS) is True, pattern


def test_every_grammar_terminal_that_can_start_with_whitespace_says_so() -> None:
    assert {name for name, p in TERMINALS.items() if may_start_with(p, WS)} == {
        "WS", "FOREACH_SELECTOR", "REST_OF_LINE", "CALL_PATH"}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(TERMINALS)), st.sampled_from(sorted(WS)),
       st.text(alphabet="ab/`\"#@!()[]:.-_ \t\n019GETwith", max_size=12))
def test_a_terminal_said_not_to_start_with_whitespace_never_matches_there(
        name: str, first: str, rest: str) -> None:
    if not may_start_with(TERMINALS[name], WS):
        assert regex.match(TERMINALS[name], first + rest) is None


def test_most_lexer_states_skip_whitespace_in_the_token_match() -> None:
    scanners = _driver()._scanners
    built = [scanners[state] for state in _FRONTEND.lexer.lexers]
    skipping = [s for s in built if s[2] is not None]
    assert len(skipping) > 0.8 * len(built)
    # the states reading a same-line terminal that starts with blanks keep the general way
    for state, lexer in _FRONTEND.lexer.lexers.items():
        names = {t.name for t in lexer.scanner.terminals}
        if names & {"FOREACH_SELECTOR", "REST_OF_LINE", "CALL_PATH"}:
            assert scanners[state][2] is None
