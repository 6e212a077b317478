"""The `validate` middleware (spec/validate.md): the strict schema reader, the checks, the
non-object body; over real HTTP in tests/hostile/test_validate_http.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support import SimpleHost, body_of
from webpipe.executor.context import RequestContext
from webpipe.executor.pipeline import run_body
from webpipe.middleware.base import Behavior, StepCall
from webpipe.middleware.validate import Rule, SchemaError, ValidateMiddleware, parse_rules
from webpipe.program import program_from_text

JSON = Any


async def validate(config: str, state: JSON) -> JSON:
    mw = ValidateMiddleware(SimpleHost())
    result = await mw.run(state, mw.prepare(config, None), StepCall("validate", config))
    return result.value


def envelope(field: str, rule: str, message: str) -> JSON:
    return {"errors": [{"type": "validationError", "field": field, "context": field,
                        "rule": rule, "message": message}]}


def test_behavior_is_merge() -> None:
    assert ValidateMiddleware.behavior is Behavior.MERGE


# --- the schema reader (spec/validate.md) ---------------------------------------------------


def test_parses_the_spec_example() -> None:
    rules = parse_rules("{\n  handle: string(2..20)\n  contact: email\n  adult: boolean\n"
                        "  age: number\n}")
    assert rules == (Rule("handle", "string", 2, 20), Rule("contact", "email"),
                     Rule("adult", "boolean"), Rule("age", "number"))


def test_every_field_of_a_one_line_schema_is_a_rule() -> None:
    assert parse_rules("{ name: string(1..60), age: number }") == (
        Rule("name", "string", 1, 60), Rule("age", "number"))


@pytest.mark.parametrize("config", [
    "a: email\nb: bool",
    "{ a: email, b: bool }",
    "{\n  a: email,\n  b: bool,\n}",
    "\n a: email ,, \r\n\n b: boolean\n",
])
def test_commas_and_newlines_separate_fields(config: str) -> None:
    assert parse_rules(config) == (Rule("a", "email"), Rule("b", "boolean"))


def test_quoted_names_are_json_strings() -> None:
    assert parse_rules('{ "first name": string, "a\\"b": number }') == (
        Rule("first name", "string"), Rule('a"b', "number"))


@pytest.mark.parametrize(("rhs", "bounds"), [
    ("string(2..20)", (2, 20)),
    ("string(5)", (5, 5)),
    ("string(..3)", (None, 3)),
    ("string(3..)", (3, None)),
    ("string( 1 .. 4 )", (1, 4)),
    ("string", (None, None)),
])
def test_string_ranges(rhs: str, bounds: tuple[int | None, int | None]) -> None:
    assert parse_rules(f"s: {rhs}") == (Rule("s", "string", *bounds),)


def test_empty_braces_check_only_that_the_body_is_an_object() -> None:
    assert parse_rules("{}") == parse_rules(" { \n } ") == ()


@pytest.mark.parametrize(("config", "message", "offset"), [
    ("", "the schema is empty", 0),
    ("a: string b: number", "expected `,` or a new line before the next field", 10),
    ("{ a: strin }", "unknown type 'strin'", 5),
    ("a: integer", "unknown type 'integer'", 3),
    ("a: stringy", "unknown type 'stringy'", 3),
    ("name string", "expected `:` after the field name name", 4),
    ("a:", "expected a type after `a:`", 2),
    ("a: string(3", "a range is `(N)`", 9),
    ("a: string(x..3)", "a range is `(N)`", 9),
    ("a: string(-1..3)", "a range is `(N)`", 9),
    ("a: string(1..1" + "0" * 5000 + ")", "a range is `(N)`", 9),
    ("a: string()", "a range needs a number", 9),
    ("a: string(5..2)", "the range 5..2 is empty", 9),
    ("a: number(3)", "only string takes a length range, not number", 9),
    ("{ a: email", "`{` is never closed", 0),
    ("{ { a: email } }", "expected a field name", 2),
    ("a: email, a: string", "field 'a' appears twice", 10),
    ("tags: [string]", "expected a type after `tags:`", 6),
    ('"\\q": string', "bad escape in the field name", 0),
    ("# note: x\na: string", "expected a field name", 0),
])
def test_what_the_reader_does_not_accept_is_an_error_at_its_offset(
        config: str, message: str, offset: int) -> None:
    with pytest.raises(SchemaError) as info:
        parse_rules(config)
    assert message in info.value.message
    assert info.value.offset == offset


def test_prepare_raises_a_config_error_pointing_into_the_step() -> None:
    env = program_from_text("GET /a\n  |> validate: `{\n    name: string,\n    age: nmber\n  }`\n")
    [diagnostic] = env.diagnostics
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (4, 10)
    assert diagnostic.message.startswith("validate: cannot read the schema: unknown type 'nmber'")
    assert diagnostic.render().splitlines()[1:] == ["    age: nmber", "         ^"]


# --- §10.2 checks ----------------------------------------------------------------------------


async def test_string_required() -> None:
    message = "Field 'name' is required and must be a non-empty string"
    for body in ({}, {"name": None}, {"name": ""}, {"name": 5}, {"name": True},
                 {"name": ["x"]}):
        assert await validate("name: string", {"body": body}) == envelope(
            "name", "required", message), body


async def test_string_min_and_max_length() -> None:
    config = "{ name: string(2..4) }"
    assert await validate(config, {"body": {"name": "a"}}) == envelope(
        "name", "minLength", "Field 'name' must be at least 2 characters")
    assert await validate(config, {"body": {"name": "abcde"}}) == envelope(
        "name", "maxLength", "Field 'name' must be at most 4 characters")
    for ok in ("ab", "abcd"):
        state = {"body": {"name": ok}}
        assert await validate(config, state) == state


async def test_string_exact_length_reports_min_first() -> None:
    assert (await validate("code: string(3)", {"body": {"code": "ab"}}))["errors"][0][
        "message"] == "Field 'code' must be at least 3 characters"
    assert (await validate("code: string(3)", {"body": {"code": "abcd"}}))["errors"][0][
        "rule"] == "maxLength"


async def test_lengths_count_unicode_characters() -> None:
    state = {"body": {"name": "héé😀"}}  # 4 characters, 9 UTF-8 bytes
    assert await validate("name: string(4)", state) == state


async def test_email() -> None:
    required = "Field 'mail' is required and must be a valid email"
    invalid = "Field 'mail' must be a valid email address"
    for body in ({}, {"mail": ""}, {"mail": 7}, {"mail": None}):
        assert await validate("mail: email", {"body": body}) == envelope(
            "mail", "required", required)
    for bad in ("foo", "a@b", "ab.c", "@a.b", "a.b@"):
        assert await validate("mail: email", {"body": {"mail": bad}}) == envelope(
            "mail", "email", invalid), bad
    for good in ("a@b.c", "x.y@z", "a@@b.c"):
        state = {"body": {"mail": good}}
        assert await validate("mail: email", state) == state


async def test_boolean() -> None:
    message = "Field 'adult' is required and must be a boolean"
    for body in ({}, {"adult": "true"}, {"adult": 1}, {"adult": None}):
        assert await validate("adult: boolean", {"body": body}) == envelope(
            "adult", "required", message)
    for ok in (True, False):
        state = {"body": {"adult": ok}}
        assert await validate("adult: bool", state) == state


async def test_number() -> None:
    message = "Field 'age' is required and must be a number"
    for body in ({}, {"age": "3"}, {"age": True}, {"age": None}, {"age": [1]}):
        assert await validate("age: number", {"body": body}) == envelope(
            "age", "required", message)
    for ok in (0, -3, 1.5):
        state = {"body": {"age": ok}}
        assert await validate("age: number", state) == state


async def test_checks_run_in_line_order_and_stop_at_the_first_failure() -> None:
    config = "b: number\na: string"
    assert await validate(config, {"body": {}}) == envelope(
        "b", "required", "Field 'b' is required and must be a number")


async def test_quoted_field_names_look_up_the_key() -> None:
    config = '"first name": string'
    state = {"body": {"first name": "x"}}
    assert await validate(config, state) == state
    assert (await validate(config, {"body": {}}))["errors"][0]["field"] == "first name"


async def test_every_rule_of_a_one_line_schema_is_applied() -> None:
    config = "{ name: string(1..60), age: number }"
    assert await validate(config, {"body": {"name": "a", "age": "x"}}) == envelope(
        "age", "required", "Field 'age' is required and must be a number")


@pytest.mark.parametrize(("body", "kind"), [
    (None, "null"), ([], "array"), ([{"name": "a"}], "array"), ("x", "string"),
    (3, "number"), (True, "boolean")])
async def test_a_body_that_is_not_an_object_fails(body: JSON, kind: str) -> None:
    assert await validate("name: string", {"body": body}) == envelope(
        "body", "object", f"Request body must be a JSON object, got {kind}")


async def test_a_state_without_a_body_fails() -> None:
    for state in ({}, "plain", None):
        assert (await validate("name: string", state))["errors"][0]["rule"] == "object"
    assert (await validate("{}", {"body": []}))["errors"][0]["rule"] == "object"
    assert await validate("{}", {"body": {}}) == {"body": {}}


async def test_success_returns_the_state_and_never_mutates_it() -> None:
    state = {"body": {"name": "ab"}, "other": [1]}
    before = copy.deepcopy(state)
    assert await validate("name: string", state) is state
    await validate("x: number", state)
    assert state == before


# --- through the executor --------------------------------------------------------------------

APP = """
POST /signup
  |> validate: `{
    handle: string(2..20)
    contact: email
    adult: boolean
    age: number
  }`
  |> result
    ok(201):
      |> jq: `{ created: .body.handle }`
    validationError(422):
      |> jq: `{ field: .errors[0].field, rule: .errors[0].rule, keep: .marker }`
"""


async def run_signup(body: JSON) -> tuple[int | None, JSON]:
    env = program_from_text(APP)
    assert env.diagnostics == []
    _, route = next(env.index.routes())
    state = {"method": "POST", "body": body, "marker": "kept"}
    outcome = await run_body(body_of(env, route), state, env, RequestContext())
    return outcome.status, outcome.state


async def test_route_branches_on_validation_error_and_keeps_other_keys() -> None:
    body = {"handle": "me", "contact": "me@x.org", "adult": "yes", "age": 30}
    assert await run_signup(body) == (422, {"field": "adult", "rule": "required",
                                            "keep": "kept"})


async def test_route_passes_valid_body() -> None:
    body = {"handle": "me", "contact": "me@x.org", "adult": True, "age": 30}
    assert await run_signup(body) == (201, {"created": "me"})
