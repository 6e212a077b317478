"""The `handlebars` middleware: spec/middleware.md §4 and spec/handlebars.md.

Every test renders a real template through `prepare()` + `run()` and checks the exact text.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.support import SimpleHost
from webpipe.errors import ConfigError, StepError
from webpipe.executor.context import RequestContext
from webpipe.middleware.base import Behavior, StepCall
from webpipe.middleware.handlebars import HandlebarsMiddleware, dedent
from webpipe.source import Source

# every render here is also rendered by the closures alone (tests/templating/differential.py)
pytestmark = pytest.mark.usefixtures("closures_agree")

JSON = Any


def middleware(handlebars: dict[str, str] | None = None,
               mustache: dict[str, str] | None = None) -> HandlebarsMiddleware:
    variables = {"handlebars": handlebars or {}, "mustache": mustache or {}}
    return HandlebarsMiddleware(SimpleHost(variables=variables))


async def render(template: str, state: JSON = None, *, partials: dict[str, str] | None = None,
                 ctx: RequestContext | None = None) -> str:
    mw = middleware(partials)
    result = await mw.run(state, mw.prepare(template, None), StepCall("handlebars", template,
                                                                      ctx=ctx))
    assert result.content_type == "text/html"
    assert isinstance(result.value, str)
    return result.value


async def render_error(template: str, state: JSON = None, **kw: Any) -> str:
    with pytest.raises(StepError) as info:
        await render(template, state, **kw)
    return info.value.message


def compile_error(template: str, partials: dict[str, str] | None = None) -> ConfigError:
    span = Source("app.wp", "GET /\n  |> handlebars: `...`\n").span(8, 20)
    with pytest.raises(ConfigError) as info:
        middleware(partials).prepare(template, span)
    assert info.value.span == span
    return info.value


# --- contract ---------------------------------------------------------------------------


def test_contract() -> None:
    assert HandlebarsMiddleware.behavior is Behavior.RENDER
    assert HandlebarsMiddleware.content_type == "text/html"


async def test_spec_example() -> None:
    template = """
      <h1>{{name}}</h1>
      {{> badge}}
      <ul>{{#each tags}}<li>{{@index}}:{{this}}</li>{{/each}}</ul>
      {{#if (eq context.env "production")}}<footer>live</footer>{{/if}}
    """
    state = {"name": "ada", "label": "member", "tags": ["a", "b"]}
    out = await render(template, state, partials={"badge": '<span class="badge">{{label}}</span>'},
                       ctx=RequestContext(env_name="production"))
    assert out == ('<h1>ada</h1>\n<span class="badge">member</span><ul><li>0:a</li><li>1:b</li>'
                   "</ul>\n<footer>live</footer>\n")  # the closing line's blanks dedent to ""


# --- escaping and value rendering ------------------------------------------------------------


async def test_escapes_exactly_the_seven_characters() -> None:
    out = await render("{{x}}", {"x": "<a href=\"/p?a=1&b='2'\">`x`</a>"})
    assert out == ("&lt;a href&#x3D;&quot;/p?a&#x3D;1&amp;b&#x3D;&#x27;2&#x27;&quot;&gt;"
                   "&#x60;x&#x60;&lt;/a&gt;")


async def test_triple_stash_and_ampersand_are_raw() -> None:
    assert await render("{{{x}}}|{{&x}}|{{x}}", {"x": "<b>&</b>"}) == (
        "<b>&</b>|<b>&</b>|&lt;b&gt;&amp;&lt;/b&gt;")


@pytest.mark.parametrize(("value", "text"), [
    (None, ""),
    (True, "true"),
    (False, "false"),
    (7, "7"),
    (2.0, "2.0"),
    (0.5, "0.5"),
    (1e21, "1e21"),
    (1.5e-7, "1.5e-7"),
    (0.00001, "0.00001"),
    ({"a": 1}, "[object]"),
    ([1, "a", None], "[1, a, , ]"),
    ([[1], {"k": 2}], "[[1, ], [object], ]"),
])
async def test_value_rendering(value: JSON, text: str) -> None:
    assert await render("{{v}}", {"v": value}) == text


async def test_missing_values_render_empty() -> None:
    assert await render("[{{nope}}|{{a.b.c}}|{{a.x}}|{{@index}}]", {"a": {"b": None}}) == "[|||]"


async def test_array_access_by_index_and_string_index_error() -> None:
    assert await render("{{a.[1]}} {{a.0}} {{a.5}}", {"a": ["x", "y"]}) == "y x "
    message = await render_error("{{a.length}}", {"a": [1]})
    assert message == ('Handlebars render error: Error rendering "' + message.split('"')[1]
                       + '" line 1, col 1: Cannot access array/vector with string index, length')


async def test_escaped_mustache_and_comments() -> None:
    out = await render("\\{{x}} \\\\{{x}} {{! note }}{{!-- has }} --}}.", {"x": 1})
    assert out == "{{x}} \\1 ."


# --- truthiness, if / unless / else-if -------------------------------------------------------


@pytest.mark.parametrize(("value", "truthy"), [
    (False, False), (None, False), (0, False), (0.0, False), ("", False), ([], False),
    ({}, False), (True, True), (-1, True), (0.1, True), ("0", True), ([0], True), ({"a": 0}, True),
])
async def test_truthiness(value: JSON, truthy: bool) -> None:
    out = await render("{{#if v}}yes{{else}}no{{/if}}", {"v": value})
    assert out == ("yes" if truthy else "no")


async def test_if_include_zero() -> None:
    assert await render("{{#if n includeZero=true}}zero{{/if}}", {"n": 0}) == "zero"


async def test_unless_and_caret_else() -> None:
    assert await render("{{#unless x}}no{{^}}yes{{/unless}}", {"x": 0}) == "no"
    assert await render("{{#unless x}}no{{^}}yes{{/unless}}", {"x": 1}) == "yes"


@pytest.mark.parametrize(("state", "text"), [
    ({"a": 1}, "A"), ({"b": 1}, "B"), ({"c": 1}, "C"), ({}, "none"),
])
async def test_else_if_chain(state: JSON, text: str) -> None:
    template = "{{#if a}}A{{else if b}}B{{else if c}}C{{else}}none{{/if}}"
    assert await render(template, state) == text


async def test_else_chain_with_other_helpers() -> None:
    template = "{{#if x}}x{{else each items}}<{{this}}>{{else}}empty{{/if}}"
    assert await render(template, {"items": [1, 2]}) == "<1><2>"
    assert await render(template, {"items": []}) == "empty"


# --- each / with / lookup / raw / log --------------------------------------------------------


async def test_each_array_locals() -> None:
    template = ("{{#each xs}}{{@index}}{{#if @first}}F{{/if}}{{#if @last}}L{{/if}}"
                "={{this}};{{/each}}")
    assert await render(template, {"xs": ["a", "b", "c"]}) == "0F=a;1=b;2L=c;"


async def test_each_object_keys_in_order() -> None:
    template = "{{#each o}}{{@key}}:{{this}}{{#unless @last}},{{/unless}}{{/each}}"
    assert await render(template, {"o": {"z": 1, "a": 2}}) == "z:1,a:2"


async def test_each_else_and_non_iterables() -> None:
    template = "{{#each xs}}x{{else}}empty{{/each}}"
    assert await render(template, {"xs": []}) == "empty"
    assert await render(template, {"xs": "text"}) == "empty"
    assert await render(template, {}) == "empty"


async def test_each_block_params_and_parent_access() -> None:
    template = "{{#each items as |item i|}}{{i}}:{{item.n}}/{{../title}} {{/each}}"
    state = {"title": "T", "items": [{"n": "a"}, {"n": "b"}]}
    assert await render(template, state) == "0:a/T 1:b/T "


async def test_with_pushes_a_scope_and_hides_index() -> None:
    template = "{{#each xs}}{{#with this}}{{v}}{{@index}}|{{@../index}} {{/with}}{{/each}}"
    assert await render(template, {"xs": [{"v": "a"}, {"v": "b"}]}) == "a|0 b|1 "


async def test_with_else_and_block_param() -> None:
    template = "{{#with user as |u|}}{{u.name}}@{{../site}}{{else}}anonymous{{/with}}"
    assert await render(template, {"user": {"name": "ann"}, "site": "s"}) == "ann@s"
    assert await render(template, {"user": {}}) == "anonymous"


async def test_lookup() -> None:
    template = ('{{lookup arr 1}} {{lookup obj "a b"}} '
                "{{#each arr}}{{lookup ../other @index}}{{/each}}")
    state = {"arr": ["x", "y"], "obj": {"a b": "<v>"}, "other": [7, 8]}
    assert await render(template, state) == "y &lt;v&gt; 78"
    assert await render("[{{lookup arr 1.0}}{{lookup arr \"1\"}}]", {"arr": [1, 2]}) == "[]"


async def test_raw_block_keeps_mustaches() -> None:
    assert await render("{{{{raw}}}}{{x}} {{#if}}{{{{/raw}}}}!", {"x": 1}) == "{{x}} {{#if}}!"


async def test_log_writes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="webpipe.handlebars"):
        out = await render('a{{log "hello" user.name level="warn"}}b', {"user": {"name": "ann"}})
    assert out == "ab"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "hello, user.name: ann")]


async def test_log_invalid_level_is_a_render_error() -> None:
    assert (await render_error('{{log "x" level="loud"}}')).endswith(
        "Invalid logging level: loud")


# --- comparison helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "text"), [
    ("eq 1 1", "true"), ('eq "a" "a"', "true"), ("eq 1 1.0", "false"), ('eq 5 "5"', "false"),
    ("eq [1, 2] [1, 2]", "true"), ("eq missing null", "true"), ("ne 1 2", "true"),
    ("gt 5 3", "true"), ("gt 3 5", "false"), ("gte 5 5", "true"), ("lt 2 10", "true"),
    ("lte 5.5 5.5", "true"), ('gt "b" "a"', "true"), ('gt 53 "35"', "true"),
    ('lt "-1.00" 0', "true"), ("gt true false", "true"), ('gt "x" 1', "false"),
    ("gt [1] 0", "false"), ("and 1 2 3", "true"), ("and 1 {}", "false"), ("or 0 null []", "false"),
    ('or 0 ""  "x"', "true"), ("not 0", "true"), ("not {}", "true"), ("not [0]", "false"),
])
async def test_comparison_helpers(expr: str, text: str) -> None:
    assert await render("{{" + expr + "}}", {}) == text


async def test_comparison_helpers_as_blocks_and_subexpressions() -> None:
    state = {"n": 5, "role": "admin"}
    assert await render("{{#eq role \"admin\"}}A{{else}}U{{/eq}}", state) == "A"
    assert await render("{{#gt n 9}}big{{else}}small{{/gt}}", state) == "small"
    template = '{{#if (and (gte n 1) (lt n 10) (not (eq role "guest")))}}ok{{/if}}'
    assert await render(template, state) == "ok"


@pytest.mark.parametrize(("value", "text"), [
    ([1, 2, 3], "3"), ({"a": 1, "b": 2}, "2"), ("héllo", "6"), (42, "0"), (None, "0"),
])
async def test_len(value: JSON, text: str) -> None:
    assert await render("{{len v}}", {"v": value}) == text


async def test_helper_name_wins_over_data_key() -> None:
    message = await render_error("{{len}}", {"len": 3})
    assert message.endswith("Helper/Decorator len param with name x required but not found")
    assert await render("{{this.len}}", {"len": 3}) == "3"


# --- partials --------------------------------------------------------------------------------


async def test_partials_from_handlebars_and_mustache_variables() -> None:
    mw = middleware({"hb": "<b>{{x}}</b>", "lib/chip": "[{{this}}]"},
                    mustache={"mu": "<i>{{x}}</i>"})
    template = "{{> hb}}{{> mu}}{{#each tags}}{{> lib/chip}}{{/each}}"
    result = await mw.run({"x": 1, "tags": ["a", "b"]}, mw.prepare(template, None),
                          StepCall("handlebars", template))
    assert result.value == "<b>1</b><i>1</i>[a][b]"


async def test_partial_context_and_hash() -> None:
    partials = {"card": "{{name}}/{{role}}"}
    state = {"user": {"name": "ann", "role": "dev"}, "name": "root"}
    assert await render("{{> card user}}|{{> card role=\"x\"}}|{{> card user role=\"ops\"}}",
                        state, partials=partials) == "ann/dev|root/x|ann/ops"


async def test_partial_sees_each_scope_and_block_params() -> None:
    partials = {"row": "{{@index}}:{{label}}"}
    template = "{{#each items as |it|}}{{> row label=it.n}},{{/each}}"
    state = {"items": [{"n": "a"}, {"n": "b"}]}
    assert await render(template, state, partials=partials) == "0:a,1:b,"


async def test_dynamic_partial_name() -> None:
    partials = {"a": "A!", "b": "B!"}
    assert await render("{{> (lookup . \"which\")}}", {"which": "b"}, partials=partials) == "B!"


async def test_missing_partial_is_a_render_error() -> None:
    message = await render_error("x {{> nope}}")
    assert message.startswith("Handlebars render error: Error rendering \"tpl_")
    assert message.endswith("line 1, col 3: Partial not found nope")


async def test_partial_block_with_partial_block_placeholder() -> None:
    partials = {"layout": "<main>{{> @partial-block}}</main>"}
    assert await render("{{#> layout}}<p>{{x}}</p>{{/layout}}", {"x": 1}, partials=partials) == (
        "<main><p>1</p></main>")


async def test_nested_partial_blocks() -> None:
    partials = {"outer": "<o>{{> @partial-block}}</o>",
                "inner": "{{#> outer}}<i>{{> @partial-block}}</i>{{/outer}}"}
    assert await render("{{#> inner}}Hi{{/inner}}", {}, partials=partials) == "<o><i>Hi</i></o>"


async def test_partial_block_fallback_when_partial_is_missing() -> None:
    assert await render("{{#> nope}}fallback {{x}}{{/nope}}", {"x": 2}) == "fallback 2"


async def test_partial_block_placeholder_outside_a_block_is_an_error() -> None:
    message = await render_error("{{> @partial-block}}")
    assert message.endswith("Partial not found @partial-block")


async def test_inline_partials_and_layout_slots() -> None:
    partials = {"page": "<nav>{{> nav}}</nav><main>{{> @partial-block}}</main>"}
    template = '{{#> page}}{{#*inline "nav"}}menu{{/inline}}body{{/page}}'
    assert await render(template, {}, partials=partials) == "<nav>menu</nav><main>body</main>"
    assert await render('{{#*inline "x"}}<{{v}}>{{/inline}}{{> x}}{{> x}}', {"v": 1}) == "<1><1>"


async def test_standalone_partial_is_indented() -> None:
    partials = {"item": "<li>{{this}}</li>\n<li>end</li>\n"}
    template = "<ul>\n  {{#each xs}}\n  {{> item}}\n  {{/each}}\n</ul>"
    assert await render(template, {"xs": [1]}, partials=partials) == (
        "<ul>\n  <li>1</li>\n  <li>end</li>\n</ul>")


async def test_recursive_partial_inside_each() -> None:
    partials = {"tree": "{{name}}{{#each kids}}({{> tree}}){{/each}}"}
    state = {"name": "a",
             "kids": [{"name": "b", "kids": []}, {"name": "c", "kids": [{"name": "d"}]}]}
    assert await render("{{> tree}}", state, partials=partials) == "a(b)(c(d))"


async def test_direct_self_inclusion_is_an_error() -> None:
    message = await render_error("{{> me}}", partials={"me": "x{{> me}}"})
    assert message.endswith('"me" line 1, col 2: Can not include current template in partial')


async def test_runaway_partial_recursion_is_an_error() -> None:
    partials = {"a": "{{#if 1}}{{> b}}{{/if}}", "b": "{{#if 1}}{{> a}}{{/if}}"}
    message = await render_error("{{> a}}", partials=partials)
    assert message.endswith("Partials nested deeper than 64 levels")


# --- whitespace ------------------------------------------------------------------------------


async def test_standalone_block_lines_are_removed() -> None:
    template = "<ul>\n  {{#each xs}}\n  <li>{{this}}</li>\n  {{/each}}\n</ul>"
    assert await render(template, {"xs": [1, 2]}) == "<ul>\n  <li>1</li>\n  <li>2</li>\n</ul>"
    template = "{{#if x}}\n  yes\n{{else}}\n  no\n{{/if}}\nend"
    assert await render(template, {}) == "  no\nend"


async def test_tilde_trims_whitespace() -> None:
    assert await render("a  {{~x~}}  b\n {{~#if 1~}} c {{~/if~}} d", {"x": "X"}) == "aXbcd"


# --- context ---------------------------------------------------------------------------------


async def test_context_key() -> None:
    ctx = RequestContext(request={"path": "/p"}, env_name="dev", flags={"beta": True})
    template = "{{context.env}} {{context.flags.beta}} {{context.request.path}} {{context.cache}}"
    assert await render(template, {"context": "shadowed"}, ctx=ctx) == "dev true /p "


async def test_non_object_state_is_under_data() -> None:
    ctx = RequestContext(env_name="prod")
    assert await render("{{data}}|{{#each data}}{{this}}{{/each}}|{{context.env}}", [1, 2],
                        ctx=ctx) == "[1, 2, ]|12|prod"
    assert await render("{{data}}", "text") == "text"


async def test_state_is_not_modified() -> None:
    state = {"a": 1}
    await render("{{a}}", state, ctx=RequestContext())
    assert state == {"a": 1}


# --- dedent ----------------------------------------------------------------------------------


def test_dedent_matches_reference() -> None:
    assert dedent("\n    hello\n      world\n") == "hello\n  world"
    assert dedent("\n  a\n    b\n") == "a\n  b"
    assert dedent("\r\n\t<p>\r\n\t\t{{x}}\r\n\r\n\t</p>\r\n") == "<p>\n\t{{x}}\n\n</p>"
    assert dedent("no indent\n  kept") == "no indent\n  kept"


async def test_template_is_dedented_but_partials_are_not() -> None:
    template = "\n    <div>\n      {{> p}}\n    </div>\n  "
    assert await render(template, {}, partials={"p": "  <b>\n  </b>"}) == (
        "<div>\n    <b>\n    </b></div>\n")


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("template", "reason", "at"), [
    ("{{#if x}}open", "invalid handlebars syntax: helper 'if' is never closed", (1, 1, 9)),
    ("{{#if x}}a{{/each}}", 'helper "if" was opened, but "each" is closing', (1, 11, 9)),
    ("a\n{{/if}}", "invalid handlebars syntax: unexpected {{/if}}", (2, 1, 7)),
    ("{{else}}", "invalid handlebars syntax: unexpected {{else}}", (1, 1, 8)),
    ("{{x", "invalid handlebars syntax: unclosed tag", (1, 1, 1)),
    ("{{foo 1.}}", "invalid parameter '1.'", (1, 7, 1)),
    ("{{#> layout}}x{{/other}}", 'decorator "layout" was opened, but "other" is closing',
     (1, 15, 10)),
    # compiled dedented and trimmed: the position is counted in the text as written
    ("\n    <p>\n      {{/if}}\n  ", "invalid handlebars syntax: unexpected {{/if}}",
     (3, 7, 7)),
])
def test_syntax_errors_are_config_errors(template: str, reason: str,
                                         at: tuple[int, int, int]) -> None:
    error = compile_error(template)
    assert error.message == f"Handlebars template compile error: {reason}"
    assert error.at == at


def test_syntax_error_in_a_used_partial_is_reported_at_load() -> None:
    error = compile_error("{{> outer}}", {"outer": "{{> broken}}", "broken": "{{#each x}}"})
    assert error.message == ("Handlebars template compile error in partial 'broken': invalid "
                             "handlebars syntax: helper 'each' is never closed (line 1, col 1)")


async def test_unused_broken_partial_does_not_fail_other_templates() -> None:
    assert await render("ok", {}, partials={"broken": "{{#if"}) == "ok"


async def test_broken_dynamic_partial_is_a_render_error() -> None:
    message = await render_error("{{> (name)}}", {"name": "bad"}, partials={"bad": "{{/x}}"})
    assert "Failed to parse template bad: invalid handlebars syntax: unexpected {{/x}}" in message


async def test_unknown_helper_is_a_render_error() -> None:
    message = await render_error("a\n  {{#upper x}}y{{/upper}}", {"x": 1})
    assert message.endswith("line 2, col 3: Helper not found upper")
    assert (await render_error("{{shout x}}")).endswith("Helper not found shout")


async def test_missing_helper_param_is_a_render_error() -> None:
    assert (await render_error("{{#if}}x{{/if}}")).endswith(
        "Helper/Decorator if param at index 0 required but not found")


async def test_render_error_inside_partial_names_the_partial() -> None:
    message = await render_error("ok {{> p}}", {"xs": [1]}, partials={"p": "\n {{xs.first}}"})
    assert message == ('Handlebars render error: Error rendering "p" line 2, col 2: '
                       "Cannot access array/vector with string index, first")


# --- caching ---------------------------------------------------------------------------------


def test_templates_are_compiled_once_per_text() -> None:
    mw = middleware({"p": "<p/>"})
    first = mw.prepare("  {{> p}}\n", None)
    assert mw.prepare("{{> p}}", None).template is first.template
    assert mw.env.partial("p") is mw.env.partial("p")


async def test_mustache_inverted_sections() -> None:
    assert await render("{{^items}}none{{/items}}", {"items": []}) == "none"
    assert await render("{{^items}}none{{/items}}", {"items": [1]}) == ""
    assert await render("{{^user}}anonymous{{/user}}", {}) == "anonymous"
    assert await render("{{^user}}anonymous{{/user}}", {"user": {"n": 1}}) == ""


# --- `context` only when a template can reach it ------------------------------------------


@pytest.mark.parametrize(("source", "partials", "expected"), [
    ("<p>{{title}} {{#each items}}{{name}}{{@index}}{{/each}}</p>", {}, False),
    ("{{#if ok}}{{> row}}{{/if}}", {"row": "<li>{{name}}</li>"}, False),
    ("{{context.env}}", {}, True),
    ("{{#with context}}{{env}}{{/with}}", {}, True),
    ("{{this}}", {}, True),
    ("{{#each items}}{{../context.env}}{{/each}}", {}, True),
    ("{{@root.context.env}}", {}, True),
    ("{{lookup . 'context'}}", {}, True),
    ("{{> row}}", {"row": "{{context.env}}"}, True),
    ("{{> outer}}", {"outer": "{{> inner}}", "inner": "{{#each this}}{{/each}}"}, True),
    ("{{> (concat 'r' 'ow')}}", {"row": "x"}, True),
])
def test_templates_that_may_read_context_are_detected(
        source: str, partials: dict[str, str], expected: bool) -> None:
    assert middleware(partials).prepare(source, None).reads_context is expected


async def test_context_is_there_when_read_and_state_alone_otherwise() -> None:
    state = {"title": "T", "context": {"env": "own key"}}
    ctx = RequestContext(env_name="dev")
    assert await render("{{title}} {{context.env}}", state, ctx=ctx) == "T dev"
    assert await render("{{#each items}}{{../context.env}}{{/each}}",
                        {"items": [1, 2]}, ctx=ctx) == "devdev"
    assert await render("{{> p}}", state, partials={"p": "{{context.env}}"}, ctx=ctx) == "dev"
    # a template that cannot reach `context` renders the state itself
    assert await render("{{title}}{{#each items}}{{this}}{{/each}}", {"title": "T", "items": [1]},
                        ctx=ctx) == "T1"
