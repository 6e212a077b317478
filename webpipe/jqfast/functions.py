"""Value builtins of the subset: `length`, `keys`, `tostring`, `join`, `has`, ...

`VALUE_FUNCTIONS` maps `(name, arity)` to a builder taking the compiled arguments (see
`library.py` for the whole registry). Each function mirrors libjq 1.8.2: C builtins by
their C code and error text, jq-defined ones (`join`, `ltrimstr`, `to_entries`, `abs`, ...)
by the definitions in libjq's `builtin.jq`, including which inner operation raises which
error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cmp_to_key
from typing import Any

from webpipe.jqfast.budget import spend, spend_text
from webpipe.jqfast.code import Code, map_one, unary
from webpipe.jqfast.errors import Fallback, JqFastError
from webpipe.jqfast.numeric import (
    FLOAT_TYPES,
    MAX_SAFE,
    NUMBER_TYPES,
    CFloat,
    LFloat,
    abs_literal,
    computed,
    literal_value,
    to_double,
)
from webpipe.jqfast.ops import add, index, iterate, negate, slice_, split, subtract
from webpipe.jqfast.values import (
    compare,
    describe,
    dump,
    equal,
    kind,
    pair_error,
    tostring,
    truthy,
    type_error,
)

Builder = Callable[[tuple[Code, ...]], Code]
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL_NUMBER = re.compile(r"[+-]?(?:s?nan[0-9]*|inf|infinity)", re.IGNORECASE)
_ASCII_DOWN = {c: c + 32 for c in range(65, 91)}
_ASCII_UP = {c: c - 32 for c in range(97, 123)}


def length(v: Any) -> Any:
    t = type(v)
    if t is str or t is list or t is dict:
        return len(v)
    if v is None:
        return 0
    if t is int or t is float or t is LFloat:
        return abs(v) if t is int else abs_literal(v)  # decNumber abs keeps the literal
    if t is CFloat:
        return computed(abs(v))
    raise type_error(v, "has no length")


def keys_unsorted(v: Any) -> list[Any]:
    if type(v) is dict:
        spend(len(v))
        return list(v)
    if type(v) is list:
        spend(len(v))
        return list(range(len(v)))
    raise type_error(v, "has no keys")


def keys(v: Any) -> list[Any]:
    if type(v) is dict:
        spend(len(v) * max(1, len(v).bit_length()))
        return sorted(v)
    return keys_unsorted(v)


def has(v: Any, k: Any) -> bool:
    if v is None:
        return False
    if type(v) is dict and type(k) is str:
        return k in v
    if type(v) is list and type(k) in NUMBER_TYPES:
        d = to_double(k)
        return -1e18 < d < 1e18 and 0 <= int(d) < len(v)
    raise JqFastError(f"Cannot check whether {kind(v)} has a {kind(k)} key")


def tonumber(v: Any) -> Any:
    if type(v) in NUMBER_TYPES:
        return v
    if type(v) is not str:
        raise type_error(v, "cannot be parsed as a number")
    if _SPECIAL_NUMBER.fullmatch(v):
        raise Fallback
    if not _NUMBER_TEXT.fullmatch(v):
        raise type_error(v, "cannot be parsed as a number")
    value = literal_value(v)
    if value is None:
        raise Fallback
    return value


def _ascii_case(table: dict[int, int]) -> Callable[[Any], Any]:
    def convert(v: Any) -> Any:
        if type(v) is not str:
            raise JqFastError("explode input must be a string")
        spend_text(len(v))
        return v.translate(table)

    return convert


ascii_downcase, ascii_upcase = _ascii_case(_ASCII_DOWN), _ascii_case(_ASCII_UP)


def to_entries(v: Any) -> list[dict[str, Any]]:
    return [{"key": k, "value": index(v, k)} for k in keys_unsorted(v)]


def from_entries(v: Any) -> dict[str, Any]:
    """`map({(.key // .Key // .name // .Name): (if has("value") ...)}) | add // {}`."""
    merged: dict[str, Any] = {}
    for entry in [_entry(e) for e in iterate(v)]:
        merged.update(entry)
    return merged


def _entry(e: Any) -> dict[str, Any]:
    key = None
    for name in ("key", "Key", "name", "Name"):
        key = index(e, name)
        if truthy(key):
            break
    value = index(e, "value") if has(e, "value") else index(e, "Value")
    if type(key) is not str:
        raise JqFastError(f"Cannot use {describe(key)} as object key")
    return {key: value}


def add_all(v: Any) -> Any:
    if type(v) is list:
        spend(len(v))
    if type(v) is list and len(v) > 1 and _plain_numbers(v):
        # `reduce .[] as $x (null; . + $x)` on plain numbers: the same double additions in
        # the same order, without a computed value per step (computed() keeps the double)
        acc = float(v[0])
        for x in v[1:]:
            acc += x
        return computed(acc)
    total = None
    for x in iterate(v):
        total = add(total, x)
    return total


def _plain_numbers(items: list[Any]) -> bool:
    """Floats (literal or computed) and ints within ±2**53: Python's double arithmetic on
    them is jq's (a non-finite total falls back through computed())."""
    for x in items:
        t = type(x)
        if t not in FLOAT_TYPES and not (t is int and -MAX_SAFE <= x <= MAX_SAFE):
            return False
    return True


def sort(v: Any) -> list[Any]:
    if type(v) is not list:
        raise type_error(v, "cannot be sorted, as it is not an array")
    spend(len(v) * max(1, len(v).bit_length()))
    return sorted(v, key=cmp_to_key(compare))


def unique(v: Any) -> list[Any]:
    out: list[Any] = []
    for x in sort(v):
        if not out or not equal(out[-1], x):
            out.append(x)
    return out


def minmax(v: Any, key_list: Any, is_min: bool) -> Any:
    """libjq's `minmax_by`: first minimum, last maximum."""
    if type(v) is not list or type(key_list) is not list:
        raise pair_error(v, key_list, "cannot be iterated over")
    if not v:
        return None
    spend(len(v))
    best, best_key = v[0], key_list[0]
    for item, item_key in zip(v[1:], key_list[1:], strict=True):
        if (compare(item_key, best_key) < 0) == is_min:
            best, best_key = item, item_key
    return best


def reverse(v: Any) -> Any:
    """`[.[length - 1 - range(0; length)]]`."""
    n = length(v)
    if type(v) is list:
        spend(len(v))
        return v[::-1]
    if n == 0 or n == 0.0:
        return []
    return [index(v, subtract(subtract(n, 1), 0))]  # raises libjq's index error


def abs_(v: Any) -> Any:
    return negate(v) if compare(v, 0) < 0 else v


def error(v: Any) -> Any:
    raise JqFastError(v)


def contains(a: Any, b: Any) -> bool:
    if _kind_id(a) != _kind_id(b):
        raise pair_error(a, b, "cannot have their containment checked")
    return _contains(a, b)


def _kind_id(v: Any) -> str:
    return f"{kind(v)}:{v}" if type(v) is bool else kind(v)


def _contains(a: Any, b: Any) -> bool:
    if _kind_id(a) != _kind_id(b):
        return False
    if type(a) is dict:
        return all(k in a and _contains(a[k], x) for k, x in b.items())
    if type(a) is list:
        spend(len(a) * len(b))
        return all(any(_contains(x, y) for x in a) for y in b)
    if type(a) is str:
        spend_text(len(a))
        return b in a
    return equal(a, b)


def _strings_only(name: str, fn: Callable[[str, str], Any]) -> Callable[[Any, Any], Any]:
    def check(v: Any, x: Any) -> Any:
        if type(v) is not str or type(x) is not str:
            raise JqFastError(name)
        return fn(v, x)

    return check


startswith = _strings_only("startswith() requires string inputs", str.startswith)
endswith = _strings_only("endswith() requires string inputs", str.endswith)
split_ = _strings_only("split input and separator must be strings", split)


def ltrimstr(v: Any, x: Any) -> Any:
    return slice_(v, len(x), None) if startswith(v, x) else v


def rtrimstr(v: Any, x: Any) -> Any:
    return slice_(v, None, len(v) - len(x)) if endswith(v, x) else v


def join(v: Any, sep: Any) -> Any:
    """`reduce .[] as $i (null; (if .==null then "" else .+$x end) + ($i | ...)) // ""`."""
    acc = None
    for item in iterate(v):
        acc = add("" if acc is None else add(acc, sep), _join_piece(item))
    return "" if acc is None or acc is False else acc


def _join_piece(item: Any) -> Any:
    if type(item) is bool or type(item) in NUMBER_TYPES:
        return tostring(item)
    return item if truthy(item) else ""


def _arg1(fn: Callable[[Any, Any], Any]) -> Builder:
    return lambda args: map_one(args[0], fn)


def _value(fn: Callable[[Any], Any]) -> Builder:
    return lambda args: unary(fn)


VALUE_FUNCTIONS: dict[tuple[str, int], Builder] = {
    ("length", 0): _value(length),
    ("not", 0): _value(lambda v: not truthy(v)),
    ("type", 0): _value(kind),
    ("keys", 0): _value(keys),
    ("keys_unsorted", 0): _value(keys_unsorted),
    ("tostring", 0): _value(tostring),
    ("tojson", 0): _value(dump),
    ("tonumber", 0): _value(tonumber),
    ("ascii_downcase", 0): _value(ascii_downcase),
    ("ascii_upcase", 0): _value(ascii_upcase),
    ("to_entries", 0): _value(to_entries),
    ("from_entries", 0): _value(from_entries),
    ("add", 0): _value(add_all),
    ("sort", 0): _value(sort),
    ("unique", 0): _value(unique),
    ("min", 0): _value(lambda v: minmax(v, v, True)),
    ("max", 0): _value(lambda v: minmax(v, v, False)),
    ("reverse", 0): _value(reverse),
    ("first", 0): _value(lambda v: index(v, 0)),
    ("last", 0): _value(lambda v: index(v, -1)),
    ("abs", 0): _value(abs_),
    ("error", 0): _value(error),
    ("error", 1): _arg1(lambda v, msg: error(msg)),
    ("has", 1): _arg1(has),
    ("contains", 1): _arg1(contains),
    ("startswith", 1): _arg1(startswith),
    ("endswith", 1): _arg1(endswith),
    ("split", 1): _arg1(split_),
    ("join", 1): _arg1(join),
    ("ltrimstr", 1): _arg1(ltrimstr),
    ("rtrimstr", 1): _arg1(rtrimstr),
    ("trimstr", 1): _arg1(lambda v, x: rtrimstr(ltrimstr(v, x), x)),
    ("nth", 1): _arg1(lambda v, n: index(v, n)),
}


