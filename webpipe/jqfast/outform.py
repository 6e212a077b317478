"""What generated code knows about a value's shape, and the output copy it can skip.

`values.to_output` copies every result so it never aliases the input and converts numbers
the way the `jq` binding does. Generated code (`codegen.py`) tracks, per expression, a
*kind* that proves the copy would change nothing: `INT` (a Python int within ±2**53), `STR`
(a str without lone surrogates), `ATOM` (None or a bool), a fresh `("dict", ((key, kind),
...))` built by an object display with distinct constant keys, or a fresh `("list", kind)`
built by a collect whose every element has that one kind (`EMPTY` when nothing was
appended). `None` means unknown: the copy runs. A fresh value read back through `.`, a
variable or `select` is unknown again (it could appear twice in the result, where the copy
would have made two objects). Skipping the copy keeps its budget charges: `charge_lines`
writes the same `spend` calls, in the same order, that `to_output` would make.
"""

from __future__ import annotations

from typing import Any

from webpipe.jqfast.numeric import MAX_SAFE

INT, STR, ATOM, EMPTY = "int", "str", "atom", "empty"
SCALARS = frozenset({INT, STR, ATOM})
# charging a list of lists of ... nests one Python `for` per level, and Python refuses
# more than 20 nested blocks: deeper values are copied (to_output charges the same)
MAX_CHARGE_DEPTH = 8
Kind = Any  # str | tuple[str, Any] | None: see the module docstring


def ready(kind: Kind) -> bool:
    """Whether a value of this kind is already what `to_output` would return."""
    if kind in SCALARS:
        return True
    if type(kind) is not tuple:
        return False
    return kind[0] == "list" or all(ready(item) for _, item in kind[1])


def loose(kind: Kind) -> Kind:
    """The kind of a value read back (`.`, `$x`, `select`): scalars stay, fresh is lost."""
    return kind if kind in SCALARS else None


def join(kinds: list[Kind]) -> Kind:
    """The kind of a value that is any one of `kinds`."""
    first = kinds[0] if kinds else None
    return first if all(k == first for k in kinds) else None


def list_kind(kinds: list[Kind]) -> Kind:
    """A fresh list from a collect: ready when all its items have one ready kind."""
    if not kinds:
        return ("list", EMPTY)
    item = join(kinds)
    return ("list", item) if ready(item) else None


def dict_kind(entries: list[tuple[Any, Kind, str]]) -> Kind:
    """A fresh dict from a display of constant str keys (distinct, without surrogates):
    `("dict", ((key, kind), ...), (value expression, ...))`. It is ready when every value
    is; otherwise `output_lines` still builds its copy from the values' locals."""
    keys = [key for key, _, _ in entries]
    if len(set(keys)) != len(keys) or not all(clean_text(key) for key in keys):
        return None
    return ("dict", tuple((key, kind) for key, kind, _ in entries),
            tuple(expr for _, _, expr in entries))


def clean_text(value: Any) -> bool:
    """A str that `to_output` returns as it is (no lone surrogates)."""
    return type(value) is str and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def literal_kind(value: Any) -> Kind:
    if value is None or type(value) is bool:
        return ATOM
    if type(value) is int and -MAX_SAFE <= value <= MAX_SAFE:
        return INT
    return STR if clean_text(value) else None


def charge_lines(expr: str, kind: Kind, fresh_name: Any) -> list[str]:
    """The `spend` calls `to_output(expr)` makes on a value of this kind, as source lines.
    `fresh_name()` gives an unused local name for loops."""
    if kind in SCALARS or kind is None:
        return []
    tag, detail = kind[0], kind[1]
    if tag == "dict":
        lines = [f"spend({len(detail)})"]
        for key, item in detail:
            if item not in SCALARS:
                lines += charge_lines(f"{expr}[{key!r}]", item, fresh_name)
        return lines
    lines = [f"spend(len({expr}))"]
    if detail in SCALARS or detail == EMPTY:
        return lines
    if detail[0] == "dict" and all(k in SCALARS for _, k in detail[1]):
        return [*lines, f"spend_each(len({expr}), {len(detail[1])})"]
    item_name = fresh_name()
    inner = charge_lines(item_name, detail, fresh_name)
    return [*lines, f"for {item_name} in {expr}:", *(f"    {line}" for line in inner)]


def output_lines(expr: str, kind: Kind, fresh_name: Any) -> tuple[list[str], str]:
    """Statements and an expression with the value `to_output(expr)` returns, making the
    same `spend` calls and raising the same errors in the same order. A ready value is
    itself; a fresh dict is rebuilt from its values' locals (its own copy's charge first,
    then each value's conversion in key order, as `_object_output` does)."""
    if ready(kind) and _depth(kind) <= MAX_CHARGE_DEPTH:
        return charge_lines(expr, kind, fresh_name), expr
    if type(kind) is not tuple or kind[0] != "dict":
        return [], f"to_output({expr})"
    lines = [f"spend({len(kind[1])})"]
    display = []
    for (key, item), value in zip(kind[1], kind[2], strict=True):
        inner, out = output_lines(value, item, fresh_name)
        if not ready(item) and out == f"to_output({value})":
            # values._object_output's own test: ASCII text and ints within ±2**53 are
            # returned as they are, without the call
            name = fresh_name()
            test = (f"(type({value}) is str and {value}.isascii()) or (type({value}) is int"
                    f" and {-MAX_SAFE} <= {value} <= {MAX_SAFE})")
            inner, out = [*inner, f"{name} = {value} if {test} else {out}"], name
        elif not ready(item):
            name = fresh_name()
            inner, out = [*inner, f"{name} = {out}"], name
        lines += inner
        display.append(f"{key!r}: {out}")
    return lines, "{" + ", ".join(display) + "}"


def _depth(kind: Kind) -> int:
    if type(kind) is not tuple:
        return 0
    if kind[0] == "list":
        return 1 + _depth(kind[1])
    return 1 + max((_depth(item) for _, item in kind[1]), default=0)
