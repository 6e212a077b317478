"""The fast path against libjq: same outputs, same error text, in the same order.

(a) every jq program in the project's .wp files on request-like inputs; (b) programs probing
the semantics that are easy to get wrong (number text, ordering, generators, errors); (c)
Hypothesis programs from the subset's grammar on Hypothesis JSON. When `compile_fast` returns
None the program is libjq's alone and there is nothing to compare; when a run raises
`Fallback` libjq reruns it, so there is nothing to compare either.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.jqfast.corpus import CONTEXTS, REQUESTS, jq_programs
from tests.jqfast.harness import libjq_compiles, run_fast, run_libjq
from tests.jqfast.probes import PROBE_INPUTS, PROBES
from tests.jqfast.strategies import json_values, programs
from webpipe.jqfast import compile_fast

CORPUS = jq_programs()


def assert_same(text: str, value: Any, context: Any = None) -> bool:
    """Compare both engines on one input; False when the fast path fell back."""
    program = compile_fast(text)
    assert program is not None, text
    actual = run_fast(program, value, context)
    if actual is None:
        return False
    assert actual == run_libjq(text, value, context), (text, value)
    assert repr(actual) == repr(run_libjq(text, value, context)), (text, value)  # int vs float
    return True


def test_corpus_is_found() -> None:
    assert len(CORPUS) > 100
    assert "{ hello: .params.w }" in CORPUS or any(".params" in p for p in CORPUS)


def test_corpus_is_mostly_fast() -> None:
    slow = [text for text in CORPUS if compile_fast(text) is None]
    assert len(slow) <= len(CORPUS) // 20, slow


@pytest.mark.parametrize("text", [p for p in CORPUS if compile_fast(p) is not None])
def test_corpus_program(text: str) -> None:
    compared = [assert_same(text, value, context) for value in REQUESTS for context in CONTEXTS]
    assert any(compared) or all(r is None for r in REQUESTS)


@pytest.mark.parametrize("text", PROBES)
def test_probe(text: str) -> None:
    assert libjq_compiles(text), text
    compared = [assert_same(text, value) for value in PROBE_INPUTS]
    assert any(compared), f"{text}: every run fell back"


@settings(max_examples=1000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs(), json_values(), json_values(4))
def test_generated_programs_agree(text: str, value: Any, context: Any) -> None:
    program = compile_fast(text)
    if program is None:
        return
    assert libjq_compiles(text), f"fast path accepted a program libjq rejects: {text}"
    actual = run_fast(program, value, context)
    if actual is not None:
        expected = run_libjq(text, value, context)
        assert repr(actual) == repr(expected), (text, value)


_EDGE_NUMBERS = [0, -0.0, 0.0, 1, -1, 3, 1.5, -2.25, 0.1, 0.2, 1e300, -1e300, 1e-300,
                 2**53 - 1, 2**53, 2**53 + 1, -(2**53), -(2**53) - 1, 2**63, 10**20, 123456789.125]


@pytest.mark.parametrize("op", ["+", "-", "*"])
def test_arithmetic_on_edge_numbers_agrees(op: str) -> None:
    """The int/float fast lanes of + - * (ops._exact) against libjq, around ±2**53 and zero."""
    text = f".a {op} .b"
    compared = [assert_same(text, {"a": a, "b": b}) for a in _EDGE_NUMBERS for b in _EDGE_NUMBERS]
    assert sum(compared) > len(compared) // 2


def test_add_over_plain_numbers_agrees() -> None:
    """add_all's lane for arrays of plain numbers against libjq (order of additions kept)."""
    arrays = [[0.1] * 10, [1, 2, 3], [2**53, 1, 1], [1, 2**53, -(2**53)], [1e300, 1e300, -1e300],
              [-0.0, 0], [-0.0, -0.0], [0.1, 0.2, 0.3], [3, 1.5], [2**53 + 1, 1], [1, True],
              [1, "a"], [1.5, None, 2]]
    compared = [assert_same("add", items) for items in arrays]
    assert sum(compared) >= len(arrays) - 3


@pytest.mark.parametrize("text", ["(.a * 0.1) + .b", "(.a - .b) * (.a + 0.5)", "(.a + .b) - 1e-300",
                                  "[.a, .b, (.a * .b)] | add", "[(.a / 3), .b] | add"])
def test_arithmetic_on_computed_values_agrees(text: str) -> None:
    compared = [assert_same(text, {"a": a, "b": b}) for a in _EDGE_NUMBERS for b in _EDGE_NUMBERS]
    assert sum(compared) > len(compared) // 2
