"""The emitters of generated jq code, one per node kind (see `codegen.py` for the scheme).

Each `emit_X(em, node, v, vk, env, k)` writes the statements that compute the outputs of
`node` on the input held in the Python expression `v` (whose shape is `vk`, see
`outform.py`) with the variables dict `env`, calling `k(expr, kind)` where each output is
ready. Each mirrors the matching closure in `compile.py`, `functions.py` or `generators.py`
call for call: the right operand of a binary operator is the outer loop, an index key is
evaluated before its term, object entries nest left to right (key, value, key check), `,`
charges one budget unit. Where one would have to copy a continuation into two branches
(`if`, `//`, `and`/`or` with several outputs), the node runs through its closure instead.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from webpipe.jqfast import functions as fn
from webpipe.jqfast import nodes as n
from webpipe.jqfast import outform
from webpipe.jqfast.assign import constant_path
from webpipe.jqfast.budget import STRING_BYTES_PER_UNIT
from webpipe.jqfast.numeric import MAX_SAFE
from webpipe.jqfast.values import dump, tostring
from webpipe.jqfast.values import kind as kind_of

if TYPE_CHECKING:
    from webpipe.jqfast.codegen import Cont, Emitter

Kind = outform.Kind
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_BINARY = {"+": "add({x}, {y})", "-": "subtract({x}, {y})", "*": "multiply({x}, {y})",
           "/": "divide({x}, {y})", "%": "modulo({x}, {y})", "==": "equal({x}, {y})",
           "!=": "not equal({x}, {y})", "<": "compare({x}, {y}) < 0",
           "<=": "compare({x}, {y}) <= 0", ">": "compare({x}, {y}) > 0",
           ">=": "compare({x}, {y}) >= 0"}
# builtins that are one call on the input (`_value` in functions.py) or on the input and
# each output of their argument (`_arg1`)
VALUE_CALLS: dict[str, Callable[[Any], Any]] = {
    "length": fn.length, "type": kind_of, "keys": fn.keys, "keys_unsorted": fn.keys_unsorted,
    "tostring": tostring, "tojson": dump, "tonumber": fn.tonumber, "add": fn.add_all,
    "sort": fn.sort, "unique": fn.unique, "reverse": fn.reverse,
    "to_entries": fn.to_entries, "from_entries": fn.from_entries, "abs": fn.abs_,
    "ascii_downcase": fn.ascii_downcase, "ascii_upcase": fn.ascii_upcase, "error": fn.error,
}
ARG_CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "has": fn.has, "contains": fn.contains, "startswith": fn.startswith,
    "endswith": fn.endswith, "split": fn.split_, "join": fn.join, "ltrimstr": fn.ltrimstr,
    "rtrimstr": fn.rtrimstr, "error": lambda v, msg: fn.error(msg),
}


def truthy(x: str) -> str:
    """The test `values.truthy` makes, inline (`x` is a local name)."""
    return f"({x} is not None and {x} is not False)"


def emit_identity(em: Emitter, node: n.Identity, v: str, vk: Kind, env: str,
                  k: Cont) -> None:
    k(v, outform.loose(vk))


def emit_literal(em: Emitter, node: n.Literal, v: str, vk: Kind, env: str, k: Cont) -> None:
    k(em.const(node.value), outform.literal_kind(node.value))


def emit_var(em: Emitter, node: n.Var, v: str, vk: Kind, env: str, k: Cont) -> None:
    bound = em.variables.get(node.name)
    if bound is not None:
        k(bound[0], outform.loose(bound[1]))
    else:
        k(em.assign(f"lookup({env}, {node.name!r})"), None)


def emit_str(em: Emitter, node: n.Str, v: str, vk: Kind, env: str, k: Cont) -> None:
    chain: n.Node = n.Literal("")  # the closures' own desugaring (compile._compile_str)
    for part in node.parts:
        piece = n.Literal(part) if isinstance(part, str) else n.Pipe(part, n.Call("tostring"))
        chain = n.BinOp("+", chain, piece)
    em.emit(chain, v, vk, env, k)


def emit_index(em: Emitter, node: n.Index, v: str, vk: Kind, env: str, k: Cont) -> None:
    if isinstance(node.key, n.Literal) and not node.opt:
        name = node.key.value
        if type(name) is str:  # index() on a dict with a str key is dict.get
            get = "{t}.get({key}) if type({t}) is dict else index({t}, {key})"
        else:
            get = "index({t}, {key})"
        key = em.const(name)

        def on_term(t: str, tk: Kind) -> None:
            t = em.name_of(t)
            k(em.read(t, key, get.format(t=t, key=key)), None)

        em.emit(node.term, v, vk, env, on_term)
        return

    def on_key(key: str, key_kind: Kind) -> None:
        def on_term(t: str, tk: Kind) -> None:
            if not node.opt:
                k(em.assign(f"index({t}, {key})"), None)
                return
            out = em.fresh()
            with em.block("try:"):
                em.line(f"{out} = index({t}, {key})")
            with em.block("except JqFastError:"):
                em.line("pass")
            with em.block("else:"):
                k(out, None)

        em.emit(node.term, v, vk, env, on_term)

    em.emit(node.key, v, vk, env, on_key)


def emit_iterate(em: Emitter, node: n.Iterate, v: str, vk: Kind, env: str,
                 k: Cont) -> None:
    def on_term(t: str, tk: Kind) -> None:
        items = f"iterate({t})"
        if node.opt:
            items = em.fresh("it")
            with em.block("try:"):
                em.line(f"{items} = iterate({t})")
            with em.block("except JqFastError:"):
                em.line(f"{items} = ()")
        item = em.fresh("x")
        with em.block(f"for {item} in {items}:"):
            k(item, None)

    em.emit(node.term, v, vk, env, on_term)


def emit_pipe(em: Emitter, node: n.Pipe, v: str, vk: Kind, env: str, k: Cont) -> None:
    em.emit(node.left, v, vk, env, lambda x, xk: em.emit(node.right, x, xk, env, k))


def emit_comma(em: Emitter, node: n.Comma, v: str, vk: Kind, env: str, k: Cont) -> None:
    em.line("spend(1)")  # as the closure: `,` products multiply outputs without a loop
    em.emit(node.left, v, vk, env, k)
    em.emit(node.right, v, vk, env, k)


def emit_neg(em: Emitter, node: n.Neg, v: str, vk: Kind, env: str, k: Cont) -> None:
    em.emit(node.operand, v, vk, env, lambda x, xk: k(em.assign(f"negate({x})"), None))


def emit_binop(em: Emitter, node: n.BinOp, v: str, vk: Kind, env: str, k: Cont) -> None:
    template = _BINARY[node.op]

    def on_right(y: str, yk: Kind) -> None:
        def on_left(x: str, xk: Kind) -> None:
            if node.op == "+" and xk == yk == outform.STR:
                # ops.add's first branch, inline: both are known to be strings. spend(0)
                # changes nothing: from begin() on, the count left is never below 0
                # between calls (the one call that leaves it there raises OverBudget)
                units = em.assign(f"({_length(x)} + {_length(y)}) // {STRING_BYTES_PER_UNIT}")
                with em.block(f"if {units}:"):
                    em.line(f"spend({units})")
                k(em.assign(f"{x} + {y}"), outform.STR)
                return
            if node.op in ("+", "-", "*"):
                k(_arithmetic(em, node.op, x, y, template), None)
                return
            result = outform.ATOM if node.op in _COMPARISONS else None
            k(em.assign(template.format(x=x, y=y)), result)

        em.emit(node.left, v, vk, env, on_left)

    em.emit(node.right, v, vk, env, on_right)


def _arithmetic(em: Emitter, op: str, x: str, y: str, template: str) -> str:
    """`x op y` with the exact number lane of `ops.add`/`subtract`/`multiply` inline (the
    same test, double operation and `computed` branch, in the same order; the lane and
    their other branches exclude each other), else the call."""
    tests = [test for test in (_exact_test(em, x), _exact_test(em, y)) if test != "True"]
    if "False" in tests:
        return em.assign(template.format(x=x, y=y))
    out, d = em.fresh(), em.fresh("d")
    with em.block(f"if {' and '.join(tests)}:" if tests else "if True:"):
        em.line(f"{d} = float({x}) {op} {y}")
        em.line(f"{out} = ((int({d}) if {d}.is_integer() and {d} != 0.0 else CFloat({d}))"
                f" if {-MAX_SAFE} < {d} < {MAX_SAFE} else computed({d}))")
    with em.block("else:"):
        em.line(f"{out} = {template.format(x=x, y=y)}")
    return out


def _exact_test(em: Emitter, expr: str) -> str:
    """The test that `expr` is a float or an int within ±2**53 ("True"/"False" when known
    from a literal written in the source)."""
    if expr[0] in "'\"" or expr in ("None", "True", "False"):
        return "False"
    if expr.lstrip("-").isdigit():
        return "True" if abs(int(expr)) <= MAX_SAFE else "False"
    return (f"((type({expr}) is int and {-MAX_SAFE} <= {expr} <= {MAX_SAFE})"
            f" or type({expr}) in FLOAT_TYPES)")


def _length(expr: str) -> str:
    """`len(expr)`, folded for a string literal (`em.const` writes them as reprs)."""
    return str(len(ast.literal_eval(expr))) if expr[0] in "'\"" else f"len({expr})"


def emit_logic(em: Emitter, node: n.And | n.Or, v: str, vk: Kind, env: str,
               k: Cont) -> None:
    if not em.single(node.right):
        em.closure(node, v, env, k)
        return
    decided = isinstance(node, n.Or)  # the left value that settles the answer

    def on_left(x: str, xk: Kind) -> None:
        out = em.fresh()
        x = em.name_of(x)
        test = truthy(x) if decided else f"not {truthy(x)}"
        with em.block(f"if {test}:"):
            em.line(f"{out} = {decided}")
        with em.block("else:"):
            em.emit(node.right, v, vk, env,
                    lambda y, yk: em.line(f"{out} = {truthy(em.name_of(y))}"))
        k(out, outform.ATOM)

    em.emit(node.left, v, vk, env, on_left)


def emit_alternative(em: Emitter, node: n.Alternative, v: str, vk: Kind, env: str,
                     k: Cont) -> None:
    if not (em.single(node.left) and em.single(node.right)):
        em.closure(node, v, env, k)
        return

    def on_left(x: str, xk: Kind) -> None:
        out = em.assign(x)
        kinds = [xk]

        def on_right(y: str, yk: Kind) -> None:
            kinds.append(yk)
            em.line(f"{out} = {y}")

        with em.block(f"if not {truthy(out)}:"):
            em.emit(node.right, v, vk, env, on_right)
        k(out, outform.join(kinds))

    em.emit(node.left, v, vk, env, on_left)


def emit_if(em: Emitter, node: n.If, v: str, vk: Kind, env: str, k: Cont) -> None:
    other = n.Identity() if node.else_ is None else node.else_
    if not (em.single(node.then) and em.single(other)):
        em.closure(node, v, env, k)
        return

    def on_cond(c: str, ck: Kind) -> None:
        out = em.fresh()
        kinds: list[Kind] = []

        def to_out(x: str, xk: Kind) -> None:
            kinds.append(xk)
            em.line(f"{out} = {x}")

        with em.block(f"if {truthy(em.name_of(c))}:"):
            em.emit(node.then, v, vk, env, to_out)
        with em.block("else:"):
            em.emit(other, v, vk, env, to_out)
        k(out, outform.join(kinds))

    em.emit(node.cond, v, vk, env, on_cond)


def emit_collect(em: Emitter, node: n.Collect, v: str, vk: Kind, env: str,
                 k: Cont) -> None:
    acc = em.assign("[]", "acc")
    if node.body is None:
        k(acc, outform.list_kind([]))
        return
    kinds = _append_outputs(em, acc, node.body, v, vk, env)
    k(acc, outform.list_kind(kinds))


def _append_outputs(em: Emitter, acc: str, body: n.Node, v: str, vk: Kind,
                    env: str) -> list[Kind]:
    """Append each output of `body` to the list `acc`; the kinds appended."""
    append = em.assign(f"{acc}.append", "ap")
    kinds: list[Kind] = []

    def on_item(x: str, xk: Kind) -> None:
        kinds.append(xk)
        em.line(f"{append}({x})")

    em.emit(body, v, vk, env, on_item)
    return kinds


def emit_object(em: Emitter, node: n.MakeObject, v: str, vk: Kind, env: str,
                k: Cont) -> None:
    entries = node.entries
    constant = all(isinstance(e.key, n.Literal) and em.single(e.value) for e in entries)

    def entry(i: int, built: list[tuple[str, str, Any, Kind]]) -> None:
        if i == len(entries):
            display = ", ".join(f"{key}: {value}" for key, value, _, _ in built)
            shape = [(name, kind, value) for _, value, name, kind in built]
            k(em.assign(f"{{{display}}}", "o"),
              outform.dict_kind(shape) if constant else None)
            return
        e = entries[i]

        def on_key(key: str, key_kind: Kind) -> None:
            def on_value(value: str, value_kind: Kind) -> None:
                if isinstance(e.key, n.Literal):
                    entry(i + 1, [*built, (key, value, e.key.value, value_kind)])
                else:  # the key's check comes after its value, as in the closures
                    checked = em.assign(f"object_key({key})")
                    entry(i + 1, [*built, (checked, value, None, None)])

            if e.value is None:
                v_name = em.name_of(v)
                get = (f"{v_name}.get({key}) if type({v_name}) is dict else "
                       f"index({v_name}, {key})"
                       if isinstance(e.key, n.Literal) else f"index({v}, {key})")
                on_value(em.assign(get), None)
            else:
                em.emit(e.value, v, vk, env, on_value)

        em.emit(e.key, v, vk, env, on_key)

    entry(0, [])


def emit_bind(em: Emitter, node: n.Bind, v: str, vk: Kind, env: str, k: Cont) -> None:
    def on_source(x: str, xk: Kind) -> None:
        inner = em.fresh("env")
        at = len(em.lines)
        em.line(f"{inner} = {{**{env}, {node.name!r}: {x}}}")
        saved = em.variables.get(node.name)
        em.variables[node.name] = (x, xk)
        em.emit(node.body, v, vk, inner, k)
        if saved is None:
            del em.variables[node.name]
        else:
            em.variables[node.name] = saved
        used = re.compile(rf"\b{inner}\b")
        if not any(used.search(text) for text in em.lines[at + 1:]):
            del em.lines[at]  # nothing in the body reads the dict: the local is enough

    em.emit(node.source, v, vk, env, on_source)


def emit_call(em: Emitter, node: n.Call, v: str, vk: Kind, env: str, k: Cont) -> None:
    name, args = node.name, node.args
    if name == "tostring" and not args and vk in (outform.INT, outform.STR):
        # values.tostring of a str is itself, of an int within ±2**53 its digits
        k(v if vk == outform.STR else em.assign(f"str({v})"), outform.STR)
    elif not args and name in VALUE_CALLS:
        result = outform.STR if name == "type" else None
        k(em.assign(f"{em.register(VALUE_CALLS[name], name)}({v})"), result)
    elif not args and name in ("not", "empty"):
        if name == "not":
            k(em.assign(f"not {truthy(em.name_of(v))}"), outform.ATOM)
    elif len(args) == 1 and name in ARG_CALLS:
        call = em.register(ARG_CALLS[name], name)
        em.emit(args[0], v, vk, env, lambda x, xk: k(em.assign(f"{call}({v}, {x})"), None))
    elif len(args) == 1 and name in ("map", "select"):
        (emit_map if name == "map" else emit_select)(em, args[0], v, vk, env, k)
    elif name == "range" and len(args) in (1, 2):
        emit_range(em, args, v, vk, env, k)
    else:
        em.closure(node, v, env, k)


def emit_map(em: Emitter, f: n.Node, v: str, vk: Kind, env: str, k: Cont) -> None:
    """`map(f)`: `[.[] | f]`, as generators._map."""
    acc = em.assign("[]", "acc")
    item = em.fresh("x")
    append = em.assign(f"{acc}.append", "ap")
    kinds: list[Kind] = []

    def on_item(y: str, yk: Kind) -> None:
        kinds.append(yk)
        em.line(f"{append}({y})")

    with em.block(f"for {item} in iterate({v}):"):
        em.emit(f, item, None, env, on_item)
    k(acc, outform.list_kind(kinds))


def emit_select(em: Emitter, cond: n.Node, v: str, vk: Kind, env: str, k: Cont) -> None:
    def on_cond(c: str, ck: Kind) -> None:
        with em.block(f"if {truthy(em.name_of(c))}:"):
            k(v, outform.loose(vk))

    em.emit(cond, v, vk, env, on_cond)


def emit_range(em: Emitter, args: tuple[n.Node, ...], v: str, vk: Kind, env: str,
               k: Cont) -> None:
    """`range(n)` / `range(a; b)`, as generators.range_from (the first argument is the
    outer loop); literal integer bounds from 0 to 2**53 count with Python's range."""
    bounds = [n.Literal(0), args[0]] if len(args) == 1 else list(args)
    values = [b.value if isinstance(b, n.Literal) else None for b in bounds]
    if all(type(x) is int and 0 <= x <= MAX_SAFE for x in values):
        item = em.fresh("i")
        with em.block(f"for {item} in range({values[0]}, {values[1]}):"):
            em.line("spend(1)")
            k(item, outform.INT)
        return

    def on_start(a: str, ak: Kind) -> None:
        def on_upto(b: str, bk: Kind) -> None:
            item = em.fresh("i")
            with em.block(f"for {item} in range_from({a}, {b}):"):
                k(item, None)

        em.emit(bounds[1], v, vk, env, on_upto)

    em.emit(bounds[0], v, vk, env, on_start)


def emit_assign(em: Emitter, node: n.Assign, v: str, vk: Kind, env: str, k: Cont) -> None:
    """As assign.compile_assign: the right side is the outer loop, then `getpath`, the
    update and `setpath`; `|=` takes the update's only output (several: its closure)."""
    path = repr(constant_path(node.path))
    v = em.name_of(v)
    if node.op == "|":
        if not em.single(node.rhs):
            em.closure(node, v, env, k)
            return
        old = em.assign(f"getpath({v}, {path})")
        em.emit(node.rhs, old, None, env,
                lambda y, yk: k(em.assign(f"setpath({v}, {path}, {y})"), None))
        return

    def on_value(x: str, xk: Kind) -> None:
        old = em.assign(f"getpath({v}, {path})")
        if node.op == "":
            new = x
        elif node.op == "//":
            new = em.assign(f"{old} if {truthy(old)} else {x}")
        else:
            new = em.assign(_BINARY[node.op].format(x=old, y=x))
        k(em.assign(f"setpath({v}, {path}, {new})"), None)

    em.emit(node.rhs, v, vk, env, on_value)


HANDLERS: dict[type, Callable[..., None]] = {
    n.Identity: emit_identity, n.Literal: emit_literal, n.Var: emit_var, n.Str: emit_str,
    n.Index: emit_index, n.Iterate: emit_iterate, n.Pipe: emit_pipe, n.Comma: emit_comma,
    n.Neg: emit_neg, n.BinOp: emit_binop, n.And: emit_logic, n.Or: emit_logic,
    n.Alternative: emit_alternative, n.If: emit_if, n.Collect: emit_collect,
    n.MakeObject: emit_object, n.Bind: emit_bind, n.Call: emit_call, n.Assign: emit_assign,
}
