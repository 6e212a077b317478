"""The few Lua library functions the compiled subset calls itself (spec/lua.md "Compiled
subset"): `tostring`, `tonumber` (one argument), `math.floor`, `math.ceil`, `math.abs`,
`math.max`, `math.min`, `string.len`, and the constants `math.huge`, `math.pi`,
`math.maxinteger`, `math.mininteger`. Each gives what lbaselib.c / lmathlib.c /
lstrlib.c give or raises `Fallback` (an error there, a table argument, a hexadecimal
string, a process whose C locale for numbers is not "C"...). They all return one value,
so a call's results never need Lua's multiple-value adjustment.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any

from webpipe.middleware import lua_ops
from webpipe.middleware.lua_ops import MAX_INTEGER, MIN_INTEGER, Fallback, c_numeric

Value = Any
_HEX = re.compile("[ \t\n\v\f\r]*[-+]?0[xX]")

def tostring(value: Value) -> str:
    kind = type(value)
    if value is None:
        return "nil"
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is str:
        return str(value)
    if kind is float:
        return lua_ops.text(value)
    raise Fallback  # "table: 0x...", or a table's __tostring / __name


def tonumber(value: Value) -> Value:
    kind = type(value)
    if kind is int or kind is float:
        return value
    if kind is not str:
        return None  # luaL_pushfail
    if _HEX.match(value) or not c_numeric():
        raise Fallback  # hexadecimal numerals; another locale's decimal point
    try:
        return lua_ops.number(value)
    except Fallback:
        if len(value) > 200:
            raise
        return None  # neither l_str2int nor strtod reads all of it


def _float_or_int(value: float) -> Value:
    """lmathlib's pushnumint: an integer when the float has one that fits."""
    if math.isfinite(value) and MIN_INTEGER <= value <= MAX_INTEGER:
        return int(value)
    return value


def floor(value: Value) -> Value:
    if type(value) is int:  # lua_isinteger: a string "5" is read as a float (checknumber)
        return value
    number = float(lua_ops.number(value))
    return _float_or_int(float(math.floor(number)) if math.isfinite(number) else number)


def ceil(value: Value) -> Value:
    if type(value) is int:
        return value
    number = float(lua_ops.number(value))
    return _float_or_int(float(math.ceil(number)) if math.isfinite(number) else number)


def absolute(value: Value) -> Value:
    if type(value) is int:  # lua_isinteger: a string "5" takes the float branch
        if value == MIN_INTEGER:
            raise Fallback  # wraps around
        return abs(value)
    return math.fabs(float(lua_ops.number(value)))


def _numbers(values: tuple[Value, ...]) -> None:
    for value in values:
        if type(value) is not int and type(value) is not float:
            raise Fallback  # lua_compare of strings, or an error


def maximum(*values: Value) -> Value:
    return _first_best(values, operator.lt)


def minimum(*values: Value) -> Value:
    return _first_best(values, operator.gt)


def _first_best(values: tuple[Value, ...], beaten: Callable[[Any, Any], bool]) -> Value:
    """Lua's `math.max`/`min` loop: the first value that no later one beats (`beaten(best,
    value)`); ties keep the earlier, so `math.max(1, 1.0)` is the integer 1."""
    _numbers(values)
    best = values[0]
    for value in values[1:]:
        if beaten(best, value):
            best = value
    return best


def length(value: Value) -> int:
    if type(value) is int or type(value) is float:
        return len(lua_ops.text(value))  # luaL_checklstring converts numbers
    if type(value) is not str:
        raise Fallback
    return lua_ops.length(value)


# Lua name → (helper name in the generated code, the helper, fewest and most arguments)
FUNCTIONS: dict[str, tuple[str, Any, int, int]] = {
    "tostring": ("_tostring", tostring, 1, 1),
    "tonumber": ("_tonumber", tonumber, 1, 1),
    "math.floor": ("_floor", floor, 1, 1),
    "math.ceil": ("_ceil", ceil, 1, 1),
    "math.abs": ("_abs", absolute, 1, 1),
    "math.max": ("_max", maximum, 1, 16),
    "math.min": ("_min", minimum, 1, 16),
    "string.len": ("_strlen", length, 1, 1),
}
# Lua name → Python expression
CONSTANTS = {
    "math.huge": "_INF", "math.pi": repr(math.pi), "math.maxinteger": str(MAX_INTEGER),
    "math.mininteger": f"({MIN_INTEGER})",
}
HELPERS: dict[str, Any] = {name: helper for name, helper, _, _ in FUNCTIONS.values()}
HELPERS["_INF"] = math.inf
TABLES = ("math", "string")  # globals the subset reads only through the names above
