"""Compiled jq expressions: a generator function plus, when possible, a single-value function.

Every expression compiles to `Code(gen, one)`. `gen(input, env)` yields the outputs lazily,
exactly in jq's order (so errors surface after the outputs that precede them). `one` is set
when the expression always produces exactly one output or raises, so the common route
programs (`{ hello: .params.w }`) run as plain nested calls without generator frames.
`env` maps variable names to values (`$context`, and `as` bindings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from webpipe.jqfast.errors import Fallback

Env = dict[str, Any]
Gen = Callable[[Any, Env], Iterator[Any]]
One = Callable[[Any, Env], Any]


@dataclass(frozen=True, slots=True)
class Code:
    gen: Gen
    one: One | None = None


def single(one: One) -> Code:
    """Code for an expression with exactly one output."""

    def gen(v: Any, env: Env) -> Iterator[Any]:
        yield one(v, env)

    return Code(gen, one)


def constant(value: Any) -> Code:
    return single(lambda v, env: value)


def lookup(env: Env, name: str) -> Any:
    try:
        return env[name]
    except KeyError:
        raise Fallback from None


def outputs_of(code: Code, v: Any, env: Env) -> list[Any]:
    """All outputs, collected (what `[e]` and closure arguments such as `map(f)` need)."""
    if code.one is not None:
        return [code.one(v, env)]
    return list(code.gen(v, env))


def first_output(code: Code, v: Any, env: Env) -> tuple[bool, Any]:
    if code.one is not None:
        return True, code.one(v, env)
    for out in code.gen(v, env):
        return True, out
    return False, None


def each_value(code: Code, v: Any, env: Env) -> Iterator[Any]:
    """The outputs of an argument evaluated against the input (a `$param`)."""
    if code.one is not None:
        return iter((code.one(v, env),))
    return code.gen(v, env)


def map_one(code: Code, fn: Callable[[Any, Any], Any]) -> Code:
    """`fn(input, x)` for each output x of `code` (one output per argument value)."""
    one = code.one
    if one is not None:
        return single(lambda v, env: fn(v, one(v, env)))

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for x in code.gen(v, env):
            yield fn(v, x)

    return Code(gen)


def unary(fn: Callable[[Any], Any]) -> Code:
    return single(lambda v, env: fn(v))
