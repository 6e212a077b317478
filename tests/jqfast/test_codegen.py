"""Generated jq functions (`codegen.py`) against the closures they replace, byte for byte.

Every corpus program, probe and Hypothesis program runs on both: the outputs (with their
Python types, so an int never passes for a float), the error text, whether the run asked
for libjq (`Fallback`), and the budget's counters after the run must be the same, for
`first` and for `outputs`, unbounded and under budgets small enough to run out mid-way.
(`test_differential.py` compares the generated path, the default, with libjq.)
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.jqfast.corpus import CONTEXTS, REQUESTS, jq_programs
from tests.jqfast.harness import needs_context
from tests.jqfast.probes import PROBE_INPUTS, PROBES
from tests.jqfast.strategies import json_values, programs
from webpipe.jqfast import Fallback, FastProgram, JqFastError, budget, compile_fast
from webpipe.jqfast.budget import UNBOUNDED, spend_each
from webpipe.jqfast.codegen import generate
from webpipe.jqfast.parser import parse

CORPUS = [text for text in jq_programs() if compile_fast(text) is not None]
BUDGETS = [UNBOUNDED, 3, 40, 300]  # max units: none, tiny, a few loops, past the first check
W8 = '{ items: [range(20) | { name: ("item " + tostring), qty: . }] }'
W2 = ("{ id: .body.order.id, who: .body.order.customer.name, total: ([.body.order.items[]"
      " | .qty * .price] | add), skus: [.body.order.items[].sku] }")
ORDER = {"body": {"order": {"id": 7, "customer": {"name": "Ada"}, "items": [
    {"sku": "a", "qty": 2, "price": 1.5}, {"sku": "é", "qty": 1, "price": 10}]}}}


def run(program: FastProgram, api: str, value: Any, context: Any, units: float) -> Any:
    """What one run shows: outputs or error, then the budget's counters."""
    variables = {"context": context} if needs_context(program.text) else {}
    budget.begin(UNBOUNDED, units)
    try:
        if api == "first":
            shown: Any = ("value", program.first(value, variables))
        else:
            outputs = []
            for out in program.outputs(value, variables):
                outputs.append(out)
                if len(outputs) >= 30:
                    break
            shown = ("values", outputs)
    except JqFastError as exc:
        shown = ("error", exc.message)
    except Fallback as exc:
        shown = ("fallback", type(exc).__name__)
    return repr(shown), budget._left, budget._spent  # the counters themselves


def assert_same(text: str, value: Any, context: Any = None) -> None:
    generated, closures = compile_fast(text), compile_fast(text, generated=False)
    assert generated is not None and closures is not None, text
    for api in ("first", "outputs"):
        for units in BUDGETS:
            expected = run(closures, api, value, context, units)
            assert run(generated, api, value, context, units) == expected, (text, value, api)


@pytest.mark.parametrize("text", CORPUS)
def test_corpus_program(text: str) -> None:
    for value in REQUESTS:
        for context in CONTEXTS:
            assert_same(text, value, context)


@pytest.mark.parametrize("text", PROBES)
def test_probe(text: str) -> None:
    for value in PROBE_INPUTS:
        assert_same(text, value)


EXTRA = [  # what the emitters do on their own: branches, binds, keys, kinds, copies
    W8, W2, "[range(3) | {a: [., .]}]", "[range(2) | {a: {b: ., c: [range(.)]}}]",
    "{a: [1], b: (1, 2)}", "[{a: [1], b: (1, 2)}]", "[range(3)] | [., .]",
    "{(.a, .b): (1, 2)}", "{(.a): .b}", "{a, \"b\"}",
    "[.[]? | select(. > 1)]", "[.[]? | if . then 1 else 2 end]", "[.[]? // 3]",
    "[.[]? | . and true, . or false]", "[(true, false, null) as $x | $x or .a?]",
    ". as $x | [$x, 1] | . as $y | {$y}", "[.[]? as $x | $x]", "1 | .a", "\"s\" | .a?",
    "[.[]?] | map(tostring)", "[range(.a?; 4)]?", "[range(1; 3)] | map(. * 2)",
    "[range(2.5)]", "{a: 1, a: [2]}", "{\"é\": \"ü\"}", "{a: [\"é\", 1.0, -0.0]}",
    "[range(3) | tostring]", "[range(3) | \"n\\(.)\"]", "{a: 1} | {b: .}",
    "if .a? then {x: 1} else {y: [range(2)]} end", "{a: (.a? // {b: 1})}",
    "[range(100) | {k: ., v: [range(.)]}] | length", "[range(30) | {a: ., b: .}]",
    "[.[]? | not]", "[.[]? | {(tostring): 1}?]", "{a: .a?, b: (.b? | length?)}",
    "[.[]? | has(\"a\")?]", "[empty]", "{a: [empty]}", "[.[]?.a?] | add",
    "[range(3) | empty]", "1, error(\"x\"), 2", "[1, error(\"x\")]", "{a: error(\"x\")}",
    ".a = 1", ".a.b = (1, 2)", ".a += 1", ".a -= .a", ".[0] *= 2", ".a //= 3", ".a |= . + 1",
    "[" * 12 + "range(2)" + "]" * 12, "[[[.[]?]], [[1]]]", ".[]? | [[[.]]]",
    "[.a, (.b | .a), .a]", "if .c then .a.b else .a end, .a.b", ".a.b, .a.c",  # reads reused
    "[.[] | .a, .a]", "{x: .a.b, y: [.[] | .a], z: .a.b}", ".a as $x | .a | [$x, .]",
    "(.a // .b) as $x | [.a, $x]", "[.a.b, (.a | tostring), .a.b]",
    ".a |= (1, 2)", ".a |= empty", ".a.b |= length", "1 | .a = 2", ".a = .b | .b += 1",
]


@pytest.mark.parametrize("text", EXTRA)
def test_extra_program(text: str) -> None:
    assert compile_fast(text) is not None, text
    for value in [*PROBE_INPUTS, ORDER]:
        assert_same(text, value)


@settings(max_examples=1000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs(), json_values(), json_values(4))
def test_generated_programs_agree(text: str, value: Any, context: Any) -> None:
    if compile_fast(text) is not None:
        assert_same(text, value, context)


def test_route_programs_are_generated_without_closures() -> None:
    """W2 and W8 (and the W0-W3 shapes) run as one generated function calling no closure,
    and W8's result skips the output copy (it is built fresh, in output form)."""
    for text in (W8, W2, "{ hello: .params.w }", "{ title: \"Hello\", name: .params.w }",
                 "{ n: (.n * 2), doubled: true }", "{ result: (.n + 1), doubled: .doubled }"):
        run_first = generate(parse(text), "first", text)
        assert run_first is not None, text
        source = run_first.source  # type: ignore[attr-defined]
        assert "_one" not in source and "_gen" not in source, source
        program = compile_fast(text)
        assert program is not None
        program.first({**ORDER, "n": 2, "params": {"w": "x"}}, {})
        assert program.generated
    w8_source = generate(parse(W8), "first").source  # type: ignore[union-attr]
    assert "to_output" not in w8_source


def test_too_big_programs_keep_their_closures() -> None:
    text = "[" + " | ".join(["(1, 2)"] * 12) + "]"  # each `,` copies the rest of the program
    assert generate(parse(text), "first") is None
    program = compile_fast(text)
    assert program is not None
    closures = compile_fast(text, generated=False)
    assert closures is not None
    budget.begin()
    assert program.first(None, {}) == closures.first(None, {}) == [1, 2] * 2048
    assert not program.generated


@given(st.integers(0, 300), st.integers(0, 5), st.integers(1, 400))
def test_spend_each_is_count_spends(count: int, units: int, before: int) -> None:
    """`spend_each(c, u)` leaves the budget exactly where c calls of `spend(u)` do."""
    states = []
    for each in (True, False):
        budget.begin(UNBOUNDED, 2_000)
        budget.spend(before)
        try:
            if each:
                spend_each(count, units)
            else:
                for _ in range(count):
                    budget.spend(units)
            states.append((budget._left, budget._spent, None))
        except Fallback:
            states.append((budget._left, budget._spent, "over"))
    assert states[0] == states[1]


_EDGE = [0, -0.0, 0.0, 1, -1, 1.5, 0.1, 1e300, -1e300, 1e-300, 2**53 - 1, 2**53, 2**53 + 1,
         -(2**53) - 1, 2**63, 10**20, "a", None, [1], {"a": 1}, True]


@pytest.mark.parametrize("text", [".a + .b", ".a - .b", ".a * .b", ". * 2", "2.5 - .a?",
                                  "1e300 * .a?", ".a? + 9007199254740993", "-.a? * 1.50"])
def test_inline_arithmetic_on_edge_numbers(text: str) -> None:
    """The exact number lane written into generated code, around ±2**53, ±0 and overflow."""
    for a in _EDGE:
        for b in _EDGE[:12]:
            assert_same(text, {"a": a, "b": b})


def test_every_corpus_and_probe_program_is_generated() -> None:
    """Coverage: each program gets a generated function; the corpus calls no closure."""
    for text in [*CORPUS, *PROBES, *EXTRA]:
        for mode in ("first", "outputs"):
            run_mode = generate(parse(text), mode, text)
            assert run_mode is not None, (text, mode)
            if text in CORPUS:
                source = run_mode.source  # type: ignore[attr-defined]
                assert "_one" not in source and "_gen" not in source, text
