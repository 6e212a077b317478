"""Can a terminal's regular expression match a text that starts with a given character?

The parse driver skips whitespace inside the same regular-expression match as the next
token, in the lexer states where that cannot change which terminal matches (driver.py,
`_Scanners`). Deciding that needs, for each terminal tried before the whitespace terminal,
whether it could match at a whitespace character. `may_start_with` answers from the
pattern's text: False only when the first character a match can begin with is provably
outside the set. It reads the forms Lark writes terminals in (literals, escapes,
character classes, groups, alternation, quantifiers, lookarounds) and answers True, "maybe",
for anything else (`.`, class escapes such as `\\s`, inline flags), so a wrong answer can
only cost the fast path, never change a parse. tests/syntax/test_first_char.py checks it
against the `regex` engine on every terminal of the grammar.
"""

from __future__ import annotations

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v"}
_Reading = tuple[bool, bool, int]  # (may start with one of the characters, may be empty, end)


def may_start_with(pattern: str, chars: frozenset[str]) -> bool:
    """Whether a match of `pattern` might begin with a character of `chars`."""
    try:
        may, _, end = _alternatives(pattern, 0, chars)
    except (IndexError, ValueError):  # a form not read here: maybe
        return True
    return may or end != len(pattern)


def _alternatives(p: str, i: int, chars: frozenset[str]) -> _Reading:
    may, empty, i = _sequence(p, i, chars)
    while i < len(p) and p[i] == "|":
        more, more_empty, i = _sequence(p, i + 1, chars)
        may, empty = may or more, empty or more_empty
    return may, empty, i


def _sequence(p: str, i: int, chars: frozenset[str]) -> _Reading:
    """Atoms up to `|`, `)` or the end; the first non-empty one decides (the ones before it
    may be empty, so they count too); the rest are read only to find the end."""
    may, empty = False, True
    while i < len(p) and p[i] not in "|)":
        atom_may, atom_empty, i = _atom(p, i, chars)
        if empty:
            may, empty = may or atom_may, atom_empty
    return may, empty, i


def _atom(p: str, i: int, chars: frozenset[str]) -> _Reading:
    c = p[i]
    if c == "(":
        may, empty, i = _group(p, i, chars)
    elif c == "[":
        may, i = _class(p, i, chars)
        empty = False
    elif c == "\\":
        escaped = p[i + 1]
        may, empty, i = (True, False, i + 2) if escaped.isalnum() else \
            (escaped in chars, False, i + 2)
    elif c in "^$":
        may, empty, i = False, True, i + 1  # zero-width: the next atom decides
    else:
        may, empty, i = (True if c == "." else c in chars), False, i + 1
    return _quantified(p, i, may, empty)


def _quantified(p: str, i: int, may: bool, empty: bool) -> _Reading:
    if i < len(p) and p[i] in "?*+{":
        if p[i] == "{":
            close = p.index("}", i)
            empty = empty or p[i + 1:close].split(",")[0] in ("", "0")
            i = close + 1
        else:
            empty = empty or p[i] in "?*"
            i += 1
        if i < len(p) and p[i] in "?+":  # lazy or possessive
            i += 1
    return may, empty, i


def _group(p: str, i: int, chars: frozenset[str]) -> _Reading:
    lookaround = p.startswith(("(?=", "(?!", "(?<=", "(?<!"), i)
    if lookaround or p.startswith("(?:", i):
        start = i + (4 if p.startswith(("(?<=", "(?<!"), i) else 3)
    elif p.startswith("(?P<", i):
        start = p.index(">", i) + 1
    elif p.startswith("(?", i):  # flags, recursion, conditionals: maybe, read to the end
        return True, True, _close(p, i)
    else:
        start = i + 1
    may, empty, end = _alternatives(p, start, chars)
    if p[end] != ")":
        raise ValueError(p)
    if lookaround:  # zero-width and only narrowing what follows
        return False, True, end + 1
    return may, empty, end + 1


def _close(p: str, i: int) -> int:
    """The index after the `)` closing the group opened at `i`."""
    depth = 0
    while True:
        c = p[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = _class(p, i, frozenset())[1]
            continue
        depth += {"(": 1, ")": -1}.get(c, 0)
        i += 1
        if depth == 0:
            return i


def _class(p: str, i: int, chars: frozenset[str]) -> tuple[bool, int]:
    """A character class at `i`: whether it may match one of `chars`, and its end."""
    i += 1
    negated = p[i] == "^"
    i += negated
    members: set[str] = set()
    maybe = False
    first = True
    while p[i] != "]" or first:
        first = False
        c, i = p[i], i + 1
        if c == "\\":
            c, i = p[i], i + 1
            if c.isalnum() and c not in _ESCAPES:
                maybe = True  # \s, \w, \d, \x..: not read here
                continue
            c = _ESCAPES.get(c, c)
        if p[i] == "-" and p[i + 1] != "]":
            high, i = p[i + 1], i + 2
            if high == "\\":
                maybe, high, i = True, p[i], i + 1
            members.update(ch for ch in chars if c <= ch <= high)
        else:
            members.add(c)
    hit = bool(chars - members) if negated else bool(chars & members)
    return maybe or hit, i + 1
