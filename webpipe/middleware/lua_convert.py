"""JSON ↔ Lua value conversion for the `lua` middleware (spec/middleware.md §5.2).

The runtime is opened with `encoding=None`, so every Lua string crosses the boundary as
`bytes`; this module encodes on the way in and decodes (checking UTF-8) on the way out.
Both directions are written by hand, as the spec asks, because the mapping has rules no
generic converter follows: `null` disappears, `[]` comes back as `{}`, a table is an array
only when its keys are exactly 1..n, NaN/±inf become `0`, and nesting is capped at 20.
Everything here must run on the thread that owns the `LuaRuntime` (see `lua.py`).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from lupa import lua54

JSON = Any
LuaValue = Any  # None | bool | int | float | bytes | lupa table/function/... object

MAX_DEPTH = 20
INVALID_UTF8 = "[invalid utf8]"
INVALID_KEY = "[invalid key]"
UNSUPPORTED_KEY = "[unsupported key]"
UNSUPPORTED_TYPE = "[unsupported lua type]"
MAX_DEPTH_EXCEEDED = "[max depth exceeded]"


def json_to_lua(lua: Any, value: JSON) -> LuaValue:
    """Convert a JSON value into a Lua value owned by `lua` (a `LuaRuntime`).

    The value is first rewritten into what lupa converts as-is (bytes strings, i64 integers,
    no `null` members), then built in one recursive `table_from` call: one boundary
    crossing instead of one per table."""
    ready = _lua_ready(value)
    if isinstance(ready, (dict, list)):
        return lua.table_from(ready, recursive=True)
    return ready


def _lua_ready(value: JSON) -> LuaValue:
    kind = type(value)
    if kind is str:
        return value.encode("utf-8", "surrogatepass")
    # Plain loops, not comprehensions: a comprehension is a second frame per level, and a
    # request body may nest `maxJsonDepth` (512) levels under Python's 1000-frame limit.
    if kind is dict:  # null members simply disappear (§5.2)
        table: dict[bytes, LuaValue] = {}
        for key, item in value.items():
            if item is not None:
                table[key.encode("utf-8", "surrogatepass")] = _lua_ready(item)
        return table
    if kind is list:  # a None item leaves a hole: t[i] = nil
        items: list[LuaValue] = []
        for item in value:
            items.append(_lua_ready(item))
        return items
    if value is None or kind is bool or kind is float:
        return value
    if kind is int:
        # integers that fit i64 stay integers; larger ones become floats (serde_json as_f64)
        return value if lua54.LUA_MININTEGER <= value <= lua54.LUA_MAXINTEGER else float(value)
    bases: tuple[Any, ...] = (bool, str, dict, list, int, float)
    for base in bases:  # subclasses (IntEnum, str subclasses): as their base type
        if isinstance(value, base):
            return _lua_ready(base(value))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def from_flat(flat: Any, start: int) -> JSON:
    """The JSON value of a result flattened by the prelude's `flatten` (see lua.py), read
    from `flat[start:]`: the same rules as `lua_to_json`, without crossing into Lua."""
    return _from_flat(flat, start)[0]


def _from_flat(flat: Any, i: int) -> tuple[JSON, int]:
    tag = flat[i]
    if tag == 0:
        return _scalar(flat[i + 1]), i + 2
    if tag == 1:
        count, i = flat[i + 1], i + 2
        end = i + 2 * count
        if not any(flat[i:end:2]):  # scalars only: sliced out in one go
            return [_scalar(value) for value in flat[i + 1:end:2]], end
        items = []
        for _ in range(count):
            item, i = _from_flat(flat, i)
            items.append(item)
        return items, i
    if tag == 2:
        count, i = flat[i + 1], i + 2
        end = i + 3 * count
        out: dict[str, JSON] = {}
        if not any(flat[i + 1:end:3]):  # scalar members only
            for key, value in zip(flat[i:end:3], flat[i + 2:end:3], strict=True):
                out[key_text(key)] = _scalar(value)
            i = end
        else:
            for _ in range(count):
                key = key_text(flat[i])
                out[key], i = _from_flat(flat, i + 1)
        # sorted like lua_to_json's tables (see there)
        return dict(sorted(out.items())), i
    return (MAX_DEPTH_EXCEEDED if tag == 3 else UNSUPPORTED_TYPE), i + 1


def _scalar(value: LuaValue) -> JSON:
    kind = type(value)
    if kind is bytes:
        return _decode(value, INVALID_UTF8)
    if kind is float and not math.isfinite(value):
        return 0
    return value


def lua_to_json(value: LuaValue, depth: int = 0) -> JSON:
    """Convert a Lua value (as lupa hands it over) into JSON, following §5.2."""
    if depth > MAX_DEPTH:
        return MAX_DEPTH_EXCEEDED
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else 0
    if isinstance(value, bytes):
        return _decode(value, INVALID_UTF8)
    if lua54.lua_type(value) == "table":
        return _table_to_json(value, depth)
    return UNSUPPORTED_TYPE


def _table_to_json(table: Any, depth: int) -> JSON:
    items = list(table.items())
    if _is_sequence([key for key, _ in items]):
        items.sort(key=lambda item: item[0])
        return [lua_to_json(item, depth + 1) for _, item in items]
    out = {key_text(key): lua_to_json(item, depth + 1) for key, item in items}
    # Lua iteration order is random per state; sorted keys are deterministic and match
    # serde_json's default (BTreeMap) map in the reference. See spec/lua.md.
    return dict(sorted(out.items()))


def _is_sequence(keys: list[Any]) -> bool:
    """Every key a positive integer and the count equal to the largest key (§5.2)."""
    return bool(keys) and all(type(k) is int and k > 0 for k in keys) and max(keys) == len(keys)


def key_text(key: LuaValue) -> str:
    """The JSON object key for a Lua table key (§5.2)."""
    if isinstance(key, bytes):
        return _decode(key, INVALID_KEY)
    if isinstance(key, bool):
        return UNSUPPORTED_KEY
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return float_text(key)
    return UNSUPPORTED_KEY


def float_text(number: float) -> str:
    """A float as Rust's `Display` writes it: shortest digits, never an exponent."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    text = format(Decimal(repr(number)), "f")
    return text[:-2] if text.endswith(".0") else text


def _decode(raw: bytes, fallback: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return fallback
