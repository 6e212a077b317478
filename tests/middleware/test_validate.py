"""The `validate` middleware: spec/middleware.md §10 (scanner §10.1, checks §10.2)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support import SimpleHost
from webpipe.executor.context import RequestContext
from webpipe.executor.pipeline import run_pipeline
from webpipe.middleware.base import Behavior, StepCall
from webpipe.middleware.validate import Rule, ValidateMiddleware, parse_rules, rust_lines
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


# --- §10.1 scanner ---------------------------------------------------------------------------


def test_parses_the_spec_example() -> None:
    rules = parse_rules("{\n  handle: string(2..20)\n  contact: email\n  adult: boolean\n"
                        "  age: number\n}")
    assert rules == (Rule("handle", "string", 2, 20), Rule("contact", "email"),
                     Rule("adult", "boolean"), Rule("age", "number"))


def test_only_one_rule_per_line() -> None:
    assert parse_rules("{ a: string, b: number }") == (Rule("a", "string"),)


def test_outer_braces_are_optional_and_only_the_outer_pair_is_removed() -> None:
    assert parse_rules("a: email\nb: bool") == (Rule("a", "email"), Rule("b", "boolean"))
    # "{ {" keeps the inner brace: the field name is "{ a"
    assert parse_rules("{ { a: email } }") == (Rule("{ a", "email"),)


def test_trailing_comma_run_and_blank_lines() -> None:
    assert parse_rules("\n  a: number,,,\n\n  b: email ,\n") == (
        Rule("a", "number"), Rule("b", "email"))


def test_lines_without_colon_or_with_unknown_types_are_ignored() -> None:
    assert parse_rules("name string\nage: integer\ntags: [string]\nok: number") == (
        Rule("ok", "number"),)


def test_field_is_text_before_the_first_colon_with_quotes_kept() -> None:
    assert parse_rules('"first name": string\nurl:x: email') == (
        Rule('"first name"', "string"),)
    assert parse_rules("a : email:extra") == (Rule("a", "email"),)


def test_types_match_by_prefix() -> None:
    assert parse_rules("a: stringy\nb: emails\nc: bool\nd: boolean\ne: numbers") == (
        Rule("a", "string"), Rule("b", "email"), Rule("c", "boolean"), Rule("d", "boolean"),
        Rule("e", "number"))
    assert parse_rules("f: numeric\ng: String") == ()


@pytest.mark.parametrize(("rhs", "bounds"), [
    ("string(2..20)", (2, 20)),
    ("string(5)", (5, 5)),
    ("string(..3)", (None, 3)),
    ("string(3..)", (3, None)),
    ("string( 1 .. 4 )", (1, 4)),
    ("string(+2..9)", (2, 9)),
    ("string(x..3)", (None, 3)),
    ("string(-1..3)", (None, 3)),
    ("string(1..2..3)", (None, None)),
    ("string()", (None, None)),
    ("string(2..4) x)", (2, None)),  # up to the last ")": max side "4) x" is unreadable
    ("string", (None, None)),
    ("string(3", (None, None)),
])
def test_string_ranges(rhs: str, bounds: tuple[int | None, int | None]) -> None:
    assert parse_rules(f"s: {rhs}") == (Rule("s", "string", *bounds),)


def test_empty_config_has_no_rules() -> None:
    assert parse_rules("") == ()
    assert parse_rules("{}") == ()


def test_rust_lines() -> None:
    assert rust_lines("") == []
    assert rust_lines("\n") == [""]
    assert rust_lines("a\r\nb\n") == ["a", "b"]
    assert rust_lines("a\n\nb") == ["a", "", "b"]


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


async def test_quoted_field_names_look_up_the_quoted_key() -> None:
    config = '"name": string'
    assert (await validate(config, {"body": {"name": "x"}}))["errors"][0]["field"] == '"name"'
    state = {"body": {'"name"': "x"}}
    assert await validate(config, state) == state


async def test_missing_or_non_object_body_passes() -> None:
    for state in ({}, {"body": None}, {"body": "text"}, {"body": [1]}, "plain", None):
        assert await validate("name: string", state) == state


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
    outcome = await run_pipeline(route.pipeline, state, env, RequestContext())
    return outcome.status, outcome.state


async def test_route_branches_on_validation_error_and_keeps_other_keys() -> None:
    body = {"handle": "me", "contact": "me@x.org", "adult": "yes", "age": 30}
    assert await run_signup(body) == (422, {"field": "adult", "rule": "required",
                                            "keep": "kept"})


async def test_route_passes_valid_body() -> None:
    body = {"handle": "me", "contact": "me@x.org", "adult": True, "age": 30}
    assert await run_signup(body) == (201, {"created": "me"})
