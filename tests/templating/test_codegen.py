"""Generated render functions (webpipe/templating/codegen.py) against the closures.

Templates are drawn from the constructs the generator handles natively (text, paths, `if`,
`unless`, `each`, leaf partials) mixed with those that make it fall back or that break its
loop's conditions (block params shadowing a name, inline partials named like a leaf, arrays
read by key, deep partials, `{{else}}`, helpers, partial blocks); each is rendered with
drawn data through both, and text or error (message, line, column, template name) must be
identical (tests/templating/differential.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.templating.differential import outcome
from webpipe.templating import Environment
from webpipe.templating.codegen import is_leaf
from webpipe.templating.parser import parse

PARTIALS = {
    "row": "<li>{{name}} ({{qty}})</li>",
    "cell": "{{this}}|{{@index}}|{{@first}}{{@last}}|{{{name}}}|{{name.x}}",
    "deep": "({{../name}}{{@root/qty}})",
    "tree": "[{{#if name}}{{> row}}{{/if}}{{#each items}}{{> cell}}{{/each}}]",
    "layout": "<b>{{> @partial-block}}</b>",
    "self": "{{> self}}",
    "broken": "{{#if}}",
}
W8 = ("{{#> layout}}<ul>{{#each items}}{{> row}}{{/each}}</ul>{{/layout}}",
      PARTIALS | {"layout": "<html><body>{{> @partial-block}}</body></html>"})
PATHS = ["name", "qty", "items", "x", "this", ".", "@index", "@first", "@last", "@key",
         "../name", "@root/name", "name.x", "items.0", "items.[1]", "this.name", "item",
         "@../index", "i", "nested.items"]
COLLECTIONS = ["items", "nested.items", "name", "this", "x", "item", "../items"]

JSON = Any
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(
    [0.5, 2.0, 1e21, float(2**64)]), st.sampled_from(["", "a", "<&>", "=`'\"", "item 1"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["name", "qty", "x", "items", "0"]), inner, max_size=3)),
    max_leaves=8)
_rows = st.fixed_dictionaries({"name": _scalars, "qty": _scalars}, optional={"x": _values})
_data = st.fixed_dictionaries({
    "name": _values, "qty": _scalars,
    "items": st.one_of(st.lists(st.one_of(_rows, _values), max_size=4), _values),
}, optional={"x": _values, "nested": st.fixed_dictionaries({"items": st.lists(_rows, max_size=3)})})


def _leaf() -> st.SearchStrategy[str]:
    text = st.sampled_from(["a", " ", "<", "&amp;", "\n", "  ", "x y", "{", "}", "\\", "'",
                            '"', "é", "{x}", "\t"])
    mustache = st.builds(lambda p, raw: "{{{" + p + "}}}" if raw else "{{" + p + "}}",
                         st.sampled_from(PATHS), st.booleans())
    other = st.sampled_from([
        "{{> row}}", "{{> cell}}", "{{> deep}}", "{{> tree}}", "{{> missing}}", "{{> self}}",
        "{{> broken}}", "{{> row name}}", "{{> row k=name}}", "\n  {{> row}}\n",
        '{{#*inline "row"}}IN{{name}}{{/inline}}', "{{len items}}", "{{lookup items 0}}",
        "{{#eq name 1}}one{{/eq}}", "{{(len items)}}", "{{nope x}}", "{{~name~}}", "{{! c }}"])
    return st.one_of(text, mustache, other)


def _block(body: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    each = st.builds(
        lambda c, params, b, alt: "{{#each " + c + params + "}}" + b
        + ("{{else}}" + alt if alt else "") + "{{/each}}",
        st.sampled_from(COLLECTIONS), st.sampled_from(["", " as |item|", " as |name i|"]),
        body, st.one_of(st.just(""), body))
    condition = st.builds(
        lambda kind, p, extra, b, alt: "{{#" + kind + " " + p + extra + "}}" + b + alt
        + "{{/" + kind + "}}",
        st.sampled_from(["if", "unless"]), st.sampled_from(PATHS),
        st.sampled_from(["", "", " includeZero=true", " qty"]), body,
        st.one_of(st.just(""), body.map(lambda b: "{{else}}" + b),
                  body.map(lambda b: "{{else if qty}}" + b)))
    other = st.one_of(
        body.map(lambda b: "{{#with x as |name|}}" + b + "{{/with}}"),
        body.map(lambda b: "{{#> layout}}" + b + "{{/layout}}"),
        body.map(lambda b: "{{#> nolayout}}" + b + "{{/nolayout}}"))
    return st.one_of(each, condition, other)


templates = st.recursive(_leaf(), lambda inner: st.one_of(
    _block(inner), st.lists(inner, min_size=2, max_size=4).map("".join)), max_leaves=12)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(templates, _data)
def test_generated_code_renders_what_the_closures_render(template: str, data: JSON) -> None:
    outcome(template, data, PARTIALS)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.one_of(_rows, _values), max_size=25))
def test_w8_shape(items: list[JSON]) -> None:
    source, partials = W8
    outcome(source, {"items": items}, partials)


def test_w8_renders_the_page() -> None:
    source, partials = W8
    items = [{"name": f"item {i}", "qty": i} for i in range(2)] + [{"name": "<&>", "qty": 2.0}]
    assert outcome(source, {"items": items}, partials) == ("ok", (
        "<html><body><ul><li>item 0 (0)</li><li>item 1 (1)</li><li>&lt;&amp;&gt; (2.0)</li>"
        "</ul></body></html>"))


@pytest.mark.parametrize(("source", "data", "expected"), [
    # a block param named like a key the loop reads: the helper's path, same output
    ("{{#each items as |name|}}{{> row}}{{/each}}", {"items": [{"name": "n", "qty": 1}]},
     "<li>[object] (1)</li>"),
    ("{{#with x as |name|}}{{#each @root/items}}{{name}}{{/each}}{{/with}}",
     {"x": "X", "items": [{"name": "n"}]}, "X"),
    # an inline partial named like the leaf wins over it
    ('{{#*inline "row"}}IN{{/inline}}{{#each items}}{{> row}}{{/each}}', {"items": [1, 2]},
     "ININ"),
    ("{{#each items}}{{@index}}{{#if @first}}F{{/if}}{{#unless @last}},{{/unless}}{{/each}}",
     {"items": ["a", "b", "c"]}, "0F,1,2"),
    ("{{#each items}}{{this}}{{else}}none{{/each}}", {"items": []}, "none"),
    ("{{#each items}}{{@key}}={{this}};{{/each}}", {"items": {"a": 1, "b": 2}}, "a=1;b=2;"),
])
def test_loops_that_leave_the_generated_path(source: str, data: JSON, expected: str) -> None:
    assert outcome(source, data, PARTIALS) == ("ok", expected)


def test_text_that_reads_like_python_stays_text() -> None:
    source = "{a}\\n'\"{{x}}}{{{x}}}\t{ {{x}} }{{#each xs}}{{x}}{{this}}{/each}{{/each}}"
    expected = "{a}\\n'\"&lt;}<\t{ &lt; }1{/each}"  # in the loop, x is 1's (missing)
    assert outcome(source, {"x": "<", "xs": [1]}) == ("ok", expected)


def test_errors_inside_inlined_partials_name_the_partial() -> None:
    kind, message = outcome("x\n{{#each items}}{{> row}}{{/each}}", {"items": [[1]]}, PARTIALS)
    assert (kind, message) == ("TemplateRenderError", 'Error rendering "row" line 1, col 5: '
                               "Cannot access array/vector with string index, name")


def test_depth_bound_holds_for_inlined_partials() -> None:
    chain = {f"p{i}": f"{{{{> p{i + 1}}}}}" for i in range(70)} | {"p70": "{{name}}"}
    kind, message = outcome("{{> p0}}", {"name": "n"}, chain)
    assert kind == "TemplateRenderError" and "nested deeper than 64 levels" in message


def test_nesting_past_pythons_block_limit_falls_back_to_closures() -> None:
    source = "{{#if a}}" * 99 + "{{a}}" + "{{/if}}" * 99
    assert outcome(source, {"a": 1}) == ("ok", "1")


def test_leaves_are_partials_of_text_and_paths_only() -> None:
    assert is_leaf(parse(PARTIALS["row"])) and is_leaf(parse(PARTIALS["cell"]))
    assert not is_leaf(parse(PARTIALS["tree"])) and not is_leaf(parse("{{len x}}"))
    assert Environment(PARTIALS).leaf("broken") is None


def test_code_is_generated_at_the_first_render_not_at_load() -> None:
    env = Environment(PARTIALS)
    template = env.compile("{{#each items}}{{> row}}{{/each}}")
    env.check_partials(template)  # what a load (and `webpipe check`) does
    assert template.program == template._generate
    assert template.render({"items": [{"name": "a", "qty": 1}]}) == "<li>a (1)</li>"
    assert template.program.__code__.co_filename == f"<template {template.name}>"
    closures = Environment(PARTIALS, generate=False).compile("{{#each items}}{{/each}}")
    closures.render({"items": [1]})
    assert not closures.program.__code__.co_filename.startswith("<template")
