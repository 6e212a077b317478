"""A tighter run of Lark's own LALR automaton, building our AST during the parse.

The parse table and the contextual lexer's per-state scanners come from `lark_tables.py`,
the parser Lark's standalone tool generated from `grammar/webpipe.lark` (regen.py). That
file carries its own copy of Lark's runtime, so the objects read here are the ones frozen
in it, not the installed Lark's internals, and any Lark release can be installed. This
module runs that table with those scanners in one loop and calls `ToAst`'s rule methods
at each reduction. No Lark tree is built and no Lark wrapper chain runs, which roughly
halves the load time of a large file (benchmarks W10). Three shortcuts read as Lark would
(spec/decisions.md): whitespace is matched with the token after it where no terminal
tried first can begin with whitespace (`_skipping`), keywords come from a table
(`_keywords`), and a one-symbol `?rule` is reduced inside the loop.

It reproduces Lark's tree shaping (`lark.parse_tree_builder` with LALR, no placeholders):
anonymous and `_`-named tokens are filtered out, the values of `_`-named rules (Lark's
repetition helpers) are spliced into their parent, a `?rule` with one child passes it on,
and a node spans from its first to its last child as `propagate_positions` does (a child
passed on by a `?rule` keeps the extent of the rule that passed it, a token its own).

A syntax error raises the exception Lark's parser would raise there (the same expected
terminals and parser stack; where no terminal of the state matches, the token any terminal
would read, as Lark's contextual lexer does), so `parser.parse` words it as before. A
`WpSyntaxError` from a rule method makes `parse` return None and `parser.parse` runs Lark
itself, so errors keep Lark's order. tests/syntax/test_driver.py compares both paths on
every `.wp` file of the repository, on error cases and on generated files.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.tree import Meta

from webpipe.errors import WpSyntaxError
from webpipe.syntax.first_char import may_start_with
from webpipe.syntax.transform import ToAst

Extent = tuple[int, int] | None
_new_str = str.__new__


@dataclass(frozen=True, slots=True)
class _Rule:
    goto: str  # the nonterminal to shift after reducing
    size: int  # symbols on the right-hand side
    keep: tuple[tuple[int, bool], ...] | None  # (index, splice) kept; None: all, as they are
    name: str  # the rule method to call (alias, else the rule's name)
    expand1: bool  # `?rule`: one child is passed on as it is
    splice: bool  # `_rule`: the children are spliced into the parent
    method: Callable[[ToAst, Extent, list[Any]], Any] | None  # ToAst's, None keeps a tree
    passes: bool  # `?rule` of one symbol: its value and extent stay (`_run` inlines it)


_Action = int | _Rule  # a state to shift to, or a rule to reduce by
# compiled alternations, keywords by terminal (`_keywords`), the alternation after skipped
# whitespace or None
_Scanner = tuple[tuple[Any, ...], dict[str, dict[str, str]], Any]
_RUN_OF = re.compile(r"\[([^]\\^-]+)\]\+")  # `[ \t\n]+`: a run of literal characters


class _Scanners(dict[int, _Scanner]):
    """Each parser state's scanner, compiled on first use as Lark does (87 distinct ones)."""

    def __init__(self, lexers: dict[int, Any]) -> None:
        super().__init__()
        self._lexers = lexers
        self._built: dict[int, _Scanner] = {}

    def __missing__(self, state: int) -> _Scanner:
        basic = self._lexers[state]
        found = self._built.get(id(basic))
        if found is None:
            # building the scanner sets `callback`
            mres = tuple(_plain(mre) for mre in basic.scanner._mres)
            keywords = {k: _keywords(k, f) for k, f in basic.callback.items()
                        if k not in basic.ignore_types}
            found = self._built[id(basic)] = (mres, keywords, _skipping(basic, mres))
        self[state] = found
        return found


def _keywords(kind: str, callback: Any) -> dict[str, str]:
    """Lark's `UnlessCallback` as a table: a `kind` token whose whole text is one of the
    keywords becomes that keyword (its scanner's first alternation to match all of it, the
    first keyword equal to it, as the keywords are plain strings)."""
    scanner = getattr(callback, "scanner", None)
    terminals = getattr(scanner, "terminals", None)
    if scanner is None or terminals is None or scanner.g_regex_flags or any(
            t.pattern.type != "str" or t.pattern.flags for t in terminals):
        raise TypeError(f"the tables' lexer callback for {kind} is not a keyword check the "
                        "driver can read; see driver.py `_keywords`")
    table: dict[str, str] = {}
    for terminal in terminals:
        table.setdefault(terminal.pattern.value, terminal.name)
    return table


def _skipping(basic: Any, mres: tuple[Any, ...]) -> Any:
    """The state's alternation preceded by a possessive run of its ignored whitespace
    terminal (`[ \t\f\r\n]*+(?:...)`), so one match skips the whitespace and reads the
    token after it; None where that could read differently. It reads the same as matching
    the alternation twice, first the whitespace, when no terminal tried before the
    whitespace one could match at a whitespace character (first_char.py): the alternation
    then picks whitespace there, all of it, and the parser state does not change. A failed
    match is retried the general way (`_run`)."""
    terminals = basic.scanner.terminals
    run = next(((i, m) for i, t in enumerate(terminals) if t.name in basic.ignore_types
                and (m := _RUN_OF.fullmatch(t.pattern.to_regexp())) is not None), None)
    if run is None or len(mres) != 1:
        return None
    index, found = run
    chars = frozenset(found.group(1))
    if any(may_start_with(t.pattern.to_regexp(), chars) for t in terminals[:index]):
        return None
    engine = re if isinstance(mres[0], re.Pattern) else basic.scanner.re_
    return engine.compile(f"{found.group(0)[:-1]}*+(?:{mres[0].pattern})", mres[0].flags)


def _plain(mre: Any) -> Any:
    """The same alternation compiled by `re`, faster than the `regex` module that the
    grammar needs only for NAME_ARGS' recursion (that scanner keeps its `regex` pattern)."""
    try:
        return re.compile(mre.pattern)
    except re.error:
        return mre


class Driver:
    """Lark's tables and scanners for one grammar, run by `parse`."""

    def __init__(self, tables: ModuleType) -> None:
        """`tables`: the generated parser module (`lark_tables`)."""
        frontend = tables.Lark_StandAlone().parser
        table = frontend.parser.parser.parse_table
        shift = tables.Shift  # the generated module numbers its actions: Shift = 0
        self._start: int = table.start_states["start"]
        self._end: int = table.end_states["start"]
        rules: dict[Any, _Rule] = {}
        self._states: dict[int, dict[str, _Action]] = {
            state: {kind: _action(action == shift, arg, rules)
                    for kind, (action, arg) in acts.items()}
            for state, acts in table.states.items()}
        self._scanners = _Scanners(frontend.lexer.lexers)
        self._lexers = frontend.lexer.lexers
        self._root = frontend.lexer.root_lexer
        self._ignore: frozenset[str] = frozenset(self._root.ignore_types)

    def parse(self, text: str, ast: ToAst) -> tuple[Any, list[Token]] | None:
        """The start rule's value and the comment tokens; None when a rule method raised
        `WpSyntaxError` (see module docstring). A syntax error raises the exception Lark's
        parser would raise (`UnexpectedToken` or `UnexpectedCharacters`), with the same
        expectations and parser stack."""
        try:
            return self._run(text, ast)
        except WpSyntaxError:
            return None

    def _run(self, text: str, ast: ToAst) -> tuple[Any, list[Token]] | None:
        # one loop, longer than our functions are: it runs per token and per reduction,
        # where each call costs (W10 makes ~14 000 tokens and ~24 000 reductions)
        states, scanners, ignore, new_str = self._states, self._scanners, self._ignore, _new_str
        stack = [self._start]
        values: list[Any] = []
        extents: list[Extent] = []
        comments: list[Token] = []
        pos, length, last = 0, len(text), 0
        while True:
            if pos < length:
                mres, keywords, skipping = scanners[stack[-1]]
                m = skipping.match(text, pos) if skipping is not None else None
                if m is None:
                    m = self._scan(text, pos, mres, stack[-1], values)
                kind: str = m.lastgroup
                pos, end = m.span(kind)
                if kind in ignore:
                    if kind == "COMMENT":
                        comments.append(_token(kind, m.group(kind), pos, end))
                    pos = end
                    continue
                word = m.group(kind)
                table = keywords.get(kind)
                if table is not None:
                    kind = table.get(word, kind)
                token = new_str(Token, word)  # `_token`, inlined
                token.type, token.value, token.start_pos, token.end_pos = kind, word, pos, end
                token.line = token.column = token.end_line = token.end_column = None
                extent: Extent = (pos, end)
                pos = last = end
            else:
                kind, token, extent = "$END", None, None
            while True:
                action = states[stack[-1]].get(kind)
                if action is None:
                    raise self._parse_error(token, values, stack[-1], last)
                if isinstance(action, int):
                    stack.append(action)
                    values.append(token)
                    extents.append(extent)
                    break
                if action.passes:  # `_reduce` of a one-symbol `?rule`, inlined
                    stack[-1] = states[stack[-2]][action.goto]  # type: ignore[assignment]
                    value = values[-1]
                    if isinstance(value, Token):  # Lark gives it no container extent
                        extents[-1] = (value.start_pos or 0, value.end_pos or 0)
                else:
                    value, where = _reduce(action, stack, values, extents, ast)
                    stack.append(states[stack[-1]][action.goto])  # type: ignore[arg-type]
                    values.append(value)
                    extents.append(where)
                if token is None and stack[-1] == self._end:
                    return value, comments

    def _scan(self, text: str, pos: int, mres: tuple[Any, ...], state: int,
              values: list[Any]) -> Any:
        """The state's alternations tried in turn at `pos`, as Lark's scanner does (the
        first that matches wins); a lexer error where none does."""
        for mre in mres:
            m = mre.match(text, pos)
            if m is not None:
                return m
        raise self._lex_error(text, pos, state, values)

    def _lex_error(self, text: str, pos: int, state: int, values: list[Any]) -> UnexpectedInput:
        """What Lark's contextual lexer raises where no terminal of `state` matches: the
        token any terminal would read there, as unexpected, else the character."""
        allowed = self._lexers[state].scanner.allowed_types - self._ignore
        found = next((m for m in (mre.match(text, pos) for mre in self._root.scanner._mres)
                      if m is not None), None)
        if found is not None:
            token = _token(found.lastgroup, found.group(), pos, found.end())
            callback = self._root.callback.get(token.type)
            token = callback(token) if callback is not None else token
            return UnexpectedToken(  # type: ignore[no-untyped-call]
                token, allowed, interactive_parser=_Stack(values, allowed))
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        return UnexpectedCharacters(  # type: ignore[no-untyped-call]
            text, pos, line, column, allowed=allowed)

    def _parse_error(self, token: Token | None, values: list[Any], state: int, last: int,
                     ) -> UnexpectedToken:
        """What Lark's parser raises for a token no action accepts (`$END` at the end)."""
        if token is None:  # Lark's `$END` borrows the last token's position
            token = _token("$END", "", last, last)
        expected = {kind for kind in self._states[state] if kind.isupper()}
        return UnexpectedToken(  # type: ignore[no-untyped-call]
            token, expected, interactive_parser=_Stack(values, expected))


class _Stack:
    """Stands in for Lark's interactive parser in an error: the parser stack at the error
    (`syntax/errors.py` reads the tokens on it) and what could have come instead."""

    def __init__(self, values: list[Any], expected: set[str]) -> None:
        self.parser_state = self
        self.value_stack = values
        self._expected = expected

    def accepts(self) -> set[str]:
        return self._expected


def _reduce(rule: _Rule, stack: list[int], values: list[Any], extents: list[Extent],
            ast: ToAst) -> tuple[Any, Extent]:
    size = rule.size
    if size:
        raw, spans = values[-size:], extents[-size:]
        del stack[-size:], values[-size:], extents[-size:]
        first, last = spans[0], spans[-1]
        if first is None or last is None:  # an empty rule at an edge: Lark skips it
            first = next((s for s in spans if s is not None), None)
            last = next((s for s in reversed(spans) if s is not None), None)
        where: Extent = None if first is None or last is None else (first[0], last[1])
    else:
        raw, where = [], None
    keep = rule.keep
    if keep is None:
        children = raw
    else:
        children = []
        for index, splice in keep:
            if not splice:
                children.append(raw[index])
            elif children:
                children += raw[index]
            else:  # left recursion: grow the helper's list in place, as Lark does
                children = raw[index]
    if rule.splice:
        return children, where
    if rule.expand1 and len(children) == 1:
        only = children[0]
        if isinstance(only, Token):  # Lark gives a token passed on no container extent
            return only, (only.start_pos or 0, only.end_pos or 0)
        return only, where
    method = rule.method
    if method is None:
        return Tree(rule.name, children, _meta(where)), where
    return method(ast, where, children), where


def _action(shift: bool, arg: Any, rules: dict[Any, _Rule]) -> _Action:
    if shift:
        assert isinstance(arg, int), "a shift's argument is the next state"
        return arg
    rule = rules.get(arg)
    if rule is None:
        expansion = arg.expansion
        kept = [(i, not sym.is_term and sym.name.startswith("_"))
                for i, sym in enumerate(expansion)
                if arg.options.keep_all_tokens or not (sym.is_term and sym.filter_out)]
        plain = len(kept) == len(expansion) and not any(splice for _, splice in kept)
        name = arg.alias or arg.options.template_source or arg.origin.name
        expand1 = bool(arg.options.expand1) and not arg.alias
        splice = arg.origin.name.startswith("_")
        rule = rules[arg] = _Rule(
            goto=arg.origin.name, size=len(expansion), keep=None if plain else tuple(kept),
            name=name, expand1=expand1, splice=splice, method=ToAst.method(name),
            passes=expand1 and plain and len(expansion) == 1 and not splice)
    return rule


def _token(kind: str, text: str, start: int, end: int) -> Token:
    """A Lark token with offsets only (the AST computes lines and columns from offsets)."""
    token: Token = _new_str(Token, text)
    token.type, token.value, token.start_pos, token.end_pos = kind, text, start, end
    token.line = token.column = token.end_line = token.end_column = None
    return token


def _meta(where: Extent) -> Meta:
    meta = Meta()  # type: ignore[no-untyped-call]
    if where is not None:
        meta.start_pos, meta.end_pos = where
        meta.empty = False
    return meta
