"""Hypothesis strategies for the jq differential tests: programs from the fast-path grammar
(plus a few constructs outside it, which must compile to None) and JSON inputs with the
awkward numbers (1.0, -0.0, 1e300, integers beyond 2**53), unicode strings and nesting."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

KEYS = ["a", "b", "c", "key", "value", "name", "é", "k k"]

_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
_SPECIAL_NUMBERS = st.sampled_from(
    [0, 1, -1, 2, 3, 10, 1.0, -0.0, 0.0, 0.5, 2.5, -3.5, 1e300, 1e-7, 1e17, 1e16, 123.456,
     2**53, 2**53 + 1, 2**64 + 1, -(2**70) - 3, 100000000000000000000001, 1.5e-10, 7.9])
NUMBERS = st.one_of(st.integers(-1000, 1000), st.integers(-(2**70), 2**70), _FLOATS,
                    _SPECIAL_NUMBERS)
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # no lone surrogates
STRINGS = st.one_of(st.sampled_from(["", "a", "b", "a,b", "A", "ab", "é", "x y", "1", "1.50",
                                     "-0", "abc", "\n", "nan", "Infinity", "😀"]), TEXT)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    keys = st.one_of(st.sampled_from(KEYS), TEXT)
    return st.recursive(
        SCALARS,
        lambda children: st.one_of(st.lists(children, max_size=4),
                                   st.dictionaries(keys, children, max_size=4)),
        max_leaves=max_leaves)


_LITERALS = ["null", "true", "false", "0", "1", "-1", "2", "3", "2.5", "1.0", "0.1", "-0",
             "1e2", "100000000000000000000001", '"a"', '"b"', '""', '"é"', '"a,b"', '"1.50"',
             '"key"', "[]", "{}", "[1,2]", '{"a":1}', '{"a":{"b":2}}', "[1,[2]]", "$x", "$context",
             "range(3)", "range(1; 3)", "range(0.5; 2)", "range(-1)"]
_PATHS = [".", ".a", ".b", ".a.b", ".[0]", ".[-1]", ".[1]", '."a"', '.["b"]', ".[]", ".[]?",
          ".a?", ".[1:]", ".[:2]", ".[1:-1]", ".[-2:]", ".a[0]", ".[0].a", ".a[]", ".[1.5]",
          ".[2:1]", ".[:1.5]", ".value", ".key"]
_NULLARY = ["length", "not", "type", "keys", "keys_unsorted", "tostring", "tojson", "tonumber",
            "ascii_downcase", "ascii_upcase", "to_entries", "from_entries", "add", "sort",
            "unique", "min", "max", "reverse", "first", "last", "abs", "empty", "error", "any",
            "all", "values", "nulls", "numbers", "strings", "arrays", "objects", "iterables",
            "scalars", "booleans"]
_UNARY = ["has", "contains", "startswith", "endswith", "split", "join", "ltrimstr", "rtrimstr",
          "trimstr", "nth", "error", "map", "select", "first", "isempty", "any", "all",
          "add", "sort_by", "group_by", "unique_by", "min_by", "max_by", "with_entries", "in",
          "inside"]
_BINARY = ["limit", "any", "all"]  # no generated `range` bounds: [range(2**70)] never ends
_OPERATORS = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or", "//",
              "|", ","]
_ASSIGN = ["=", "|=", "+=", "-=", "*=", "//="]
_ASSIGN_PATHS = [".a", ".b", ".a.b", ".[0]", ".[2]", '.["k"]', ".", ".trace", ".a[1]"]
# outside the subset: compile_fast must return None (libjq still runs them)
OUTSIDE = ["..", "reduce .[] as $i (0; . + $i)", "def f: .; f", "@base64", "$__loc__",
           "test(\"a\")", "input", "label $f | 1", ". as [$a] | $a", "path(.a)", "getpath([\"a\"])",
           "foreach .[] as $i (0; . + 1)", "ltrimstr(\"a\") | splits(\"b\")", "$ENV",
           ".[] |= 1", "del(.a)", "tostream", "infinite", "@json \"\\(.)\""]


@st.composite
def programs(draw: st.DrawFn, depth: int = 3) -> str:
    """A jq program text from the fast-path grammar (sometimes syntactically invalid jq)."""
    if depth <= 0 or draw(st.integers(0, 9)) < 3:
        return draw(st.sampled_from(_LITERALS + _PATHS))
    sub = programs(depth - 1)
    form = draw(st.integers(0, 15))
    a, b = draw(sub), draw(sub)
    if form <= 3:
        op = draw(st.sampled_from(_OPERATORS))
        return f"({a} {op} {b})" if draw(st.booleans()) else f"{a} {op} {b}"
    if form == 4:
        name = draw(st.sampled_from(_NULLARY))
        return name if draw(st.booleans()) else f"{a} | {name}"
    if form == 5:
        return f"{draw(st.sampled_from(_UNARY))}({a})"
    if form == 6:
        return f"{draw(st.sampled_from(_BINARY))}({a}; {b})"
    if form == 7:
        return draw(st.sampled_from([f"[{a}]", f"{{a: {a}, b: {b}}}", f"{{({a}): {b}}}", "{a, b}",
                                     f'{{"k": {a}, $x}}', f"{{a: ({a}, {b})}}"]))
    if form == 8:
        return draw(st.sampled_from([f"if {a} then {b} else . end", f"if {a} then {b} end",
                                     f"if {a} then {b} elif . then 1 else 2 end"]))
    if form == 9:
        return f"{a} as $x | {b}"
    if form == 10:
        return draw(st.sampled_from([f"try {a}", f"try {a} catch {b}", f"({a})?", f"-({a})",
                                     f"-{a}"]))
    if form == 11:
        return f'"s\\({a})t\\({b})"'
    if form == 12:
        return f"{draw(st.sampled_from(_ASSIGN_PATHS))} {draw(st.sampled_from(_ASSIGN))} {a}"
    if form == 13:
        suffix = draw(st.sampled_from(_PATHS))[1:]
        return f"({a}){suffix}" if draw(st.booleans()) else f"{a}[{b}]"
    if form == 14:
        return f"{a} | {b}"
    return draw(st.sampled_from(OUTSIDE)) if draw(st.integers(0, 5)) == 0 else f"{a}, {b}"
