"""The parser: which programs belong to the fast-path subset, and how they are grouped."""

from __future__ import annotations

import pytest

from tests.jqfast.harness import libjq_compiles
from tests.jqfast.strategies import OUTSIDE
from webpipe.jqfast import JqSyntaxError, Unsupported, compile_fast
from webpipe.jqfast import nodes as n
from webpipe.jqfast.parser import parse

SUPPORTED = [
    "{ hello: .params.w }", "{ id, title, done }", ".", ".a.b[0]", '.["a b"]', '."x"', ".a?",
    ".[]?", ".[1:]", ".[:-1]", "[.[] | . * 2]", '{"k": 1, $context, (.a): 2, a: (1, 2)}',
    '"hi \\(.name)!"', "if . then 1 elif .a then 2 else 3 end", "if . then 1 end",
    ". as $x | $x", ".a // 1", "not", "select(. > 1)", "map(.a)", "length", "keys",
    "tostring", "tonumber", "add", "join(\", \")", "to_entries", "with_entries(.value)",
    "sort_by(.a)", "unique", "min", "max", "first", "last", "range(3)", "range(1; 3)",
    "split(\",\")", "ascii_downcase", "startswith(\"a\")", "ltrimstr(\"a\")", "any", "all",
    "error(\"x\")", "try error(\"x\") catch .", ".trace += [\"and\"]", ".a |= . + 1",
    ".a.b = 1", ".a //= 2", "$context.flags", "1.50", "1e2", "limit(2; .[])", "first(.[])",
    "{a: 1,}", "# comment\n.a", "-1", "- .a", "[.[] | -.]", ". .a",
]
UNSUPPORTED = [
    *OUTSIDE, "test(\"a\")", "[.[] | tostring] | @csv", "..|numbers", ".[] += 1",
    "(.a, .b) = 1", ".a[] |= 1", "$x", "{$__loc__}", "1 # comment \\\n+ 2", "a::b",
    "splits(\",\")", "getpath([\"a\"])", "paths", "walk(.)", "env", "now", "input_line_number",
    "1.000000000000000000001", "{(1): 2}", "{(null): 1}", "{([1, 2]): 1}", "ascii", "implode",
    "floor", ". as {a: $a} | $a", ". as [$a] ?// $a | $a",
]
INVALID = ["{a: . as $x | $x}", "1 == 1 == 1", "1 < 2 < 3", "not not", "(", "[1,", '"\\x"',
           "{1: 2}", ".a = 1 |= 2", "try 1 catch 2 catch 3", "f()", '"a" "b"']


@pytest.mark.parametrize("text", SUPPORTED)
def test_supported(text: str) -> None:
    assert libjq_compiles(text), text
    assert compile_fast(text) is not None


@pytest.mark.parametrize("text", UNSUPPORTED)
def test_unsupported_falls_back_to_libjq(text: str) -> None:
    assert compile_fast(text) is None


@pytest.mark.parametrize("text", INVALID)
def test_invalid_jq_is_left_to_libjq(text: str) -> None:
    assert not libjq_compiles(text), text
    with pytest.raises(Unsupported):
        parse(text)
    assert compile_fast(text) is None


def test_syntax_errors_are_a_kind_of_unsupported() -> None:
    with pytest.raises(JqSyntaxError):
        parse("[1,")


@pytest.mark.parametrize(("text", "tree"), [
    # jq 1.8: `E as $x | body` takes everything above `,` as E
    ("1 + 2 as $x | $x", n.Bind(n.BinOp("+", n.Literal(1), n.Literal(2)), "x", n.Var("x"))),
    ("1, 2 as $x | $x", n.Comma(n.Literal(1), n.Bind(n.Literal(2), "x", n.Var("x")))),
    # jq 1.8: unary minus binds tighter than `*`, `?` tighter than unary minus
    ("-null * 0", n.BinOp("*", n.Neg(n.Literal(None)), n.Literal(0))),
    ('-"a"?', n.Neg(n.Try(n.Literal("a"), None))),
    ("try 1 + 2", n.BinOp("+", n.Try(n.Literal(1), None), n.Literal(2))),
    ("1 | 2, 3", n.Pipe(n.Literal(1), n.Comma(n.Literal(2), n.Literal(3)))),
    ("1 // 2 // 3", n.Alternative(n.Literal(1), n.Alternative(n.Literal(2), n.Literal(3)))),
    ("1 - 2 - 3", n.BinOp("-", n.BinOp("-", n.Literal(1), n.Literal(2)), n.Literal(3))),
    (".a.b?", n.Index(n.Index(n.Identity(), n.Literal("a")), n.Literal("b"), opt=True)),
    ("{a}", n.MakeObject((n.ObjectEntry(n.Literal("a"), None),))),
    ("{a: 1 | 2, b}", n.MakeObject((
        n.ObjectEntry(n.Literal("a"), n.Pipe(n.Literal(1), n.Literal(2))),
        n.ObjectEntry(n.Literal("b"), None)))),
    ('"a\\(.)"', n.Str(("a", n.Identity()))),
    (".a += 1", n.Assign("+", n.Index(n.Identity(), n.Literal("a")), n.Literal(1))),
    ("if . then 1 elif 2 then 3 end", n.If(n.Identity(), n.Literal(1),
                                          n.If(n.Literal(2), n.Literal(3), None))),
])
def test_grouping(text: str, tree: n.Node) -> None:
    assert parse(text) == tree
