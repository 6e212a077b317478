"""The value operations behind jq's syntax: indexing, slicing, iteration, arithmetic.

Each mirrors one libjq 1.8 routine (`jv_get`, `parse_slice`, `binop_plus`, ...) including
its error text; cases whose libjq behaviour is not reproduced here (array-of-indices keys,
huge string repeats, non-finite numbers) raise `Fallback`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from webpipe.jqfast.budget import spend, spend_text
from webpipe.jqfast.errors import Fallback, JqFastError
from webpipe.jqfast.numeric import (
    FLOAT_TYPES,
    MAX_SAFE,
    NUMBER_TYPES,
    CFloat,
    LFloat,
    computed,
    negate_literal,
    to_double,
)
from webpipe.jqfast.values import compare, describe, equal, kind, pair_error, trunc, type_error

_INTMAX = 2**63 - 1
_REPEAT_LIMIT = 10_000_000


def index(t: Any, k: Any) -> Any:
    """`t[k]` for a string or number key (`jv_get`)."""
    tt, tk = type(t), type(k)
    if tt is dict and tk is str:
        return t.get(k)
    if tt is list and tk in NUMBER_TYPES:
        return _array_get(t, k)
    if t is None and (tk is str or tk in NUMBER_TYPES or tk is dict):
        return None
    if (tt is list and tk in (list, dict)) or (tt is str and tk is dict):
        raise Fallback  # indices / slice by object: not modelled
    raise JqFastError(f"Cannot index {kind(t)} with {describe(k)}")


def _array_get(t: list[Any], k: Any) -> Any:
    d = to_double(k)
    if d != d or not -1e18 < d < 1e18:
        return None
    i = int(d)
    if i < 0:
        i += len(t)
    return t[i] if 0 <= i < len(t) else None


def slice_(t: Any, start: Any, end: Any) -> Any:
    """`t[start:end]` on an array, string or null (`parse_slice`)."""
    if t is None:
        return None
    if type(t) not in (list, str):
        raise JqFastError(
            f"Cannot index {kind(t)} with object ({trunc({'start': start, 'end': end})})")
    length = len(t)
    if start is None:
        start = 0
    if end is None:
        end = length
    if type(start) not in NUMBER_TYPES or type(end) not in NUMBER_TYPES:
        raise JqFastError("Array/string slice indices must be integers")
    lo, hi = _slice_bounds(to_double(start), to_double(end), length)
    if type(t) is str:
        spend_text(hi - lo)
    else:
        spend(hi - lo)
    return t[lo:hi]


def _slice_bounds(dstart: float, dend: float, length: int) -> tuple[int, int]:
    if dstart != dstart or dend != dend:
        raise Fallback
    if dstart < 0:
        dstart += length
    if dend < 0:
        dend += length
    dstart = min(max(dstart, 0.0), float(length))
    dend = max(min(dend, float(length)), dstart)
    lo = int(dstart)
    hi = int(dend) + 1 if dend > int(dend) else int(dend)
    return lo, hi


def iterate(t: Any) -> Iterator[Any]:
    """`.[]`: array elements or object values."""
    if type(t) is list:
        spend(len(t))
        return iter(t)
    if type(t) is dict:
        spend(len(t))
        return iter(t.values())
    raise JqFastError(f"Cannot iterate over {describe(t)}")



def negate(x: Any) -> Any:
    """Unary minus: literals stay literals (decNumber minus), computed stay computed."""
    t = type(x)
    if t is int:
        return -x
    if t is float or t is LFloat:
        return negate_literal(x)
    if t is CFloat:
        return computed(-x)
    raise type_error(x, "cannot be negated")


def _both_numbers(a: Any, b: Any) -> bool:
    return type(a) in NUMBER_TYPES and type(b) in NUMBER_TYPES


def _exact(a: Any, b: Any) -> bool:
    """Both numbers whose double arithmetic Python reproduces as is: a float (literal or
    computed) is its own double and an int within ±2**53 converts exactly (numeric.to_double;
    a non-finite result still falls back through computed()). Generated code has this lane
    inline (emitters._arithmetic); the closures call it here."""
    ta, tb = type(a), type(b)
    return ((ta in FLOAT_TYPES or (ta is int and -MAX_SAFE <= a <= MAX_SAFE))
            and (tb in FLOAT_TYPES or (tb is int and -MAX_SAFE <= b <= MAX_SAFE)))


def add(a: Any, b: Any) -> Any:
    if type(a) is str and type(b) is str:  # before the number tests: as common, and cheaper
        spend_text(len(a) + len(b))
        return a + b
    if _exact(a, b):  # the common case without to_double calls: same double, same result
        return computed(float(a) + b)
    if type(a) in NUMBER_TYPES and type(b) in NUMBER_TYPES:
        return computed(to_double(a) + to_double(b))
    if a is None:
        return b
    if b is None:
        return a
    ta = type(a)
    if ta is type(b):
        if ta is str:
            spend_text(len(a) + len(b))
            return a + b
        if ta is list:
            spend(len(a) + len(b))
            return a + b
        if ta is dict:
            merged = dict(a)
            merged.update(b)
            return merged
    raise pair_error(a, b, "cannot be added")


def subtract(a: Any, b: Any) -> Any:
    if _exact(a, b):
        return computed(float(a) - b)
    if type(a) in NUMBER_TYPES and type(b) in NUMBER_TYPES:
        return computed(to_double(a) - to_double(b))
    if type(a) is list and type(b) is list:
        spend(len(a) * len(b))
        return [x for x in a if not any(equal(x, y) for y in b)]
    raise pair_error(a, b, "cannot be subtracted")


def multiply(a: Any, b: Any) -> Any:
    if _exact(a, b):
        return computed(float(a) * b)
    if type(a) in NUMBER_TYPES and type(b) in NUMBER_TYPES:
        return computed(to_double(a) * to_double(b))
    if type(a) is str and type(b) in NUMBER_TYPES:
        return _repeat(a, b)
    if type(b) is str and type(a) in NUMBER_TYPES:
        return _repeat(b, a)
    if type(a) is dict and type(b) is dict:
        return deep_merge(a, b)
    raise pair_error(a, b, "cannot be multiplied")


def _repeat(s: str, n: Any) -> str | None:
    d = to_double(n)
    if d < 0:
        return None
    if d * max(len(s), 1) > _REPEAT_LIMIT:
        raise Fallback
    spend_text(int(d) * len(s))
    return s * int(d)


def deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Object `*`: recursive merge, right side wins."""
    spend(len(a) + len(b))
    merged = dict(a)
    for key, value in b.items():
        old = merged.get(key)
        if type(old) is dict and type(value) is dict:
            merged[key] = deep_merge(old, value)
        else:
            merged[key] = value
    return merged


def divide(a: Any, b: Any) -> Any:
    if _both_numbers(a, b):
        divisor = to_double(b)
        if divisor == 0.0:
            raise pair_error(a, b, "cannot be divided because the divisor is zero")
        return computed(to_double(a) / divisor)
    if type(a) is str and type(b) is str:
        return split(a, b)
    raise pair_error(a, b, "cannot be divided")


def split(s: str, sep: str) -> list[str]:
    """String split as libjq does it (empty input gives `[]`, empty separator splits chars)."""
    if not s:
        return []
    spend_text(len(s))
    if not sep:
        return list(s)
    return s.split(sep)


def modulo(a: Any, b: Any) -> Any:
    if not _both_numbers(a, b):
        raise pair_error(a, b, "cannot be divided (remainder)")
    x, y = _to_intmax(to_double(a)), _to_intmax(to_double(b))
    if y == 0:
        raise pair_error(a, b, "cannot be divided (remainder) because the divisor is zero")
    if y == -1:
        return computed(0.0)
    r = abs(x) % abs(y)
    return computed(float(-r if x < 0 else r))


def _to_intmax(d: float) -> int:
    if d != d:
        raise Fallback
    if d >= 2.0**63:
        return _INTMAX
    if d < -(2.0**63):
        return -_INTMAX - 1
    return int(d)


def _comparison(test: Callable[[int], bool]) -> Callable[[Any, Any], bool]:
    return lambda a, b: test(compare(a, b))


BINARY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": add, "-": subtract, "*": multiply, "/": divide, "%": modulo,
    "==": equal, "!=": lambda a, b: not equal(a, b),
    "<": _comparison(lambda r: r < 0), "<=": _comparison(lambda r: r <= 0),
    ">": _comparison(lambda r: r > 0), ">=": _comparison(lambda r: r >= 0),
}


def getpath(v: Any, path: tuple[str | int, ...]) -> Any:
    """Follow a constant path as `path(...)` does: through null, else by indexing (so a
    wrong container raises libjq's index error)."""
    for key in path:
        if v is None:
            return None
        if type(v) is list and type(key) is int:
            v = v[key] if key < len(v) else None
        else:
            v = index(v, key)
    return v


def setpath(v: Any, path: tuple[str | int, ...], new: Any) -> Any:
    """A copy of `v` with `new` at `path`, creating objects/arrays through null."""
    if not path:
        return new
    key, rest = path[0], path[1:]
    if v is None:
        v = {} if type(key) is str else []
    if type(v) is dict and type(key) is str:
        spend(len(v))
        out = dict(v)
        out[key] = setpath(v.get(key), rest, new)
        return out
    if type(v) is list and type(key) is int and 0 <= key < 1_000_000:
        spend(max(len(v), key))
        out_list = list(v)
        if key >= len(out_list):
            out_list.extend([None] * (key + 1 - len(out_list)))
        out_list[key] = setpath(out_list[key], rest, new)
        return out_list
    raise Fallback

