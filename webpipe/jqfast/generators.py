"""Builtins that take closures or produce several (or no) outputs: `map`, `select`, `range`,
`any`/`all`, `first(f)`, `limit`, `sort_by` and friends, `with_entries`, type selectors.

Each follows its libjq 1.8.2 definition: `map(f)` is `[.[] | f]`; `sort_by(f)` is
`_sort_by_impl(map([f]))` (so the input is iterated, and only then checked to be an array);
`any(g; c)` is `isempty(g | c or empty) | not`, which stops at the first true condition;
`range` counts with computed doubles from the (literal) start; `$param` arguments are the
outer loop, first parameter outermost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cmp_to_key
from typing import Any

from webpipe.jqfast.budget import spend
from webpipe.jqfast.code import Code, Env, each_value, first_output, outputs_of, single
from webpipe.jqfast.errors import Fallback, JqFastError
from webpipe.jqfast.functions import Builder, contains, from_entries, has, minmax, to_entries
from webpipe.jqfast.numeric import MAX_SAFE, NUMBER_TYPES, computed, to_double
from webpipe.jqfast.ops import add, iterate
from webpipe.jqfast.values import compare, kind, pair_error, truthy

_EMPTY = Code(lambda v, env: iter(()))


def _map(args: tuple[Code, ...]) -> Code:
    (f,) = args
    if f.one is not None:
        f1 = f.one
        return single(lambda v, env: [f1(x, env) for x in iterate(v)])
    return single(lambda v, env: [y for x in iterate(v) for y in f.gen(x, env)])


def _select(args: tuple[Code, ...]) -> Code:
    (cond,) = args

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for c in each_value(cond, v, env):
            if truthy(c):
                yield v

    return Code(gen)


def _type_selector(*names: str) -> Builder:
    return lambda args: Code(lambda v, env: iter((v,) if kind(v) in names else ()))


def range_from(start: Any, upto: Any) -> Iterator[Any]:
    if type(start) not in NUMBER_TYPES or type(upto) not in NUMBER_TYPES:
        raise JqFastError("Range bounds must be numeric")
    if type(start) is int and type(upto) is int and start >= 0 and upto <= MAX_SAFE:
        # the loop below yields exactly these: from a non-negative start, every computed
        # step is a non-zero integer under 2**53, which `computed` returns as an int
        for i in range(start, upto):
            spend(1)
            yield i
        return
    current, limit = start, to_double(upto)
    while to_double(current) < limit:
        spend(1)
        yield current
        current = computed(to_double(current) + 1.0)


def _range1(args: tuple[Code, ...]) -> Code:
    (upto,) = args

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for n in each_value(upto, v, env):
            yield from range_from(0, n)

    return Code(gen)


def _range2(args: tuple[Code, ...]) -> Code:
    start, upto = args

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for a in each_value(start, v, env):
            for b in each_value(upto, v, env):
                yield from range_from(a, b)

    return Code(gen)


def _limit(args: tuple[Code, ...]) -> Code:
    count, body = args

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for n in each_value(count, v, env):
            if type(n) not in NUMBER_TYPES:
                raise Fallback
            remaining = to_double(n)
            if remaining < 0:
                raise JqFastError("limit doesn't support negative count")
            if remaining == 0:
                continue
            for item in body.gen(v, env):
                remaining -= 1
                yield item
                if remaining <= 0:
                    break

    return Code(gen)


def _first(args: tuple[Code, ...]) -> Code:
    (body,) = args

    def gen(v: Any, env: Env) -> Iterator[Any]:
        found, value = first_output(body, v, env)
        if found:
            yield value

    return Code(gen)


def _isempty(args: tuple[Code, ...]) -> Code:
    (body,) = args
    return single(lambda v, env: not first_output(body, v, env)[0])


def _quantifier(want: bool) -> Callable[[Code, Code], Code]:
    """`any` (want=True) / `all` (want=False): stop at the first condition equal to want."""

    def build(generator: Code, condition: Code) -> Code:
        def one(v: Any, env: Env) -> bool:
            for x in generator.gen(v, env):
                for c in each_value(condition, x, env):
                    if truthy(c) == want:
                        return want
            return not want

        return single(one)

    return build


_ANY, _ALL = _quantifier(True), _quantifier(False)
_EACH = Code(lambda v, env: iterate(v))
_DOT = single(lambda v, env: v)


def _add1(args: tuple[Code, ...]) -> Code:
    (body,) = args

    def one(v: Any, env: Env) -> Any:
        total = None
        for x in body.gen(v, env):
            total = add(total, x)
        return total

    return single(one)


def _keyed(args: tuple[Code, ...], finish: Callable[[Any, list[Any]], Any]) -> Code:
    """`_X_by_impl(map([f]))`: the keys are computed first, then `finish(input, keys)`."""
    (f,) = args
    return single(lambda v, env: finish(v, [outputs_of(f, x, env) for x in iterate(v)]))


def _sorted_pairs(v: Any, keys: list[Any]) -> list[tuple[Any, Any]]:
    if type(v) is not list:
        raise pair_error(v, keys, "cannot be sorted, as they are not both arrays")
    pairs = list(zip(keys, v, strict=True))
    spend(len(pairs) * max(1, len(pairs).bit_length()))
    return sorted(pairs, key=cmp_to_key(_compare_first))


def _compare_first(a: tuple[Any, Any], b: tuple[Any, Any]) -> int:
    return compare(a[0], b[0])


def _groups(v: Any, keys: list[Any]) -> list[list[Any]]:
    groups: list[list[Any]] = []
    last: list[Any] = []
    for key, item in _sorted_pairs(v, keys):
        if groups and compare(key, last) == 0:
            groups[-1].append(item)
        else:
            groups.append([item])
        last = key
    return groups


def _with_entries(args: tuple[Code, ...]) -> Code:
    (f,) = args
    return single(lambda v, env: from_entries(
        [y for x in to_entries(v) for y in outputs_of(f, x, env)]))


def _reverse_arg(fn: Callable[[Any, Any], Any]) -> Builder:
    """`in(xs)` / `inside(xs)`: `. as $x | xs | fn(., $x)`."""

    def build(args: tuple[Code, ...]) -> Code:
        (xs,) = args

        def gen(v: Any, env: Env) -> Iterator[Any]:
            for container in each_value(xs, v, env):
                yield fn(container, v)

        return Code(gen)

    return build


GENERATOR_FUNCTIONS: dict[tuple[str, int], Builder] = {
    ("empty", 0): lambda args: _EMPTY,
    ("map", 1): _map,
    ("select", 1): _select,
    ("range", 1): _range1,
    ("range", 2): _range2,
    ("limit", 2): _limit,
    ("first", 1): _first,
    ("isempty", 1): _isempty,
    ("any", 0): lambda args: _ANY(_EACH, _DOT),
    ("all", 0): lambda args: _ALL(_EACH, _DOT),
    ("any", 1): lambda args: _ANY(_EACH, args[0]),
    ("all", 1): lambda args: _ALL(_EACH, args[0]),
    ("any", 2): lambda args: _ANY(args[0], args[1]),
    ("all", 2): lambda args: _ALL(args[0], args[1]),
    ("add", 1): _add1,
    ("sort_by", 1): lambda args: _keyed(args, lambda v, k: [x for _, x in _sorted_pairs(v, k)]),
    ("group_by", 1): lambda args: _keyed(args, _groups),
    ("unique_by", 1): lambda args: _keyed(args, lambda v, k: [g[0] for g in _groups(v, k)]),
    ("min_by", 1): lambda args: _keyed(args, lambda v, k: minmax(v, k, True)),
    ("max_by", 1): lambda args: _keyed(args, lambda v, k: minmax(v, k, False)),
    ("with_entries", 1): _with_entries,
    ("in", 1): _reverse_arg(has),
    ("inside", 1): _reverse_arg(contains),
    ("values", 0): _type_selector("boolean", "number", "string", "array", "object"),
    ("nulls", 0): _type_selector("null"),
    ("booleans", 0): _type_selector("boolean"),
    ("numbers", 0): _type_selector("number"),
    ("strings", 0): _type_selector("string"),
    ("arrays", 0): _type_selector("array"),
    ("objects", 0): _type_selector("object"),
    ("iterables", 0): _type_selector("array", "object"),
    ("scalars", 0): _type_selector("null", "boolean", "number", "string"),
}


