"""webpipe.wire: JSON from outside, bounded in depth (spec/limits.md `maxJsonDepth`)."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from webpipe.wire import (
    _LONG_DIGITS,
    ORJSON_DEPTH,
    JsonTooDeep,
    JsonTooWide,
    has_long_digits,
    loads_bounded,
    loads_exact_bounded,
)


def nested(depth: int, opener: str = "[", closer: str = "]", core: str = "0") -> str:
    return opener * depth + core + closer * depth


def test_orjson_refuses_exactly_past_its_depth() -> None:
    """`loads_bounded` relies on this bound: an orjson upgrade that moves it fails here."""
    assert orjson.loads(nested(ORJSON_DEPTH)) is not None
    assert orjson.loads(nested(ORJSON_DEPTH, '{"a":', "}")) is not None
    for text in (nested(ORJSON_DEPTH + 1), nested(ORJSON_DEPTH + 1, '{"a":', "}")):
        with pytest.raises(orjson.JSONDecodeError, match=r"^depth limit"):
            orjson.loads(text)


@pytest.mark.parametrize("loads", [loads_bounded, loads_exact_bounded])
@pytest.mark.parametrize(("opener", "closer"), [("[", "]"), ('{"k":', "}"), ('[{"k":', "}]")])
def test_depth_is_exact(loads: object, opener: str, closer: str) -> None:
    read = loads_bounded if loads is loads_bounded else loads_exact_bounded
    step = 2 if opener == '[{"k":' else 1
    for limit in (1, 7, 512):
        fits = nested(limit // step, opener, closer)
        assert read(fits, limit) == json.loads(fits)
        with pytest.raises(JsonTooDeep, match=rf"^JSON nested deeper than {limit} levels$"):
            read(nested(limit // step + 1, opener, closer), limit)
    with pytest.raises(JsonTooDeep):
        read(nested(5000), 512)


def test_bytes_and_text_read_alike() -> None:
    assert loads_bounded(b"[[1], [2]]", 1 + 1) == [[1], [2]]
    assert loads_bounded(b'{"a": "[[[[[["}', 1) == {"a": "[[[[[["}  # strings do not nest
    wide = "[" + ",".join(["[1]"] * 10_000) + "]"
    assert len(loads_bounded(wide.encode(), 2)) == 10_000


def test_malformed_text_keeps_its_own_error_positions() -> None:
    text = "[[1], [2], [3]] x"  # more brackets than the bound, not deeper: wrapped
    with pytest.raises(orjson.JSONDecodeError) as caught:
        loads_bounded(text, 2)
    with pytest.raises(orjson.JSONDecodeError) as plain:
        orjson.loads(text)
    assert str(caught.value) == str(plain.value)


def test_the_json_module_path_is_bounded_too() -> None:
    # a lone surrogate escape sends the text to the json module; huge ints too
    assert loads_exact_bounded('[["\\ud800"]]', 2) == [["\ud800"]]
    assert loads_exact_bounded("[[123456789012345678901234567890]]", 2) == [
        [123456789012345678901234567890]]
    for text in (nested(3, core='"\\ud800"'), nested(3, core="123456789012345678901")):
        with pytest.raises(JsonTooDeep):
            loads_exact_bounded(text, 2)
    with pytest.raises(JsonTooDeep):  # too deep for the json module's own recursion
        loads_exact_bounded(nested(5000, core='"\\ud800"'), 512)


def wide(count: int) -> str:
    return "[" + ",".join(["[]", "{}"] * (count // 2)) + "]"


@pytest.mark.parametrize("loads", [loads_bounded, loads_exact_bounded])
def test_containers_are_counted_before_parsing(loads: object) -> None:
    assert callable(loads)
    assert len(loads(wide(10), 512, 11)) == 10  # 10 inside + the outer array
    with pytest.raises(JsonTooWide, match="more than 10 arrays and objects"):
        loads(wide(10), 512, 10)
    with pytest.raises(JsonTooWide):
        loads(wide(10).encode() if loads is loads_bounded else wide(10), 512, 10)


def test_the_default_container_bound_refuses_two_million_small_arrays() -> None:
    text = wide(2_000_000).encode()
    with pytest.raises(JsonTooWide, match="200000"):
        loads_bounded(text, 512)
    assert len(loads_bounded(wide(1000).encode(), 512)) == 1000


@given(st.lists(st.sampled_from(["0", "7", "12345", "9" * 19, "1" * 20, "x", " ", "é", "٣",
                                 "\ud800", "\U0001F600", "-", "."]), max_size=40)
       | st.text(max_size=60))
def test_long_digits_is_the_regular_expression(parts: list[str] | str) -> None:
    """`has_long_digits` (a byte translation) answers as `[0-9]{20}` does, on runs near 20
    digits, non-ASCII digits (not `[0-9]`), lone surrogates and any text."""
    text = "".join(parts)
    assert has_long_digits(text) == (_LONG_DIGITS.search(text) is not None), text
