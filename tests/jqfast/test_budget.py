"""The fast path's inline budget (`jqfast.budget`): programs that would run long or build
a lot hand the run over (`NeedsWorker`) after a few ms; ordinary ones never notice it."""

from __future__ import annotations

import time

import pytest

from webpipe.jqfast import budget
from webpipe.jqlib import INLINE_BUDGET_S, JqProgram, NeedsWorker

LONG = [
    "[range(.n)]",  # range
    "[range(.n)] | length",
    "[limit(.n; range(1e18))] | length",
    "[range(300) as $a | range(300) as $b | range(300)] | length",  # products of loops
    "[(1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1)"
    " | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1)"
    " | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1) | (1,1)] | length",
    # a value shared 300 x 300 x 300 times: small to build, huge to print or copy
    "[range(300)] | [.[] as $x | .] | [.[] as $x | .] | tojson | length",
    "[range(300)] | [.[] as $x | .] | [.[] as $x | .]",
    '[range(60) | "x" * 1000000] | add | length',  # string building
    "[range(1000)] | . as $a | [range(1000) | $a] | add | length",  # array building
]


@pytest.mark.parametrize("text", LONG)
def test_long_runs_are_handed_over_within_the_budget(text: str) -> None:
    program = JqProgram(text)
    assert program.fast
    start = time.perf_counter()
    with pytest.raises(NeedsWorker):
        program.first_inline({"n": 10**9})
    # the budget plus the work between two checks; generous for a loaded machine
    assert time.perf_counter() - start < INLINE_BUDGET_S + 0.25


def test_a_handed_over_run_is_the_same_program_and_input() -> None:
    program = JqProgram("[range(.n)]")
    with pytest.raises(NeedsWorker) as info:
        program.first_inline({"n": 10**9})
    assert info.value.program is program and info.value.value == {"n": 10**9}


def test_ordinary_programs_run_inline() -> None:
    state = {"params": {"w": "world"}, "body": {"items": list(range(300))}}
    assert JqProgram("{ hello: .params.w }").first_inline(state) == {"hello": "world"}
    assert JqProgram("[.body.items[] | . * 2] | add").first_inline(state) == 89700
    assert JqProgram("[range(100)] | length").first_inline(state) == 100


def test_programs_outside_the_subset_go_to_a_worker() -> None:
    with pytest.raises(NeedsWorker):
        JqProgram("def f: f; f").first_inline(None)


def test_tooling_runs_have_no_budget() -> None:
    """`first` (tests, tooling) runs to the end, even after a budgeted run gave up."""
    program = JqProgram("[range(.n)] | length")
    with pytest.raises(NeedsWorker):
        program.first_inline({"n": 10**9})
    assert program.first({"n": 300_000}) == 300_000


def test_the_unit_cap_is_a_memory_proxy() -> None:
    budget.begin(budget.UNBOUNDED, 10 * budget.CHECK_EVERY)
    budget.spend(5 * budget.CHECK_EVERY)
    budget.spend(4 * budget.CHECK_EVERY)
    with pytest.raises(budget.OverBudget):
        budget.spend(2 * budget.CHECK_EVERY)
    budget.begin()


def test_the_clock_starts_at_the_first_check() -> None:
    budget.begin(0.05)
    budget.spend(budget.FIRST_CHECK + 1)  # first check: the clock starts
    time.sleep(0.06)
    with pytest.raises(budget.OverBudget):
        budget.spend(budget.CHECK_EVERY + 1)
    budget.begin()


def test_one_big_operation_is_not_started_inline() -> None:
    """A charge over `SINGLE_MAX` comes before the work: a single C-level copy or print of
    a large value never runs on the loop."""
    state = {"rows": list(range(200_000)), "text": "y" * 4_000_000,
             "obj": {str(i): i for i in range(100_000)}}
    for text in (".rows", ".text | tojson", "[.rows[] | 1] | length", ".rows | sort",
                 ".obj | keys | length", ".rows | reverse | length", ".rows | max",
                 ".text | ascii_upcase | length", ".rows[1:] | length",
                 ".obj | .a = 1 | length"):
        with pytest.raises(NeedsWorker):
            JqProgram(text).first_inline(state)
    assert JqProgram(".rows | length").first_inline(state) == 200_000
