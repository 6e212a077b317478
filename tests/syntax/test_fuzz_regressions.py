"""Inputs that once escaped as tracebacks (issue 22), each now one diagnostic with
`file:line:col`; every stage of `tests/fuzzing.py` runs on them. Found by the fuzzer or by
hunting for what mutations cannot reach (deep nesting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzzing import run_stages
from tests.support import body_of
from webpipe.errors import WpSyntaxError
from webpipe.program import program_from_text
from webpipe.source import Source
from webpipe.syntax.nesting import MAX_NESTING
from webpipe.syntax.parser import parse

HERE = Path(__file__)


def nested_ifs(depth: int) -> str:
    lines = ["GET /deep"]
    lines += ["  |> if", "    |> jq: `true`", "    then:"] * depth
    lines += ["  |> jq: `{ deep: true }`"] + ["  end"] * depth
    return "\n".join(lines) + "\n"


def nested_tags(depth: int) -> str:
    expr = "@flag(a)"
    for level in range(depth):
        expr = f"(@!flag(b) {'or ' if level % 2 else ''}{expr})"
    return f"GET /t\n  |> jq: `1` {expr}\n"


@pytest.mark.parametrize("make", [nested_ifs, nested_tags])
def test_nesting_up_to_the_bound_loads_and_formats(make: object) -> None:
    assert callable(make)
    text = make(MAX_NESTING)
    run_stages(HERE, text)
    assert program_from_text(text).diagnostics == []


@pytest.mark.parametrize(("text", "where", "message"), [
    (nested_ifs(MAX_NESTING + 1), (2 + 3 * MAX_NESTING, 3), "steps nested more than 50"),
    (nested_ifs(3000), (2 + 3 * MAX_NESTING, 3), "steps nested more than 50"),
    (nested_tags(3000), (2, None), "tag groups nested more than 50"),
])
def test_nesting_past_the_bound_is_a_syntax_error(
        text: str, where: tuple[int, int | None], message: str) -> None:
    with pytest.raises(WpSyntaxError, match=message) as info:
        parse(Source.from_text("deep.wp", text))
    span = info.value.span
    assert span is not None and span.line == where[0]
    assert where[1] is None or span.column == where[1]
    # Lark's own tree walk (the fallback when a rule method fails) may run out of stack
    # first; that is a diagnostic too
    with pytest.raises(WpSyntaxError, match="nested"):
        parse(Source.from_text("deep.wp", text), lark_only=True)
    run_stages(HERE, text)


def test_the_fuzzers_first_finds() -> None:
    """`GET /a/:id/:id` raised re.error; an import of a NUL path raised ValueError."""
    for text in ("GET /a/:id/:id\n  |> jq: `1`\n", 'import "x\0" as x\n',
                 "GET /a/:x-y/:x__y\n  |> jq: `1`\n"):
        run_stages(HERE, text)


def test_carriage_returns_before_a_line_end_normalise_in_one_pass() -> None:
    """`\\r\\r\\n` used to become `\\r\\n`, which the next read turned into `\\n`: `fmt`
    changed a `with body` value on its second run (found by the fuzzer)."""
    text = 'describe "x"\n  it "y"\n    when calling GET /a\n    with body `\r\r\n\n\r`\n' \
           "    then status is 200\n"
    run_stages(HERE, text)
    assert Source.from_text("a.wp", "a\r\r\nb\r\nc\rd").text == "a\nb\nc\rd"


@pytest.mark.parametrize("text", [
    "GET /a\n  |> jq: `1` @timeout(" + "9" * 5000 + ")\n",
    "GET /a\n  |> jq: `1` @timeout(`\u00b2`)\n  |> jq: `1` @retry(`\u0663`)\n",
    "config pg {\n  port: " + "9" * 5000 + "\n}\n",
    "GET /a\n  |> result\n    ok(" + "2" * 5000 + "):\n      |> jq: `1`\n",
    "GET /a\n  |> foreach .rows.\u00b2\n    |> jq: `1`\n  end\n",
    "GET /a\n  |> assert: `{ a: string(1.." + "9" * 5000 + ") }`\n",
    "GET /a\n  |> pg: `select $" + "9" * 5000 + "`\n",
    "GET /a\n  |> cache: `ttl: " + "9" * 5000 + "`\n",
    "GET /a\n  |> jq: `" + "9" * 5000 + "`\n",
    "GET /a\n  |> validate: `{ a: string(" + "9" * 5000 + ") }`\n",
])
def test_numbers_no_int_can_read_are_diagnostics(text: str) -> None:
    """Digits past `int()`'s 4300-digit limit, and `²` (`isdigit()` but not `int()`)."""
    run_stages(HERE, text)


def test_status_and_tag_numbers_are_bounded_in_check(tmp_path: Path) -> None:
    from webpipe.check import check_file
    app = tmp_path / "app.wp"
    app.write_text("GET /a\n  |> jq: `1` @timeout(`\u00b2`)\n")
    [found] = check_file(app)
    assert found.message == "@timeout needs a whole number of at most 9 digits"
    app.write_text("GET /a\n  |> result\n    ok(99):\n      |> jq: `1`\n")
    [found] = check_file(app)
    assert found.message == "result branch status must be between 100 and 599, got 99"
    assert found.span is not None and (found.span.line, found.span.column) == (3, 5)


def test_a_schema_graphql_core_refuses_while_building_is_a_load_error() -> None:
    """`build_ast_schema` raised GraphQLError itself (a directive argument of the wrong type)."""
    from webpipe.errors import LoadError
    from webpipe.server import build_served
    text = "graphqlSchema = `type Query { a: Int @deprecated(reason: 5) }`\n" \
           "query a =\n  |> jq: `1`\n"
    run_stages(HERE, text)
    with pytest.raises(LoadError) as info:
        build_served(program_from_text(text))
    assert info.value.message == (
        "GraphQL initialization failed: Query fields cannot be resolved. Argument 'reason' "
        "has invalid value: String cannot represent a non string value: 5")
    assert info.value.span is not None and info.value.span.line == 1


@pytest.mark.parametrize("block", ["cache", "rateLimit"])
def test_a_redis_url_redis_py_cannot_read_is_a_config_error(block: str) -> None:
    pytest.importorskip("redis")
    step = "cache: `ttl: 5`" if block == "cache" else "rateLimit: `limit: 5/min, key: ip`"
    text = f'config {block} {{\n  backend: "redis",\n  url: "::::"\n}}\n\nGET /x\n  |> {step}\n'
    run_stages(HERE, text)
    [found] = [d for d in program_from_text(text).diagnostics if "redis" in d.message]
    assert "bad redis url: Redis URL must specify one of the following schemes" in found.message
    assert found.span is not None and found.span.line == 7


def test_a_long_chain_of_pipeline_calls_loads() -> None:
    """The feature-flags scan followed calls recursively: RecursionError at load."""
    lines = [f"pipeline p{i} =\n  |> p{i + 1}\n" for i in range(3000)]
    text = "".join(lines) + "pipeline p3000 =\n  |> jq: `1` @flag(x)\n\nGET /a\n  |> p0\n"
    run_stages(HERE, text)
    from webpipe.flags import needs_flags
    env = program_from_text(text)
    [(_, route)] = list(env.index.routes())
    assert needs_flags(body_of(env, route))
