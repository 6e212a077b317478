"""Compile the syntax tree into `Code` closures, one function per node kind.

Output order follows libjq's bytecode: for a binary operator and string interpolation the
right operand is the outer loop; for indexing the key is evaluated before the term; object
construction nests its entries left to right (key, then value); `and`/`or`/`if` evaluate the
condition first. Errors are raised lazily, when the output that would follow them is
requested, so `first()` of `1, error("x")` is 1, as in jq.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, assert_never

from webpipe.jqfast import nodes as n
from webpipe.jqfast.assign import compile_assign
from webpipe.jqfast.budget import spend
from webpipe.jqfast.code import Code, Env, One, constant, lookup, map_one, outputs_of, single
from webpipe.jqfast.errors import JqFastError, Unsupported
from webpipe.jqfast.library import compile_call
from webpipe.jqfast.ops import BINARY_OPS, index, iterate, negate, slice_
from webpipe.jqfast.values import describe, truthy

_IDENTITY = single(lambda v, env: v)


def compile_node(node: n.Node) -> Code:
    """The closures for one expression (raises `Unsupported` for unknown builtins)."""
    match node:
        case n.Identity():
            return _IDENTITY
        case n.Literal(value=value):
            return constant(value)
        case n.Str(parts=parts):
            return _compile_str(parts)
        case n.Index():
            return _compile_index(node)
        case n.Slice():
            return _compile_slice(node)
        case n.Iterate(term=term, opt=opt):
            return _compile_iterate(compile_node(term), opt)
        case n.Pipe(left=left, right=right):
            return _compile_pipe(compile_node(left), compile_node(right))
        case n.Comma(left=left, right=right):
            return _compile_comma(compile_node(left), compile_node(right))
        case n.Neg(operand=operand):
            return map_one(compile_node(operand), lambda v, x: negate(x))
        case n.BinOp(op=op, left=left, right=right):
            return _compile_binop(op, compile_node(left), compile_node(right), left)
        case n.And() | n.Or():
            return _compile_logic(node)
        case n.Alternative(left=left, right=right):
            return _compile_alternative(compile_node(left), compile_node(right))
        case n.Assign():
            return compile_assign(node, compile_node)
        case n.If():
            return _compile_if(node)
        case n.Try(body=body, catch=catch):
            return _compile_try(compile_node(body), None if catch is None else compile_node(catch))
        case n.Collect(body=body):
            return _compile_collect(body)
        case n.MakeObject(entries=entries):
            return _compile_object(entries)
        case n.Var(name=name):
            return single(lambda v, env: lookup(env, name))
        case n.Bind(source=source, name=name, body=body):
            return _compile_bind(compile_node(source), name, compile_node(body))
        case n.Call(name=name, args=args):
            return compile_call(name, tuple(compile_node(arg) for arg in args))
        case _:
            assert_never(node)


def _compile_str(parts: tuple[str | n.Node, ...]) -> Code:
    """`"a\\(x)b"` is `("a" + (x | tostring)) + "b"`: the last part is the outer loop."""
    chain: n.Node = n.Literal("")
    for part in parts:
        piece = n.Literal(part) if isinstance(part, str) else n.Pipe(part, n.Call("tostring"))
        chain = n.BinOp("+", chain, piece)
    return compile_node(chain)


def _compile_index(node: n.Index) -> Code:
    term, key = compile_node(node.term), compile_node(node.key)
    if node.opt:
        return _product(key, term, _index_opt)
    if isinstance(node.key, n.Literal):
        return _index_constant(term, node.key.value)
    k1, t1 = key.one, term.one
    if k1 is not None and t1 is not None:
        return single(lambda v, env: _index_after_key(k1(v, env), t1, v, env))
    return _product(key, term, lambda k, t: (index(t, k),))


def _index_after_key(k: Any, term_one: Any, v: Any, env: Env) -> Any:
    return index(term_one(v, env), k)  # the key is evaluated before the term, as in libjq


def _index_constant(term: Code, name: Any) -> Code:
    """`.name` / `.[0]`: the hot path of every route program."""
    term_one = term.one
    if term is _IDENTITY and type(name) is str:
        return single(lambda v, env: v.get(name) if type(v) is dict else index(v, name))
    if term_one is not None:
        return single(lambda v, env: index(term_one(v, env), name))

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for t in term.gen(v, env):
            yield index(t, name)

    return Code(gen)


def _index_opt(k: Any, t: Any) -> tuple[Any, ...]:
    try:
        return (index(t, k),)
    except JqFastError:
        return ()


def _product(outer: Code, inner: Code, fn: Any) -> Code:
    """For each output a of `outer`, then b of `inner`: the outputs of `fn(a, b)`."""
    if outer.one is not None and inner.one is not None:
        o1, i1 = outer.one, inner.one

        def gen_single(v: Any, env: Env) -> Iterator[Any]:
            a = o1(v, env)
            yield from fn(a, i1(v, env))

        return Code(gen_single)

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for a in outer.gen(v, env):
            for b in inner.gen(v, env):
                yield from fn(a, b)

    return Code(gen)


def _compile_slice(node: n.Slice) -> Code:
    term = compile_node(node.term)
    start = constant(None) if node.start is None else compile_node(node.start)
    end = constant(None) if node.end is None else compile_node(node.end)
    bounds = _product(start, end, lambda a, b: ((a, b),))

    def sliced(bound: tuple[Any, Any], t: Any) -> tuple[Any, ...]:
        try:
            return (slice_(t, *bound),)
        except JqFastError:
            if node.opt:
                return ()
            raise

    return _product(bounds, term, sliced)


def _compile_iterate(term: Code, opt: bool) -> Code:
    term_one = term.one
    if term_one is not None and not opt:
        return Code(lambda v, env: iterate(term_one(v, env)))

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for t in term.gen(v, env):
            try:
                items = iterate(t)
            except JqFastError:
                if opt:
                    continue
                raise
            yield from items

    return Code(gen)


def _compile_pipe(left: Code, right: Code) -> Code:
    l1, r1 = left.one, right.one
    if l1 is not None and r1 is not None:
        return single(lambda v, env: r1(l1(v, env), env))
    right_gen = right.gen
    if l1 is not None:
        return Code(lambda v, env: right_gen(l1(v, env), env))
    if r1 is not None:
        return Code(lambda v, env: (r1(x, env) for x in left.gen(v, env)))

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for x in left.gen(v, env):
            yield from right_gen(x, env)

    return Code(gen)


def _compile_comma(left: Code, right: Code) -> Code:
    def gen(v: Any, env: Env) -> Iterator[Any]:
        spend(1)  # `,` products multiply outputs without any loop of their own
        yield from left.gen(v, env)
        yield from right.gen(v, env)

    return Code(gen)


def _compile_binop(op: str, left: Code, right: Code, left_node: n.Node) -> Code:
    fn = BINARY_OPS[op]
    l1, r1 = left.one, right.one
    if isinstance(left_node, n.Literal) and r1 is not None:  # `"item " + tostring`
        value = left_node.value
        return single(lambda v, env: fn(value, r1(v, env)))
    if l1 is not None and r1 is not None:

        def one(v: Any, env: Env) -> Any:
            y = r1(v, env)
            return fn(l1(v, env), y)

        return single(one)
    return _product(right, left, lambda y, x: (fn(x, y),))


def _compile_logic(node: n.And | n.Or) -> Code:
    left, right = compile_node(node.left), compile_node(node.right)
    decided = isinstance(node, n.Or)  # the left value that settles the answer

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for x in left.gen(v, env):
            if truthy(x) == decided:
                yield decided
            else:
                for y in right.gen(v, env):
                    yield truthy(y)

    l1, r1 = left.one, right.one
    if l1 is not None and r1 is not None:
        return Code(gen, lambda v, env: decided if truthy(l1(v, env)) == decided
                    else truthy(r1(v, env)))
    return Code(gen)


def _compile_alternative(left: Code, right: Code) -> Code:
    """`a // b`: the truthy outputs of a, else the outputs of b (libjq 1.8 keeps a's errors)."""

    def gen(v: Any, env: Env) -> Iterator[Any]:
        found = False
        for x in left.gen(v, env):
            if truthy(x):
                found = True
                yield x
        if not found:
            yield from right.gen(v, env)

    l1, r1 = left.one, right.one
    if l1 is not None and r1 is not None:

        def one(v: Any, env: Env) -> Any:
            x = l1(v, env)
            return x if truthy(x) else r1(v, env)

        return Code(gen, one)
    return Code(gen)


def _compile_if(node: n.If) -> Code:
    cond, then = compile_node(node.cond), compile_node(node.then)
    other = _IDENTITY if node.else_ is None else compile_node(node.else_)
    c1, t1, o1 = cond.one, then.one, other.one
    if c1 is not None and t1 is not None and o1 is not None:
        return single(lambda v, env: t1(v, env) if truthy(c1(v, env)) else o1(v, env))

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for c in cond.gen(v, env):
            yield from (then if truthy(c) else other).gen(v, env)

    return Code(gen)


def _compile_try(body: Code, catch: Code | None) -> Code:
    def gen(v: Any, env: Env) -> Iterator[Any]:
        try:
            yield from body.gen(v, env)
        except JqFastError as err:
            if catch is not None:
                yield from catch.gen(err.value, env)

    return Code(gen)


def _compile_collect(body: n.Node | None) -> Code:
    if body is None:
        return single(lambda v, env: [])
    if isinstance(body, n.Pipe):  # `[gen | f]`: one list comprehension, no generator per item
        left, right = compile_node(body.left), compile_node(body.right)
        left_gen, r1 = left.gen, right.one
        if left.one is None and r1 is not None:
            return single(lambda v, env: [r1(x, env) for x in left_gen(v, env)])
        code = _compile_pipe(left, right)
    else:
        code = compile_node(body)
    return single(lambda v, env: outputs_of(code, v, env))


def _compile_object(entries: tuple[n.ObjectEntry, ...]) -> Code:
    for entry in entries:
        if _is_constant(entry.key) and not (isinstance(entry.key, n.Literal)
                                            and type(entry.key.value) is str):
            raise Unsupported("constant object key that is not a string (libjq rejects it)")
    pairs = [(compile_node(e.key), None if e.value is None else compile_node(e.value))
             for e in entries]
    names = [e.key.value for e in entries if isinstance(e.key, n.Literal)]
    if len(names) == len(entries) and all(type(name) is str for name in names) and all(
            c is None or c.one is not None for _, c in pairs):
        return single(_constant_keys_builder(names, [c for _, c in pairs]))
    if all(k.one is not None and (c is None or c.one is not None) for k, c in pairs):
        return single(_object_builder(pairs))

    def build(v: Any, env: Env, i: int, acc: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if i == len(pairs):
            yield acc
            return
        key_code, value_code = pairs[i]
        for k in key_code.gen(v, env):
            values = (index(v, k),) if value_code is None else value_code.gen(v, env)
            for value in values:
                yield from build(v, env, i + 1, {**acc, object_key(k): value})

    return Code(lambda v, env: build(v, env, 0, {}))


def _is_constant(node: n.Node) -> bool:
    """Whether libjq folds `node` to a constant (it checks such object keys at compile time)."""
    match node:
        case n.Literal():
            return True
        case n.Collect(body=n.Comma(left=left, right=right)):  # `[1, 2]` folds too
            return _is_constant(n.Collect(left)) and _is_constant(n.Collect(right))
        case n.Collect(body=body):
            return body is None or _is_constant(body)
        case n.MakeObject(entries=entries):
            return all(_is_constant(e.key) and e.value is not None and _is_constant(e.value)
                       for e in entries)
        case n.BinOp(left=left, right=right):
            return _is_constant(left) and _is_constant(right)
        case n.Neg(operand=operand):
            return _is_constant(operand)
        case _:
            return False


def _constant_keys_builder(names: list[str], values: list[Code | None]) -> One:
    """`{a: f, b}`: string keys known at compile time, one value each (the common case)."""
    items: list[tuple[str, One]] = []
    for name, code in zip(names, values, strict=True):
        value_one = (_index_constant(_IDENTITY, name) if code is None else code).one
        assert value_one is not None
        items.append((name, value_one))
    if len(items) == 1:  # small objects as one dict display (same evaluation order)
        ((n0, f0),) = items
        return lambda v, env: {n0: f0(v, env)}
    if len(items) == 2:
        (n0, f0), (n1, f1) = items
        return lambda v, env: {n0: f0(v, env), n1: f1(v, env)}
    return lambda v, env: {name: fn(v, env) for name, fn in items}


def _object_builder(pairs: list[tuple[Code, Code | None]]) -> Any:
    steps = [(k.one, None if c is None else c.one) for k, c in pairs]

    def one(v: Any, env: Env) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_one, value_one in steps:
            k = key_one(v, env)  # type: ignore[misc]
            value = index(v, k) if value_one is None else value_one(v, env)
            out[object_key(k)] = value
        return out

    return one


def object_key(k: Any) -> str:
    if type(k) is not str:
        raise JqFastError(f"Cannot use {describe(k)} as object key")
    return str(k)


def _compile_bind(source: Code, name: str, body: Code) -> Code:
    s1, b1 = source.one, body.one
    if s1 is not None and b1 is not None:
        return single(lambda v, env: b1(v, {**env, name: s1(v, env)}))

    def gen(v: Any, env: Env) -> Iterator[Any]:
        for x in source.gen(v, env):
            yield from body.gen(v, {**env, name: x})

    return Code(gen)
