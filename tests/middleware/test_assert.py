"""The `assert` middleware: spec/middleware.md §11 and spec/testing.md §10."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support import SimpleHost, body_of
from webpipe.errors import ConfigError
from webpipe.executor.context import RequestContext
from webpipe.executor.pipeline import run_body
from webpipe.middleware.assert_ import (
    Array,
    AssertMiddleware,
    Bool,
    Email,
    Field,
    Literal,
    Null,
    Number,
    Object,
    SchemaError,
    SchemaParser,
    String,
    Union,
    Unknown,
)
from webpipe.middleware.base import Behavior, StepCall
from webpipe.program import program_from_text
from webpipe.source import Source

JSON = Any


async def run_assert(schema: str, state: JSON) -> JSON:
    mw = AssertMiddleware(SimpleHost())
    result = await mw.run(state, mw.prepare(schema, None), StepCall("assert", schema))
    return result.value


async def failure(schema: str, state: JSON) -> tuple[str, str]:
    """(field, message) of the envelope the contract produces for `state`."""
    value = await run_assert(schema, state)
    [error] = value["errors"]
    assert error["type"] == "assertionError"
    assert error["rule"] == "assert"
    assert error["code"] == "assert_failed"
    assert error["context"] == error["field"]
    return error["field"], error["message"]


async def passes(schema: str, state: JSON) -> bool:
    return await run_assert(schema, state) is state


def parse(text: str) -> object:
    return SchemaParser(text).parse()


def parse_error(text: str) -> str:
    with pytest.raises(SchemaError) as info:
        SchemaParser(text).parse()
    return str(info.value)


def test_behavior_is_merge() -> None:
    assert AssertMiddleware.behavior is Behavior.MERGE


# --- grammar ---------------------------------------------------------------------------------


def test_named_types() -> None:
    assert [parse(t) for t in ("unknown", "any", "null", "bool", "boolean", "number",
                               "email", "true", "false", "string")] == [
        Unknown(), Unknown(), Null(), Bool(), Bool(), Number(), Email(), Literal(True),
        Literal(False), String()]


@pytest.mark.parametrize(("text", "schema"), [
    ("string(3)", String(3, 3)),
    ("string(1..40)", String(1, 40)),
    ("string(1..)", String(1, None)),
    ("string(..8)", String(None, 8)),
    ("string ( 2 .. 5 )", String(2, 5)),
    ("string(+2)", String(2, 2)),
])
def test_string_ranges(text: str, schema: String) -> None:
    assert parse(text) == schema


def test_string_literal_escapes() -> None:
    assert parse(r'"a\"b\\c\/d\ne\rf\tg"') == Literal('a"b\\c/d\ne\rf\tg')


def test_number_literals_keep_integers_exact() -> None:
    assert parse("200") == Literal(200)
    assert isinstance(parse("-7"), Literal) and parse("-7") == Literal(-7)
    assert parse("1.5") == Literal(1.5)
    assert parse("5.") == Literal(5.0)
    assert parse("-.5") == Literal(-0.5)


def test_arrays() -> None:
    assert parse("[]") == Array(Unknown())
    assert parse("[ string , ]") == Array(String())
    assert parse("[number | null]") == Array(Union((Number(), Null())))


def test_objects() -> None:
    text = '{ id: number, "full name"?: string,, ... , tags-x : [string] nested: { a: any } }'
    assert parse(text) == Object((
        Field("id", False, Number()),
        Field("full name", True, String()),
        Field("tags-x", False, Array(String())),
        Field("nested", False, Object((Field("a", False, Unknown()),))),
    ))
    assert parse("{}") == Object(())
    assert parse("{ ... }") == Object(())
    assert parse("{ a ? : null }") == Object((Field("a", True, Null()),))


def test_unions() -> None:
    assert parse('"C" | "F" | 1') == Union((Literal("C"), Literal("F"), Literal(1)))


@pytest.mark.parametrize(("text", "message"), [
    ("", "unexpected end of schema"),
    ("{ a: ", "unexpected end of schema"),
    ("number number", "unexpected token 'n'"),
    ("string | ", "unexpected end of schema"),
    ("#", "unexpected token '#'"),
    ("foo", "unknown assert type 'foo'"),
    ("{ a string }", "expected ':', got 's'"),
    ("{ a", "expected ':', got 'end of schema'"),
    ("{ 1: number }", "expected object field name, got '1'"),
    ("{ a: number, ", "expected object field name, got end of schema"),
    ("[string", "expected ']', got 'end of schema'"),
    ("[string number]", "expected ']', got 'n'"),
    ('"abc', "unterminated string literal"),
    ('"abc\\', "unterminated string escape"),
    ('"\\u0041"', "unsupported string escape '\\u'"),
    ("-", "invalid number literal '-'"),
    ("-.", "invalid number literal '-.'"),
    ("string()", "invalid string range ''"),
    ("string(a..2)", "invalid string range 'a..2'"),
    ("string(1..2..3)", "invalid string range '1..2..3'"),
    ("string(-1)", "invalid string range '-1'"),
    ("string(3", "expected ')', got 'end of schema'"),
])
def test_parse_errors(text: str, message: str) -> None:
    assert parse_error(text) == message


def test_prepare_raises_config_error_with_span() -> None:
    span = Source.from_text("app.wp", "|> assert: `{ a: }`").span(0, 5)
    with pytest.raises(ConfigError) as info:
        AssertMiddleware(SimpleHost()).prepare("{ a: }", span)
    assert info.value.message == "assert schema parse error: unexpected token '}'"
    assert info.value.span is span


# --- checking: every form and every message ---------------------------------------------------


async def test_type_mismatch_messages_name_the_actual_type() -> None:
    cases = [("null", 1, "Expected null at $, got number"),
             ("boolean", "x", "Expected boolean at $, got string"),
             ("number", True, "Expected number at $, got boolean"),
             ("string", None, "Expected string at $, got null"),
             ("email", [], "Expected email string at $, got array"),
             ("[]", {}, "Expected array at $, got object"),
             ("{}", [], "Expected object at $, got array")]
    for schema, value, message in cases:
        assert await failure(schema, value) == ("$", message), schema


async def test_unknown_and_any_accept_everything() -> None:
    for value in (None, 1, "s", [1], {"a": 1}, False):
        assert await passes("unknown", value)
        assert await passes("any", value)


async def test_string_lengths() -> None:
    assert await failure("{ label: string(1..40) }", {"label": ""}) == (
        "label", "Expected string at $.label to be at least 1 characters")
    assert await failure("{ label: string(..2) }", {"label": "abc"}) == (
        "label", "Expected string at $.label to be at most 2 characters")
    assert await passes("string(4)", "né😀x")


async def test_email() -> None:
    for bad in ("foo", "a@b", "@a.b", "a.b@"):
        assert await failure("{ e: email }", {"e": bad}) == ("e", "Expected valid email at $.e")
    assert await passes("email", "reader@example.org")


async def test_literals() -> None:
    assert await failure('{ kind: "paper" }', {"kind": "ebook"}) == (
        "kind", 'Expected literal "paper" at $.kind, got string')
    assert await failure("{ ok: true }", {"ok": False}) == (
        "ok", "Expected literal true at $.ok, got boolean")
    assert await failure("{ v: 1.5 }", {"v": "1.5"}) == (
        "v", "Expected literal 1.5 at $.v, got string")
    assert await passes('"a\\nb"', "a\nb")
    assert await passes("false", False)


async def test_number_literals_compare_numerically() -> None:
    # spec [Improve]: the reference stores 200 as 200.0 and never matches an integer 200
    assert await passes("{ status: 200 }", {"status": 200})
    assert await passes("{ status: 200 }", {"status": 200.0})
    assert await passes("{ v: 2.50 }", {"v": 2.5})
    assert await failure("{ v: 1 }", {"v": True}) == (
        "v", "Expected literal 1 at $.v, got boolean")
    assert await failure("{ v: true }", {"v": 1}) == (
        "v", "Expected literal true at $.v, got number")


async def test_missing_and_optional_fields() -> None:
    schema = "{ id: number, tags?: [string] }"
    assert await failure(schema, {"tags": []}) == ("id", "Missing required field $.id")
    assert await passes(schema, {"id": 1})
    assert await failure(schema, {"id": 1, "tags": None}) == (
        "tags", "Expected array at $.tags, got null")


async def test_objects_are_open() -> None:
    assert await passes("{ a: number }", {"a": 1, "extra": [1, 2]})
    assert await passes('{ "full name": string, ... }', {"full name": "x", "b": 2})


async def test_array_items_and_nested_paths() -> None:
    schema = "{ data: { rows: [{ id: string, name: string }], rowCount: number } }"
    assert await failure(schema, {"data": {"rows": []}}) == (
        "data.rowCount", "Missing required field $.data.rowCount")
    state = {"data": {"rows": [{"id": "1", "name": "a"}, {"id": 2, "name": "b"}],
                      "rowCount": 2}}
    assert await failure(schema, state) == (
        "data.rows[1].id", "Expected string at $.data.rows[1].id, got number")
    assert await failure("[number]", [1, "x"]) == ("$[1]", "Expected number at $[1], got string")


async def test_union_messages_list_every_member() -> None:
    schema = '{ kind: "paper" | "ebook" | null }'
    assert await passes(schema, {"kind": None})
    assert await failure(schema, {"kind": 3}) == (
        "kind", "Value at $.kind did not match any union member: "
        'Expected literal "paper" at $.kind, got number; '
        'Expected literal "ebook" at $.kind, got number; Expected null at $.kind, got number')


async def test_first_violation_wins_in_field_order() -> None:
    assert await failure("{ a: number, b: number }", {"a": "x"}) == (
        "a", "Expected number at $.a, got string")


async def test_spec_example_shelf_state() -> None:
    schema = ('{ id: number | string, label: string(1..40), tags?: [string], '
              'kind: "paper" | "ebook", ... }')
    assert await failure(schema, {"id": 3, "label": "", "kind": "paper"}) == (
        "label", "Expected string at $.label to be at least 1 characters")
    assert await failure(schema, {"id": 3, "kind": "paper"}) == (
        "label", "Missing required field $.label")
    assert await passes(schema, {"id": "x", "label": "Maps", "kind": "ebook", "more": 1})


async def test_success_returns_state_unchanged_and_input_is_never_mutated() -> None:
    state = {"a": 1, "b": {"c": [1]}}
    before = copy.deepcopy(state)
    assert await passes("{ a: number }", state)
    await run_assert("{ a: string }", state)
    assert state == before


async def test_envelope_shape() -> None:
    assert await run_assert("{ a: number }", {}) == {"errors": [{
        "type": "assertionError", "field": "a", "context": "a", "rule": "assert",
        "code": "assert_failed", "message": "Missing required field $.a"}]}


# --- through the executor --------------------------------------------------------------------

APP = """
assert Reading = `{ sensor: string(1..), value: number, tags?: [string], unit: "C" | "F" }`

GET /reading
  |> jq: `{ sensor: "t1", value: 21.5, unit: .params.unit, keep: 1 }`
  |> assert: Reading
  |> result
    assertionError(422):
      |> jq: `{ bad: .errors[0].field, keep: .keep }`
    ok(200):
      |> jq: `.`

GET /renamed
  |> jq: `{ value: "x" }`
  |> assert: `{ value: number }` @error(badReading)
  |> result
    badReading(400):
      |> jq: `{ renamed: .errors[0].type }`

GET /broken
  |> assert: `{ a: }`
  |> result
    assertError(500):
      |> jq: `.errors[0]`
"""


async def run_route(path: str, unit: str = "C") -> tuple[int | None, JSON, list[str]]:
    env = program_from_text(APP)
    route = next(r for _, r in env.index.routes() if r.path == path)
    outcome = await run_body(body_of(env, route), {"params": {"unit": unit}}, env,
                                 RequestContext())
    return outcome.status, outcome.state, [d.message for d in env.diagnostics]


async def test_variable_contract_passes_and_auto_name_is_removed() -> None:
    status, state, _ = await run_route("/reading")
    assert status == 200
    assert state == {"sensor": "t1", "value": 21.5, "unit": "C", "keep": 1,
                     "params": {"unit": "C"}}


async def test_variable_contract_failure_is_merged_and_branchable() -> None:
    assert (await run_route("/reading", "K"))[:2] == (422, {"bad": "unit", "keep": 1})


async def test_error_tag_renames_the_envelope() -> None:
    assert (await run_route("/renamed"))[:2] == (400, {"renamed": "badReading"})


async def test_schema_syntax_error_is_reported_at_load_and_branchable_at_run() -> None:
    status, state, diagnostics = await run_route("/broken")
    assert diagnostics == ["assert: assert schema parse error: unexpected token '}'"]
    assert status == 500
    assert state == {"type": "assertError", "step": "assert", "location": "app.wp:21",
                     "message": "assert schema parse error: unexpected token '}'"}
