"""jq values as Python JSON values: kinds, order, JSON text, error text, output conversion.

Values are what `json.loads` produces (dict with str keys, list, str, int, float, bool, None)
plus `CFloat` for computed doubles. Anything else (tuples, NaN, non-str keys) makes the fast
path raise `Fallback` where it is touched. `dump` is libjq's compact `jv_dump_string`;
`trunc` is the 25-byte excerpt libjq puts in error messages; `to_output` makes a fresh copy
with numbers converted the way the `jq` binding converts them, so results never alias input.
"""

from __future__ import annotations

import re
from typing import Any

from webpipe.jqfast.budget import spend, spend_text
from webpipe.jqfast.errors import Fallback, JqFastError
from webpipe.jqfast.numeric import (
    MAX_SAFE,
    NUMBER_TYPES,
    CFloat,
    LFloat,
    compare_numbers,
    format_number,
    to_output_number,
)

KIND_NAMES: dict[type, str] = {
    type(None): "null", bool: "boolean", int: "number", float: "number", CFloat: "number",
    LFloat: "number", str: "string", list: "array", dict: "object",
}
# libjq's kind order: null < false < true < numbers < strings < arrays < objects
_RANKS: dict[type, int] = {
    type(None): 0, int: 3, float: 3, CFloat: 3, LFloat: 3, str: 4, list: 5, dict: 6,
}
_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update({0x7F: "\\u007f", 0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0C: "\\f",
                 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})
_SURROGATE = re.compile("[\ud800-\udfff]")
_TRUNC_LIMIT = 29  # libjq's error excerpts: whole dump if it fits, else 25 bytes + "..."
_CLOSERS = {"str": '"', "list": "]", "dict": "}"}
_TRUNC_KEEP = 25


def kind(v: Any) -> str:
    """jq's type name (`type`), or Fallback for values JSON cannot hold."""
    try:
        return KIND_NAMES[type(v)]
    except KeyError:
        raise Fallback from None


def truthy(v: Any) -> bool:
    """Everything but `false` and `null` is true."""
    return v is not None and v is not False



def _rank(v: Any) -> int:
    if type(v) is bool:
        return 2 if v else 1
    try:
        return _RANKS[type(v)]
    except KeyError:
        raise Fallback from None


def compare(a: Any, b: Any) -> int:
    """libjq's total order (`jv_cmp`): -1, 0 or 1."""
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 3:
        return compare_numbers(a, b)
    if ra == 4:
        return int(a > b) - int(a < b)
    if ra == 5:
        return _compare_arrays(a, b)
    if ra == 6:
        return _compare_objects(a, b)
    return 0


def _compare_arrays(a: list[Any], b: list[Any]) -> int:
    spend(min(len(a), len(b)))
    for x, y in zip(a, b, strict=False):
        r = compare(x, y)
        if r:
            return r
    return (len(a) > len(b)) - (len(a) < len(b))


def _compare_objects(a: dict[str, Any], b: dict[str, Any]) -> int:
    spend(len(a) + len(b))
    keys_a, keys_b = sorted(a), sorted(b)
    r = _compare_arrays(list(keys_a), list(keys_b))
    if r:
        return r
    for key in keys_a:
        r = compare(a[key], b[key])
        if r:
            return r
    return 0


def equal(a: Any, b: Any) -> bool:
    """`a == b` in jq (numbers by value: `1 == 1.0`)."""
    if type(a) is str and type(b) is str:
        return a == b
    return compare(a, b) == 0


def dump_string(s: str) -> str:
    if type(s) is not str:
        raise Fallback
    spend_text(len(s))
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    return '"' + s.translate(_ESCAPES) + '"'


def dump(v: Any) -> str:
    """Compact JSON text as libjq prints it (`tojson`, `tostring` of non-strings)."""
    t = type(v)
    if t is str:
        return dump_string(v)
    if t is dict:
        spend(len(v))
        return "{" + ",".join(f"{dump_string(k)}:{dump(x)}" for k, x in v.items()) + "}"
    if t is list:
        spend(len(v))
        return "[" + ",".join(dump(x) for x in v) + "]"
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t in NUMBER_TYPES:
        return format_number(v)
    raise Fallback


def tostring(v: Any) -> str:
    t = type(v)
    if t is str:
        return v  # type: ignore[no-any-return]
    return format_number(v) if t is int else dump(v)  # what dump does for an int


def trunc(v: Any) -> str:
    """The excerpt of `v` that libjq 1.8 shows inside error messages: the dump if it fits in
    29 bytes, else its first 25 bytes (whole characters), `...` and the closing delimiter."""
    text = dump(v)
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= _TRUNC_LIMIT:
        return text
    closer = _CLOSERS.get(type(v).__name__, "")
    return data[:_TRUNC_KEEP].decode("utf-8", "ignore") + "..." + closer


def describe(v: Any) -> str:
    """`number (1)`, `string ("a")`: a value as libjq names it in errors."""
    return f"{kind(v)} ({trunc(v)})"


def type_error(v: Any, what: str) -> JqFastError:
    return JqFastError(f"{describe(v)} {what}")


def pair_error(a: Any, b: Any, what: str) -> JqFastError:
    return JqFastError(f"{describe(a)} and {describe(b)} {what}")


def to_output(v: Any) -> Any:
    """A fresh copy of `v` as the `jq` binding would return it."""
    t = type(v)
    if t is str:
        if not v.isascii() and _SURROGATE.search(v):
            raise Fallback
        return v
    if t is dict:
        return _object_output(v)
    # ASCII text and integers within ±2**53 (the commonest members) are returned inline,
    # without a call: to_output would return them as they are
    if t is list:
        spend(len(v))
        return [x if ((tx := type(x)) is str and x.isascii())
                or (tx is int and -MAX_SAFE <= x <= MAX_SAFE)
                else _object_output(x) if tx is dict else to_output(x) for x in v]
    if v is None or t is bool:
        return v
    if t in NUMBER_TYPES:
        return to_output_number(v)
    raise Fallback


def _object_output(v: dict[Any, Any]) -> dict[str, Any]:
    """An object's copy: keys are returned as they are (or raise), so a C-level copy with
    the values that convert replaced keeps every key in its place."""
    spend(len(v))
    out = v.copy()
    for k, x in v.items():
        if type(k) is not str or not k.isascii():
            _output_key(k)
        if not (((tx := type(x)) is str and x.isascii())
                or (tx is int and -MAX_SAFE <= x <= MAX_SAFE)):
            out[k] = to_output(x)
    return out


def _output_key(k: Any) -> str:
    if type(k) is not str:
        raise Fallback
    return to_output(k)  # type: ignore[no-any-return]
