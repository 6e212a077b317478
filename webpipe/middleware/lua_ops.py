"""What compiled Lua chunks call at run time (spec/lua.md "Compiled subset").

Values are Lua's as Python holds them: nil `None`, booleans, integers `int` (always within
64 bits: an operation that would wrap raises `Fallback` instead), floats, strings `str`
(valid UTF-8 only), tables the chunk built (`Table`), and tables of the request as the
JSON it came from (`dict`, `list`), read the way `lua_convert.json_to_lua` would have
converted them. Every function here gives Lua 5.4's result or raises `Fallback`, never a
different answer: whatever Lua would report as an error, and whatever is awkward to mirror
exactly (holes in sequences, string ordering, float division by zero, hexadecimal
numerals in strings), is left to the real runtime, which then runs the chunk from the start.
`to_json` converts a result as `lua_json.ENCODER` / `lua_convert.from_flat` do.
"""

from __future__ import annotations

import locale
import math
import re
from typing import Any

from webpipe.middleware.lua_convert import MAX_DEPTH, key_text

MIN_INTEGER, MAX_INTEGER = -(2**63), 2**63 - 1
# work units a compiled run may spend before it hands the chunk to Lua: a loop iteration
# costs one per token of the loop, a table store one, `..` one per 16 bytes. A unit is
# ~0.03-0.1 µs here, so a run stops within ~0.2-0.6 ms, inside the inline tier's 1 ms:
# a chunk past it costs little extra before Lua's own budget applies
WORK = 6000
# values `to_json` walks (a returned request body can be big) before handing over
MAX_NODES = 2048
# what one operation may scan that the work budget does not count (`#` of a table's
# other keys or of a request list, a non-ASCII string's UTF-8; a request string's length):
# past it the operation falls back, so a loop of them stays cheap
MAX_SCAN = 4096
_SPACE = "[ \t\n\v\f\r]*"
_INT_TEXT = re.compile(f"{_SPACE}[-+]?[0-9]+{_SPACE}")
_FLOAT_TEXT = re.compile(
    f"{_SPACE}[-+]?(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:[eE][-+]?[0-9]+)?{_SPACE}")
_INTEGRAL_TEXT = re.compile("[-0-9]*")
Value = Any
_PLAIN = frozenset((int, str, bool))  # items `to_json` keeps as they are


class Fallback(Exception):
    """The compiled code is not sure of Lua's answer: run the chunk in Lua."""


class Table:
    """A table the chunk built: `items` holds keys 1..n (never nil), `rest` every other
    key (normalised as Lua does: a float with an integer value is that integer);
    `mixed` once `rest` got a key that is not a string (it stays set)."""

    __slots__ = ("items", "mixed", "rest")

    def __init__(self) -> None:
        self.items: list[Value] = []
        self.rest: dict[Value, Value] = {}
        self.mixed = False


def spend(work: list[int], units: int) -> None:
    work[0] -= units
    if work[0] < 0:
        raise Fallback


def json_value(value: Value) -> Value:
    """A request value as Lua sees it (lua_convert._lua_ready), or Fallback."""
    kind = type(value)
    if kind is str:
        if len(value) > MAX_SCAN:
            raise Fallback  # compared or measured in a loop, it would cost
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:  # a lone surrogate: invalid UTF-8 in Lua
                raise Fallback from None
        return value
    if kind is int:
        if MIN_INTEGER <= value <= MAX_INTEGER:
            return value
        raise Fallback
    if value is None or kind is bool or kind is float or kind is dict or kind is list:
        return value
    raise Fallback


def _key(key: Value) -> Value:
    kind = type(key)
    if kind is str or kind is int:
        return key
    if kind is float:
        if key.is_integer() and MIN_INTEGER <= key <= MAX_INTEGER:
            return int(key)
        if key != key:
            raise Fallback
        return key
    raise Fallback  # nil, booleans (True == 1 in a dict), tables


def index(obj: Value, key: Value) -> Value:
    """`obj[key]`."""
    kind = type(obj)
    if kind is dict:  # a request object, the usual case
        if type(key) is str:
            value = obj.get(key)
            found = type(value)
            if found is dict or value is None or (
                    found is str and value.isascii() and len(value) <= MAX_SCAN):
                return value
            return json_value(value)
        if key is None or type(key) is int or type(key) is float:
            return None
        raise Fallback
    if kind is Table:
        if type(key) is int and 0 < key <= len(obj.items):
            return obj.items[key - 1]
        if key is None or (type(key) is float and key != key):
            return None
        return obj.rest.get(_key(key))
    if kind is list:
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) is int:
            return json_value(obj[key - 1]) if 0 < key <= len(obj) else None
        if key is None or type(key) is str or type(key) is float:
            return None
    raise Fallback


def store(obj: Value, key: Value, value: Value, work: list[int]) -> None:
    """`obj[key] = value` on a table the chunk built."""
    if type(obj) is not Table:
        raise Fallback
    work[0] -= 1
    if work[0] < 0:
        raise Fallback
    items = obj.items
    if type(key) is int and key == len(items) + 1 and value is not None and not obj.rest:
        items.append(value)  # the usual store: the next item of a sequence
        return
    key = _key(key)
    if type(key) is int:
        count = len(items)
        if 0 < key <= count:
            if value is not None:
                items[key - 1] = value
            elif key == count:
                items.pop()
            else:
                raise Fallback  # a hole: `#` and the sequence test get subtle
            return
        if key == count + 1 and value is not None:
            items.append(value)
            rest = obj.rest
            while rest and len(items) + 1 in rest:
                items.append(rest.pop(len(items) + 1))
            return
    if value is None:
        obj.rest.pop(key, None)
    else:
        obj.rest[key] = value
        if type(key) is not str:
            obj.mixed = True


def table(work: list[int], items: tuple[Value, ...],
          fields: tuple[tuple[Value, Value], ...]) -> Table:
    """A constructor: keyed fields in order, then the positional items (the compiler
    does not mix positional items with `[expr] =` fields, whose order Lua defines by
    its register flushes)."""
    made = Table()
    rest = made.rest
    for key, value in fields:
        if type(key) is not str:
            store(made, key, value, work)
        elif value is not None:
            rest[key] = value  # counted below
        else:
            rest.pop(key, None)
    spend(work, len(fields))
    for position, value in enumerate(items, 1):
        if value is not None:
            store(made, position, value, work)
    return made


def length(value: Value) -> int:
    """`#value`."""
    kind = type(value)
    if kind is str:
        if value.isascii():
            return len(value)
        if len(value) <= MAX_SCAN:
            return len(value.encode())
    elif kind is Table:
        rest = value.rest
        if not value.mixed or (
                len(rest) <= MAX_SCAN and not any(type(k) is int and k > 0 for k in rest)):
            return len(value.items)  # else several borders, or a long scan
    elif kind is dict:
        return 0  # only string keys
    elif kind is list and len(value) <= MAX_SCAN and None not in value:
        return len(value)
    raise Fallback


def truthy(value: Value) -> bool:
    return value is not None and value is not False


def number(value: Value) -> int | float:
    """An arithmetic operand (strings coerced as Lua's string metamethods do)."""
    kind = type(value)
    if kind is int or kind is float:
        return value  # type: ignore[no-any-return]
    if kind is str:
        if value.isdigit() and value.isascii() and len(value) <= 18:
            return int(value)  # the usual request parameter
        if len(value) > 200:
            raise Fallback  # no number is that long; int() of it would cost
        if _INT_TEXT.fullmatch(value):
            whole = int(value)
            if MIN_INTEGER <= whole <= MAX_INTEGER:
                return whole
            return float(value)  # l_str2int refuses it, l_str2d reads it
        if _FLOAT_TEXT.fullmatch(value):
            return float(value)  # strtod and Python both round correctly
    raise Fallback


def wraps() -> int:
    """Inline integer arithmetic left 64 bits (Lua wraps around)."""
    raise Fallback


def _integer(result: int) -> int:
    if MIN_INTEGER <= result <= MAX_INTEGER:
        return result
    raise Fallback  # Lua wraps around


def add(a: Value, b: Value) -> Value:
    if type(a) is int and type(b) is int:  # the usual case, first
        result = a + b
        if MIN_INTEGER <= result <= MAX_INTEGER:
            return result
        raise Fallback  # Lua wraps around
    a, b = number(a), number(b)
    if type(a) is int and type(b) is int:
        return _integer(a + b)
    return float(a) + float(b)


def sub(a: Value, b: Value) -> Value:
    if type(a) is int and type(b) is int:  # the usual case, first
        result = a - b
        if MIN_INTEGER <= result <= MAX_INTEGER:
            return result
        raise Fallback  # Lua wraps around
    a, b = number(a), number(b)
    if type(a) is int and type(b) is int:
        return _integer(a - b)
    if a == 0 and b == 0 and type(b) is int:
        # Lua compiles `x - 0` (a constant) as `x + 0` (OP_ADDI): -0.0 - 0 is then 0.0,
        # but `x - y` with y = 0 is -0.0; which one this is shows only in the source
        raise Fallback
    return float(a) - float(b)


def mul(a: Value, b: Value) -> Value:
    if type(a) is int and type(b) is int:  # the usual case, first
        result = a * b
        if MIN_INTEGER <= result <= MAX_INTEGER:
            return result
        raise Fallback  # Lua wraps around
    a, b = number(a), number(b)
    if type(a) is int and type(b) is int:
        return _integer(a * b)
    return float(a) * float(b)


def div(a: Value, b: Value) -> float:
    dividend, divisor = float(number(a)), float(number(b))
    if divisor == 0:
        raise Fallback  # inf, -inf or nan (with a sign printf may show)
    return dividend / divisor


def power(a: Value, b: Value) -> float:
    base, exponent = float(number(a)), float(number(b))
    if exponent == 2:  # luai_numpow
        return base * base
    try:
        return math.pow(base, exponent)
    except (ValueError, OverflowError):
        raise Fallback from None


def floor_div(a: Value, b: Value) -> Value:
    a, b = number(a), number(b)
    if type(a) is int and type(b) is int:
        if b == 0:
            raise Fallback  # Lua's error
        return _integer(a // b)
    if float(b) == 0:
        raise Fallback
    quotient = float(a) / float(b)
    if quotient == 0:
        return quotient  # floor(-0.0) is -0.0
    if not math.isfinite(quotient):
        raise Fallback  # an overflow
    return float(math.floor(quotient))


def mod(a: Value, b: Value) -> Value:
    a, b = number(a), number(b)
    if type(a) is int and type(b) is int:
        if b == 0:
            raise Fallback
        return a % b  # floor modulo, as luaV_mod
    x, y = float(a), float(b)
    try:
        result = math.fmod(x, y)
    except ValueError:
        raise Fallback from None
    if (y < 0) if result > 0 else (result < 0 and y > 0):  # luai_nummod: signs differ
        result += y
    return result


def neg(a: Value) -> Value:
    a = number(a)
    if type(a) is int:
        return _integer(-a)
    return -a


def equal(a: Value, b: Value) -> bool:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is dict or ta is list:
            if a is b:
                # the same JSON object can sit at two places of the request (a jq step's
                # output), where Lua has two tables; `local p = request.x` is one table
                raise Fallback
            return False
        return a is b if ta is Table else bool(a == b)
    if (ta is int and tb is float) or (ta is float and tb is int):
        return bool(a == b)  # Python compares them exactly, as Lua does
    return False


def _numbers(a: Value, b: Value) -> None:
    ta, tb = type(a), type(b)
    if not (ta is int or ta is float) or not (tb is int or tb is float):
        raise Fallback  # strings compare by strcoll; anything else is an error


def less(a: Value, b: Value) -> bool:
    _numbers(a, b)
    return bool(a < b)


def less_equal(a: Value, b: Value) -> bool:
    _numbers(a, b)
    return bool(a <= b)


def c_numeric() -> bool:
    """Whether numbers are read and written with "." (Lua uses the C locale's point)."""
    return locale.setlocale(locale.LC_NUMERIC) in ("C", "POSIX")


def text(value: Value) -> str:
    """A `..` operand as Lua writes it (`%d`, `LUAI_NUMFFORMAT` "%.14g" plus ".0")."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if kind is float and math.isfinite(value) and c_numeric():
        written = format(value, ".14g")  # what "%.14g" writes
        return written + ".0" if _INTEGRAL_TEXT.fullmatch(written) else written
    raise Fallback


def concat(a: Value, b: Value, work: list[int]) -> str:
    joined = text(a) + text(b)
    spend(work, 1 + len(joined) // 16)
    return joined


def for_range(start: Value, limit: Value, step: Value, work: list[int], cost: int) -> range:
    """The values of `for i = start, limit, step` with integer start and step (forprep,
    forlimit; a float loop is left to Lua), `cost` units each spent up front."""
    if type(start) is not int or type(step) is not int or step == 0:
        raise Fallback
    if type(limit) is str:
        limit = number(limit)
    if type(limit) is float:
        limit = _float_limit(limit, step)
        if limit is None:
            return range(0)
    elif type(limit) is not int:
        raise Fallback
    values = range(start, limit + 1, step) if step > 0 else range(start, limit - 1, step)
    try:
        count = len(values)
    except OverflowError:  # more than sys.maxsize values
        raise Fallback from None
    spend(work, count * cost)
    return values


def _float_limit(limit: float, step: int) -> int | None:
    """forlimit: floor (ceil going down), clipped; None when the loop does not run."""
    if math.isfinite(limit):
        whole = math.floor(limit) if step > 0 else math.ceil(limit)
        if MIN_INTEGER <= whole <= MAX_INTEGER:
            return whole
    if limit > 0:
        return None if step < 0 else MAX_INTEGER
    return None if step > 0 else MIN_INTEGER


def to_json(value: Value) -> Any:
    """The step's value for a chunk's result, as the Lua side gives it."""
    return _json(value, 0, [MAX_NODES])


def _first(pair: tuple[str, Value]) -> str:
    return pair[0]


def _json(value: Value, depth: int, nodes: list[int]) -> Any:
    if depth > MAX_DEPTH:
        raise Fallback  # "[max depth exceeded]" there; rare enough to leave to Lua
    spend(nodes, 1)
    kind = type(value)
    if kind is Table:
        return _table_json(value, depth + 1, nodes)
    if kind is float:
        return value if math.isfinite(value) else 0
    if kind is dict:
        members = sorted(((json_value(k), v) for k, v in value.items() if v is not None),
                         key=_first)
        return {k: _json(json_value(v), depth + 1, nodes) for k, v in members}
    if kind is list:
        if None in value:
            raise Fallback  # holes
        return [_json(json_value(v), depth + 1, nodes) for v in value] or {}
    return value


def _table_json(table: Table, inner: int, nodes: list[int]) -> Any:
    """A table the chunk built; `inner` is its members' depth. Members that stay as they
    are (integers, strings, booleans) are counted here instead of one call each."""
    items, rest = table.items, table.rest
    spend(nodes, len(items) + len(rest))
    plain = _PLAIN if inner <= MAX_DEPTH else frozenset()
    if not rest:
        if not items:
            return {}
        return [v if type(v) in plain else _json(v, inner, nodes) for v in items]
    if not items and not table.mixed:  # string keys only: a record
        return {k: v if type(v) in plain else _json(v, inner, nodes)
                for k, v in sorted(rest.items())}  # keys differ: values never compared
    pairs = [(str(k), v) for k, v in enumerate(items, 1)]
    pairs += [(k if type(k) is str else key_text(k), v) for k, v in rest.items()]
    if len({k for k, _ in pairs}) != len(pairs):
        raise Fallback  # two keys with one text (1.5 and "1.5"): Lua's order decides
    pairs.sort(key=_first)
    return {k: v if type(v) in plain else _json(v, inner, nodes) for k, v in pairs}
