"""webpipe.templating lexer, expression parser and parser: edge cases of the grammar."""

from __future__ import annotations

from typing import Any

import pytest

from webpipe.templating import Environment, TemplateSyntaxError
from webpipe.templating.exprs import parse_mustache
from webpipe.templating.nodes import Call, Literal, PathExpr, SubExpr

# every render here is also rendered by the closures alone (tests/templating/differential.py)
pytestmark = pytest.mark.usefixtures("closures_agree")


def render(template: str, data: Any = None, **partials: str) -> str:
    return Environment(partials).compile(template).render(data)


@pytest.mark.parametrize(("text", "path"), [
    ("a", PathExpr("a", ("a",))),
    ("a.b/c", PathExpr("a.b/c", ("a", "b", "c"))),
    ("this", PathExpr("this")),
    ("this.x", PathExpr("this.x", ("x",))),
    ("./x", PathExpr("./x", ("x",))),
    (".", PathExpr(".")),
    ("../../x", PathExpr("../../x", ("x",), ups=2)),
    ("@root/a", PathExpr("@root/a", ("a",), root=True)),
    ("@index", PathExpr("@index", ("index",), local=True)),
    ("@../key", PathExpr("@../key", ("key",), ups=1, local=True)),
    ("a.[b c].[0]", PathExpr("a.[b c].[0]", ("a", "b c", "0"))),
    ("nullable", PathExpr("nullable", ("nullable",))),
])
def test_paths(text: str, path: PathExpr) -> None:
    assert parse_mustache(text, 0) == path


def test_helper_line_with_literals_hash_and_subexpression() -> None:
    text = """f 'a\\'b' "c\\u00e9" -1.5 1E2 true null [1, "x"] {"k": []} (g x) k=v"""
    parsed = parse_mustache(text, 0)
    assert parsed == Call("f", (
        Literal("a'b"), Literal("cé"), Literal(-1.5), Literal(100.0), Literal(True), Literal(None),
        Literal([1, "x"]), Literal({"k": []}), SubExpr(Call("g", (PathExpr("x", ("x",)),))),
    ), (("k", PathExpr("v", ("v",))),))


def test_literal_needs_a_word_boundary() -> None:
    assert render("{{trueValue}}|{{null1}}", {"trueValue": "t", "null1": "n"}) == "t|n"


def test_raw_block_escapes_and_nested_braces() -> None:
    assert render("{{{{raw}}}} {{{x}}} \\{{{{raw}}}} {{{{/raw}}}}") == " {{{x}}} {{{{raw}}}} "


def test_raw_block_close_must_match() -> None:
    with pytest.raises(TemplateSyntaxError, match='helper "raw" was opened, but "if" is closing'):
        Environment().compile("{{{{raw}}}}x{{{{/if}}}}")


def test_tag_bodies_may_hold_braces_in_strings_and_objects() -> None:
    assert render('{{#if (eq s "}}")}}yes{{/if}}', {"s": "}}"}) == "yes"
    assert render("{{#if (eq o {})}}empty{{/if}}", {"o": {}}) == "empty"


def test_comment_and_partial_lines_are_standalone() -> None:
    template = "a\n  {{! note }}\n  {{> p}}\nb\n  {{#*inline \"q\"}}\nQ\n  {{/inline}}\n{{> q}}"
    assert render(template, None, p="P\n") == "a\n  P\nb\nQ\n"


def test_standalone_needs_a_line_break_after_the_tag() -> None:
    assert render("a\n  {{#if 1}}x{{/if}}") == "a\n  x"
    assert render("{{#if 1}}  \r\nx\r\n{{/if}}\r\n") == "x\r\n"


def test_partial_indent_applies_to_every_line_of_output() -> None:
    assert render("<p>\n  {{> p}}\n</p>", {"v": "1\n2"}, p="{{v}}\n{{> q}}", q="q1\nq2\n") == (
        "<p>\n  1\n  2\n  q1\n  q2\n</p>")


def test_partial_names_with_slashes_dots_and_quotes() -> None:
    partials = {"lib/a.b": "1", "x y": "2", "z": "3"}
    assert render("{{> lib/a.b}}{{> 'x y'}}{{> [z]}}", None, **partials) == "123"


def test_positions_are_one_based_lines_and_columns() -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        Environment().compile("ok\n  bad {{#each}}\n")
    assert (info.value.line, info.value.column) == (2, 7)


def test_nesting_is_bounded_and_everything_below_the_bound_renders() -> None:
    """Deep blocks were a RecursionError at load (found by hunting for tracebacks, issue 22)."""
    from webpipe.templating.exprs import MAX_NESTING
    deepest = "{{#if x}}" * (MAX_NESTING - 1) + "y" + "{{/if}}" * (MAX_NESTING - 1)
    assert render(deepest, {"x": True}) == "y"
    chain = "{{#if a}}" + "{{else if b}}" * (MAX_NESTING - 2) + "{{else}}z{{/if}}"
    assert render(chain, {}) == "z"
    for text in ("{{#each x}}" * 3000 + "{{/each}}" * 3000,
                 "{{#if a}}" + "{{else if b}}" * 3000 + "{{/if}}",
                 "{{#> p}}" * 500 + "{{/p}}" * 500, "{{^x}}" * 500 + "{{/x}}" * 500):
        with pytest.raises(TemplateSyntaxError, match="nested more than 100 levels deep"):
            render(text, {})
    nested = "{{lookup " + "(lookup " * (MAX_NESTING - 1) + "x" + " y)" * (MAX_NESTING - 1) + " y}}"
    assert render(nested, {}) == ""
    with pytest.raises(TemplateSyntaxError, match="sub-expressions nested more than 100"):
        render("{{lookup " + "(lookup " * 3000 + "x" + " y)" * 3000 + "}}", {})
