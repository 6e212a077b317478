"""webpipe.templating.values: serde_json/Ryu number text, truthiness, JSON equality/order."""

from __future__ import annotations

from typing import Any

import pytest

from webpipe.templating.values import (
    compare_json,
    escape_html,
    format_float,
    format_number,
    is_truthy,
    json_eq,
    parse_json_number,
)


@pytest.mark.parametrize(("value", "text"), [
    (1.0, "1.0"), (-2.5, "-2.5"), (0.0, "0.0"), (-0.0, "-0.0"), (100.0, "100.0"),
    (1e15, "1000000000000000.0"), (1e16, "1e16"), (1.5e16, "1.5e16"), (1e-5, "0.00001"),
    (1.25e-6, "1.25e-6"), (123456.789, "123456.789"), (0.1 + 0.2, "0.30000000000000004"),
    (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e308"),
])
def test_format_float_matches_ryu(value: float, text: str) -> None:
    assert format_float(value) == text


def test_integers_print_verbatim_until_they_leave_u64() -> None:
    assert format_number(-(2**63)) == "-9223372036854775808"
    assert format_number(2**64 - 1) == "18446744073709551615"
    assert format_number(2**64) == "1.8446744073709552e19"


def test_escape_html_leaves_other_characters() -> None:
    assert escape_html("a/b\\c{}é") == "a/b\\c{}é"


@pytest.mark.parametrize(("value", "include_zero", "truthy"), [
    (0, True, True), (0.0, True, True), (float("nan"), True, False), (5e-324, False, False),
    (1e-300, False, True), (float("inf"), False, False),
])
def test_number_truthiness(value: float, include_zero: bool, truthy: bool) -> None:
    assert is_truthy(value, include_zero) is truthy


@pytest.mark.parametrize(("a", "b", "equal"), [
    (1, 1, True), (1, 1.0, False), (True, 1, False), (None, None, True), ("", None, False),
    ({"a": [1]}, {"a": [1]}, True), ({"a": 1}, {"a": 1, "b": 2}, False), ([1], [1.0], False),
])
def test_json_eq(a: Any, b: Any, equal: bool) -> None:
    assert json_eq(a, b) is equal


@pytest.mark.parametrize(("a", "b", "order"), [
    (1, 2.5, -1), (3, 3.0, 0), ("b", "a", 1), ("Z", "a", -1), (False, True, -1), (2, "10", -1),
    ("10", 2, 1), (1, "1e1", -1), (1, " 1", None), (1, "x", None), (None, None, None),
    ([1], [1], None), (True, 1, None),
])
def test_compare_json(a: Any, b: Any, order: int | None) -> None:
    assert compare_json(a, b) == order


@pytest.mark.parametrize(("text", "number"), [
    ("35", 35), ("-1.00", -1.0), ("1e3", 1000.0), ("7 \n", 7), ("01", None), ("+1", None),
    ("1.", None), ("", None),
])
def test_parse_json_number(text: str, number: int | float | None) -> None:
    parsed = parse_json_number(text)
    assert parsed == number and type(parsed) is type(number)
