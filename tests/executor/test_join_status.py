"""A join's `.asyncStatus` (`fanin.status_of`, one look at each value) against the formula
it replaced (`_kind` and `is_failure` per value), on task values of every shape: plain
values, `{"error": …}` failures, error envelopes (timeout, capacityError, others), values
shaped like both, and values that only look close (a non-list `errors`, a non-str type)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from webpipe.executor.fanin import status_of
from webpipe.executor.retry import is_failure
from webpipe.executor.state import error_type


def status_before(results: dict[str, Any]) -> dict[str, Any]:
    def kind(value: Any) -> str | None:
        if isinstance(value, dict) and value.get("type") == "timeout":
            return "timeout"
        return error_type(value)

    timed_out = [name for name, value in results.items() if kind(value) == "timeout"]
    failed = [name for name, value in results.items()
              if is_failure(value) and name not in timed_out]
    return {"complete": not failed and not timed_out, "failed": failed,
            "timedOut": timed_out}


TYPES = st.sampled_from(["timeout", "capacityError", "asyncError", "httpError", 7, None])
ERRORS = st.one_of(
    st.lists(st.fixed_dictionaries({}, optional={"type": TYPES, "message": st.text()}),
             max_size=2),
    st.lists(st.integers(), max_size=1), st.text(max_size=3), st.none())
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.fixed_dictionaries({}, optional={"type": TYPES, "error": st.text(max_size=3),
                                        "errors": ERRORS, "n": st.integers()}))


@given(st.dictionaries(st.text(min_size=1, max_size=3), VALUES, max_size=8))
def test_status_is_what_the_formula_it_replaced_gives(results: dict[str, Any]) -> None:
    assert status_of(results) == status_before(results)


def test_each_kind_of_value_lands_where_the_spec_says() -> None:
    results = {"ok": {"n": 1}, "cut": {"error": "timeout after 5 ms", "type": "timeout"},
               "env": {"errors": [{"type": "timeout"}]}, "bad": {"error": "boom"},
               "rej": {"errors": [{"type": "capacityError"}]}, "plain": [1]}
    assert status_of(results) == status_before(results) == {
        "complete": False, "failed": ["bad", "rej"], "timedOut": ["cut", "env"]}
