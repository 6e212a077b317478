"""Which top-level keys of its input a jq program can observe.

`input_keys(tree)` answers for the fast-path subset: a set of keys when the program only
ever reads its input through `.key` (or `{key}`), or None when it may observe the input as
a whole (`.`, `.[]`, `keys`, `length`, an assignment, a function call on the input, ...).
The right side of `|` and a `catch` handler run on other values (the left side's outputs,
the error), so they read nothing of the input themselves: a variable is the only way to
reach the input there, and its binding (`X as $v`) is analysed where it is made. Unknown
constructs answer None, so the answer is always safe. The server uses it to build only the
parts of a request a route reads.
"""

from __future__ import annotations

from webpipe.jqfast import nodes as n

# calls whose result never depends on their input (arguments are analysed separately)
_INPUT_FREE_CALLS = frozenset({"empty", "error", "range"})


def input_keys(node: n.Node | None) -> frozenset[str] | None:
    """The input keys `node` reads, or None when it may read the whole input."""
    return _reads(node)


def _union(*parts: frozenset[str] | None) -> frozenset[str] | None:
    out: frozenset[str] = frozenset()
    for part in parts:
        if part is None:
            return None
        out |= part
    return out


def _reads(node: n.Node | None) -> frozenset[str] | None:
    match node:
        case None | n.Literal() | n.Var():
            return frozenset()
        case n.Identity():
            return None
        case n.Index(term=n.Identity(), key=n.Literal(value=str() as key)):
            return frozenset({key})
        case n.Index(term=n.Identity()):
            return None
        case n.Index(term=term, key=key):
            return _union(_reads(term), _reads(key))
        case n.Slice(term=term, start=start, end=end):
            return None if isinstance(term, n.Identity) else _union(
                _reads(term), _reads(start), _reads(end))
        case n.Iterate(term=term):
            return None if isinstance(term, n.Identity) else _reads(term)
        case n.Str(parts=parts):
            return _union(*(_reads(p) for p in parts if not isinstance(p, str)))
        case n.Pipe(left=left):
            return _reads(left)
        case n.Comma(left=a, right=b) | n.And(left=a, right=b) | n.Or(left=a, right=b) \
                | n.Alternative(left=a, right=b) | n.BinOp(left=a, right=b):
            return _union(_reads(a), _reads(b))
        case n.Neg(operand=operand):
            return _reads(operand)
        case n.If(cond=cond, then=then, else_=else_):
            return _union(_reads(cond), _reads(then), _reads(else_))
        case n.Try(body=body):
            return _reads(body)
        case n.Collect(body=body):
            return _reads(body)
        case n.MakeObject(entries=entries):
            return _union(*(_entry_reads(e) for e in entries))
        case n.Bind(source=source, body=body):
            return _union(_reads(source), _reads(body))
        case n.Call(name=name, args=args) if name in _INPUT_FREE_CALLS:
            # bare `error` raises its input; `error(msg)` only its argument
            return None if name == "error" and not args else _union(*(_reads(a) for a in args))
    return None  # assignments, other calls: the whole input may be observed


def _entry_reads(entry: n.ObjectEntry) -> frozenset[str] | None:
    if entry.value is not None:
        return _union(_reads(entry.key), _reads(entry.value))
    match entry.key:  # `{a}` / `{"a"}` read `.a`; `{$x}` reads nothing
        case n.Literal(value=str() as key):
            return frozenset({key})
        case n.Var():
            return frozenset()
    return None
