"""`webpipe.jqlib` with the fast path: same results and errors, libjq on demand."""

from __future__ import annotations

import pytest

from webpipe.jqlib import FORCE_LIBJQ_ENV, JqError, JqProgram, compile_jq


@pytest.fixture(autouse=True)
def _fast_path_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the fast path: the suite may run under WEBPIPE_JQ_LIBJQ=1."""
    monkeypatch.delenv(FORCE_LIBJQ_ENV, raising=False)


def test_fast_path_is_used_for_subset_programs() -> None:
    program = JqProgram("{ hello: .params.w }")
    assert program.fast
    assert program.first({"params": {"w": "world"}}) == {"hello": "world"}


def test_programs_outside_the_subset_use_libjq() -> None:
    program = JqProgram('{ failed: (.e | test("boom")) }')
    assert not program.fast
    assert program.first({"e": "a boom"}) == {"failed": True}


def test_flag_forces_libjq(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FORCE_LIBJQ_ENV, "1")
    assert not compile_jq("{ a: .b }").fast
    monkeypatch.delenv(FORCE_LIBJQ_ENV)
    assert compile_jq("{ a: .b }").fast


def test_context_is_passed_as_a_variable() -> None:
    program = JqProgram("{ flags: $context.flags, n: .n }")
    assert program.fast and program.uses_context
    assert program.first({"n": 1}, {"flags": ["x"]}) == {"flags": ["x"], "n": 1}


@pytest.mark.parametrize("force", [False, True])
def test_errors_have_the_same_text(force: bool) -> None:
    program = JqProgram(".a.b", force_libjq=force)
    with pytest.raises(JqError) as info:
        program.first({"a": 1})
    assert str(info.value) == 'JQ execution error: Cannot index number with string ("b")'


def test_fallback_reruns_libjq() -> None:
    program = JqProgram('"x" * .n')
    assert program.fast
    assert program.first({"n": 2}) == "xx"
    with pytest.raises(JqError, match="Repeat string result too long"):
        program.first({"n": 1e10})  # the fast path leaves huge repeats to libjq


def test_compile_errors_come_from_libjq() -> None:
    with pytest.raises(JqError, match=r"^JQ compilation error: "):
        JqProgram("{ a: }")


def test_results_never_alias_the_input() -> None:
    state = {"body": {"items": [1, 2]}}
    out = JqProgram(".body").first(state)
    out["items"].append(3)
    assert state == {"body": {"items": [1, 2]}}


def test_all_keeps_every_output() -> None:
    assert JqProgram(".[] | . * 2").all([1, 2.5]) == [2, 5]
    assert JqProgram(".[] | . * 2", force_libjq=True).all([1, 2.5]) == [2, 5]


def test_no_output_is_none() -> None:
    assert JqProgram("empty").first(1) is None
    assert JqProgram(".[] | select(. > 5)").first([1, 2]) is None
