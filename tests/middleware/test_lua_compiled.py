"""Compiled Lua chunks give what real Lua 5.4 gives (spec/lua.md "Compiled subset").

Every chunk here runs twice: compiled (`lua_compile.compile_chunk`) and on a real Lua state
(`LuaState`, lupa's Lua 5.4, with the prelude the server uses). When the compiled run
answers, its value must be Lua's byte for byte (as orjson writes it, so 1 and 1.0 differ);
when Lua fails, the compiled run must have fallen back (`Fallback`), never answered. The
fixed cases also say which side of the line they are on (answered or fell back), so a
compiler that falls back on everything fails them. Then Hypothesis writes chunks in the
subset over random requests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webpipe.errors import StepError
from webpipe.middleware.lua_compile import compile_chunk
from webpipe.middleware.lua_ops import WORK, Fallback
from webpipe.middleware.lua_state import Binding, Budget, LuaChunk, LuaState

W7 = "local out = {} for i = 1, request.params.n do out[i] = i * i end return { squares = out }"


@pytest.fixture(scope="module")
def lua() -> Iterator[LuaState]:
    yield LuaState({}, Budget(1000, 256, deadline=time.monotonic() + 3600))


def in_lua(state: LuaState, source: str, request: Any) -> tuple[str, Any]:
    budget = Budget(1000, 256, deadline=time.monotonic() + 0.3)  # runaways: a timeout
    try:
        value = state.run(LuaChunk(source), request, None, Binding({}, {}), budget)
    except StepError as exc:
        return ("error", exc.message)
    return ("value", orjson.dumps(value))


def compiled(source: str, request: Any) -> tuple[str, Any]:
    run = compile_chunk(source)
    assert run is not None, f"not compiled: {source}"
    try:
        return ("value", orjson.dumps(run(request)))
    except Fallback:
        return ("fallback", None)


def check(state: LuaState, source: str, request: Any = None) -> str:
    """Compare both runs; the compiled run's kind of outcome ("value" or "fallback")."""
    ours = compiled(source, request)
    theirs = in_lua(state, source, request)
    if ours[0] == "value":
        assert theirs == ours, (source, request)
    return ours[0]


SHARED = {"one": "object at two places"}  # as a jq step's output can hold it
REQUEST = {"params": {"n": "5", "id": "42", "f": "2.5", "neg": "-3", "word": "abc",
                      "max": "9223372036854775807",
                      "min": "-9223372036854775808", "over": "9223372036854775808",
                      "sp": " 7 ", "exp": "1e2", "hex": "0x10", "big": "99999999999999999999"},
           "query": {"a": 1, "b": 2.5, "t": True, "z": None, "big": 2**63, "u": "héllo ☃",
                     "list": [1, 2, 3], "holes": [1, None, 3], "empty": [], "obj": {},
                     "nested": {"x": {"y": [1, {"z": "deep"}]}}, "nul": "a\u0000b",
                     "long": "x" * 5000, "longlist": [1] * 5000, "obj2": {},
                     "same1": SHARED, "same2": SHARED},
           "method": "GET"}

# (source, request or None for REQUEST, "value" / "fallback")
ANSWERED = [
    "return nil", "return", "return true", "return false", "return 0", "return -7",
    "return 9223372036854775807", "return 0.1", "return -0.0", "return 1.0", "return 2^53",
    "return 1e16", "return 1e300", "return 5e-324", "return 123.456", "return ''",
    "return 'plain'", "return 'q\"b\\\\s'", "return '\\0\\1\\31\\127 x'",
    "return '\\n\\r\\t\\b\\f\\a\\v'", "return 'héllo ☃ 𝄞'", "return [[long\nstring]]",
    "return [==[\nfirst newline skipped]==]", "return {}", "return {1, 2, 3}",
    "return {1, 'a', true, 2.5, {}}", "return {squares = {1, 4, 9}}",
    "return {b = 1, a = 2, ['é'] = 3, ['Z'] = 4, ['a b'] = 5, [''] = 6, ['\\0'] = 7}",
    "return {x = {y = {z = {1, {w = 'deep'}}}}}", "return 1, 2, 3",
    "return {[1] = 'a', [3] = 'c'}", "return {[0] = 'z'}", "return {[-1] = 1}",
    "return {[1.5] = 1, [2^63] = 2}", "return {1, 2, x = 3}",
    "return {[1.0] = 'a', [2] = 'b'}", "return {1, nil, 3}", "return {nil, nil}",
    "return {n = nil}", "local t = {} t[3] = 3 t[2] = 2 t[1] = 1 return t",
    "local t = {1, 2, 3} t[3] = nil return t", "local t = {1, 2, 3} t[3] = nil return #t",
    "local t = {} t.x = 1 t.x = nil return t", "return 1 + 2", "return 1 + 2.0",
    "return 7 - 10", "return 6 * 7", "return 7 / 2", "return 6 / 3", "return 7 // 2",
    "return -7 // 2", "return 7 // -2", "return 7.5 // 2", "return -7.5 // 2",
    "return -0.0 // 1", "return 0.0 // -1", "return 7 % 3", "return -7 % 3", "return 7 % -3",
    "return 7.5 % 2", "return -7.5 % 2", "return 7.5 % -2",
    "return 2^10", "return 2^0.5", "return (-2)^2", "return -2^2", "return 2^-1",
    "return 10^308 * 10", "return -(-9223372036854775807)", "return -(1.5)", "return - -3",
    "return 9223372036854775807 // -1", "return 3 % -1", "return 1 == 1.0",
    "return 1 < 1.5", "return 2 <= 2.0", "return 3 > 2", "return 3 >= 4", "return 1 ~= 1",
    "return 'a' == 'a'", "return 'a' ~= 'b'", "return 1 == '1'", "return nil == false",
    "return {} == {}", "local t = {} return t == t", "local z = 0.0 return z / 1 == z",
    "return nil and 1", "return false or 'x'", "return 0 and 'zero is true'",
    "return '' or 1", "return not nil", "return not 0", "return not not false",
    "return 1 and nil or 3", "return (1 < 2) and 'y' or 'n'", "return 1 < 2 and 2 < 3",
    "return 'a' .. 'b'", "return 'n' .. 1", "return 1 .. 2", "return 'f' .. 1.5",
    "return 'f' .. 2.0", "return 'f' .. -0.0", "return 'f' .. 1e15", "return 'f' .. 1e14",
    "return 'f' .. 2^63", "return 'f' .. 0.1", "return 'f' .. 1/3",
    "return 'f' .. 123456789012345678",
    "return #'abc'", "return #'héllo'", "return #''", "return #{}", "return #{1, 2}",
    "local x = 1 do local x = 2 end return x", "local x = 1 local x = x + 1 return x",
    "local a, b, c = 1, 2 return {a, b, c}", "local a, b = 1, 2, nil return a + b",
    "local a, b = 1, 2 a, b = b, a return {a, b}",
    "local t, i = {}, 1 i, t[i] = i + 1, 20 return {t, i}",
    "local s = 0 for i = 1, 10 do s = s + i end return s",
    "local s = 0 for i = 10, 1, -2 do s = s + i end return s",
    "local s = 0 for i = 1, 0 do s = s + 1 end return s",
    "local s = 0 for i = 1, 3 do i = i * 10 s = s + i end return s",
    "local s = 0 for i = 1, 2.5 do s = s + i end return s",
    "local s = 0 for i = 3, -2.5, -1 do s = s + i end return s",
    "local s = 0 for i = 1, -1e300 do s = s + i end return s",
    "local s = 0 for i = 9223372036854775806, 1e300 do s = s + 1 end return s",
    "local s = 0 for i = -9223372036854775807, -1e300, -1 do s = s + 1 end return s",
    "local s = 0 for i = 1, 3 do for j = 1, 3 do if j == 2 then break end s = s + j end end "
    "return s",
    "local i = 0 while i < 10 do i = i + 1 end return i",
    "local i = 0 while true do i = i + 1 if i >= 7 then break end end return i",
    "local x = 0 repeat local y = x x = x + 1 until y >= 3 return x",
    "local n = 5 if n > 3 then return 'big' elseif n > 1 then return 'mid' else return 'small' end",
    "local n = 2 if n > 3 then return 'big' elseif n > 1 then return 'mid' else return 'small' end",
    "local n = 0 if n > 3 then n = 1 end return n", "; ; return 1;",
    "-- comment\nreturn --[[ block ]] 1 --[==[ long\n ]==]",
    "return {a = {b = {c = {}}}}", "local t = {} t.a = {} t.a.b = 1 return t",
    "local t = {} t[1] = 1 t[2] = 2 t[4] = 4 return t",
    "local t = {} t[2] = 2 t[1] = 1 return {t, #t}",
    "local t = {x = 1} return t.x + (t.y == nil and 1 or 0)",
    "local x = 0 for i = 1, 10 do x = " + " + ".join(["i"] * 60) + " end return x",
    "local s = 'é' for i = 1, 8 do s = s .. s end return #s",
    "local x = 0 for i = 3037000499, 3037000499 do x = i * i - i + 1 end return x",
    "local t = {} for i = 1, 3 do t[i] = i t[i + 1] = -i end return t",
]
ANSWERED_WITH_REQUEST = [
    "return request.params.n", "return request.params.n + 1", "return request.params.f * 2",
    "return request.params.neg - 1", "return request.params.sp + 0",
    "return request.params.exp + 0",
    "return request.params.n .. '!'", "return #request.params.word",
    "return request.params.missing", "return request.params.big + 1", "return #request",
    "return request.params.max + 0", "return request.params.min + 0",
    "return request.params.over + 0", "return request.query.a + request.query.b",
    "return request.query.t", "return request.query.z", "return request.query.u",
    "return #request.query.u", "return request.query.list", "return #request.query.list",
    "return request.query.list[2]", "return request.query.list[2.0]",
    "return request.query.list[9]", "return request.query.holes[2]",
    "return request.query.empty", "return #request.query.empty", "return request.query.obj",
    "return request.query.nested", "return request.query.nested.x.y[2].z",
    "return request.query.list['1']", "return request.query.nested[1]", "return request.query.nul",
    "return #request.query.nested", "return request.params", "return request.query.a == 1",
    "return request.query ~= request.params", "return request.query.obj == request.query.obj2",
    "local s = 0 for i = 1, request.params.f do s = s + i end return s",
    "local s = 0 for i = 1, request.params.sp do s = s + i end return s",
    "local s = 0 for i = 1, request.query.b do s = s + i end return s",
    "return {method = request.method, n = request.params.n * 1, "
    "name = 'item ' .. request.params.id}",
    "local p = request.params return {p.n, p.id}",
    "local request = {params = {n = 1}} return request.params.n",
]
FALLS_BACK = [
    "return 1 // 0", "return 1 % 0", "return 1 / 0", "return -1 / 0", "return 0 / 0",
    "return 1.5 // 0", "return 1.5 % 0", "return 9223372036854775807 + 1",
    "return -9223372036854775807 - 2", "return 9223372036854775807 * 2",
    "return -(-9223372036854775807 - 1)", "return (-9223372036854775807 - 1) // -1",
    "return 10^309", "return (-8)^(1/3)", "return 0^-1", "return 'a' < 'b'", "return 1 < 'x'",
    "return {} < {}", "return nil + 1", "return 'abc' + 1", "return '0x10' + 1",
    "return {} .. 'x'", "return 'x' .. nil", "return 'x' .. true", "return 'x' .. 1/0",
    "return #nil", "return #5", "local t = nil return t.x", "local t = 5 return t.x",
    "local t = {} t[nil] = 1 return t", "local t = {} t[0/0] = 1 return t",
    "local t = {} t[true] = 1 return t", "return {[{}] = 1}",
    "local t = {1, 2, 3} t[2] = nil return #t", "return #{1, nil, 3}",
    "local t = {} t[2] = 1 return #t", "local s = 0 for i = 1, 0.5, 0 do end return s",
    "local s = 0 for i = 1, 10, 0 do s = s + 1 end return s",
    "local s = 0 for i = 1.0, 3 do s = s + i end return s",
    "local s = 0 for i = 1, 'x' do s = s + i end return s",
    "local s = 0 for i = 1, nil do s = s + i end return s",
    f"local s = 0 for i = 1, {WORK + 1} do s = s + i end return s",
    "while true do end", "local i = 0 repeat i = i + 1 until false return i",
    "local s = '' for i = 1, 500 do s = s .. string_of_64 end return #s".replace(
        "string_of_64", repr("x" * 64)),
    "local t = {} for i = 1, 25 do t = {t} end return t",
    "local t = {} t.self = t return t", "return {[1.5] = 'a', ['1.5'] = 'b'}",
    "return {[1] = 'int', ['1'] = 'str'}",
    # a loop's iterations cost its size: a big body gets few (spec/lua.md "Bounds")
    "local x = 0 for i = 1, 100 do x = " + " + ".join(["i"] * 60) + " end return x",
    "local x = 0 while x < 100 do x = x + " + " + ".join(["0"] * 90) + " + 1 end return x",
    "local s = 'é' for i = 1, 13 do s = s .. s end return #s",
    "local t = {} for i = 1, 5000 do t['k' .. i] = i end return #t",
    "local x = 0 for i = 3037000500, 3037000500 do x = i * i end return x",
    "local x = 0 for i = 9223372036854775807, 9223372036854775807 do x = i + 1 end return x",
    "local x = 0 for i = -9223372036854775807, -9223372036854775807 do x = i - 2 end return x",
]
FALLS_BACK_WITH_REQUEST = [
    "return request.query == request.query", "return request.query.same1 == request.query.same2",
    "return request.query.long", "return #request.query.longlist",
    "return request.query.big", "return request.query.holes", "return #request.query.holes",
    "return request.params.hex + 1", "return request.params.word * 2",
    "local p = request.params p.n = 1 return p",
    "return request.nothing.x", "return request.query.a.b", "return request.query.list[true]",
]
LIBRARY = [
    "return math.floor(3.7)", "return math.floor(-3.5)", "return math.floor(3)",
    "return math.floor('3.7')", "return math.floor('-2')", "return math.floor(-0.0)",
    "return math.floor('9223372036854775807')", "return math.ceil('-9223372036854775807')",
    "return math.floor(2^63)", "return math.floor(-2^63)", "return math.floor(1e300)",
    "return math.floor(math.huge)", "return math.ceil(3.2)", "return math.ceil(-3.7)",
    "return math.ceil(' 4.5 ')", "return math.ceil(-0.5)", "return math.abs(-3)",
    "return math.abs(3.5)", "return math.abs('-5')", "return math.abs(-0.0)",
    "return math.abs(math.mininteger + 1)", "return math.max(1, 2.5, 2)", "return math.max(3)",
    "return math.max(2, 2.0)", "return math.max(2.0, 2)", "return math.min(1, -1.5, 0)",
    "return math.min(0.0, -0.0)", "return math.max(-0.0, 0.0)",
    "return math.max(math.huge - math.huge, 1)", "return math.max(1, math.huge - math.huge)",
    "return math.huge", "return -math.huge", "return math.pi", "return math.maxinteger",
    "return math.mininteger", "return math.maxinteger + 0.0", "return tostring(1)",
    "return tostring(1.5)", "return tostring(-0.0)", "return tostring(1e15)",
    "return tostring(2^63)", "return tostring(nil)", "return tostring(true)",
    "return tostring(false)", "return tostring('s')", "return tonumber('12')",
    "return tonumber(' 12 ')", "return tonumber('1.5')", "return tonumber('1e2')",
    "return tonumber('x')", "return tonumber('')", "return tonumber('1x')",
    "return tonumber('inf')", "return tonumber('nan')", "return tonumber('1 2')",
    "return tonumber(5)", "return tonumber(nil)",
    "return tonumber(true)", "return tonumber({})", "return tonumber('99999999999999999999')",
    "return tonumber('-9223372036854775808')", "return string.len('abc')",
    "return string.len('héllo')", "return string.len(12)", "return string.len(1.5)",
    "return {n = tonumber('7') + 1, s = 'x' .. tostring(2.0), f = math.floor(7 / 2)}",
    "local math = {floor = 1} return math.floor", "local tostring = 5 return tostring",
]
LIBRARY_WITH_REQUEST = [
    "return math.floor(request.params.f)", "return tonumber(request.params.n)",
    "return tonumber(request.params.word)", "return tostring(request.query.a)",
    "return math.max(request.query.a, request.query.b)", "return string.len(request.params.word)",
    "return tonumber(request.query.t)", "return tonumber(request.query.missing)",
]
LIBRARY_FALLS_BACK = [
    "return tostring({})", "return tostring(math.huge)", "return tostring(0/0)",
    "return tonumber('0x10')", "return tonumber(' -0X1p4')", "return math.floor('x')",
    "return math.floor(nil)", "return math.abs(math.mininteger)", "return math.max('1', 2)",
    "return math.max(1, nil)", "return string.len(nil)", "return string.len({})",
]
NOT_COMPILED = [
    "return print(1)", "return math.sqrt(2)", "return math.floor(1, 2)", "return math.floor()",
    "return tonumber('10', 16)", "return tostring()", "return string.upper('a')",
    "return math['floor'](1)", "return math.floor", "return math", "math.floor = 1 return 1",
    "return tostring 'x'", f"return math.max({', '.join(map(str, range(17)))})",
    "local x = y return x", "x = 1 return x",
    "return ...", "local function f() end return 1", "return function() end",
    "for k, v in pairs({}) do end return 1", "goto done ::done:: return 1",
    "return 1 & 2", "return 1 | 2", "return ~1", "return 1 << 2", "return 0x10",
    "return '\\x41'", "return '\\u{41}'", "return '\\200'", "return 1e999",
    "return 99999999999999999999", "return {1, [2] = 2}", "local t = {} t[1], t[2] = 1, 2 return t",
    "local x <const> = 1 return x", "return context", "return getFlag('x')",
    "local s = ('x'):rep(3) return s",
]


@pytest.mark.parametrize("source", ANSWERED)
def test_answered_like_lua(lua: LuaState, source: str) -> None:
    assert check(lua, source) == "value"


@pytest.mark.parametrize("source", ANSWERED_WITH_REQUEST)
def test_answered_like_lua_with_a_request(lua: LuaState, source: str) -> None:
    assert check(lua, source, REQUEST) == "value"


@pytest.mark.parametrize("source", FALLS_BACK)
def test_left_to_lua(lua: LuaState, source: str) -> None:
    assert check(lua, source) == "fallback"


@pytest.mark.parametrize("source", FALLS_BACK_WITH_REQUEST)
def test_left_to_lua_with_a_request(lua: LuaState, source: str) -> None:
    assert check(lua, source, REQUEST) == "fallback"


@pytest.mark.parametrize("source", LIBRARY)
def test_library_functions_like_lua(lua: LuaState, source: str) -> None:
    assert check(lua, source) == "value"


@pytest.mark.parametrize("source", LIBRARY_WITH_REQUEST)
def test_library_functions_like_lua_with_a_request(lua: LuaState, source: str) -> None:
    assert check(lua, source, REQUEST) == "value"


@pytest.mark.parametrize("source", LIBRARY_FALLS_BACK)
def test_library_functions_left_to_lua(lua: LuaState, source: str) -> None:
    assert check(lua, source) == "fallback"


@pytest.mark.parametrize("source", NOT_COMPILED)
def test_not_in_the_subset(source: str) -> None:
    assert compile_chunk(source) is None


@pytest.mark.parametrize("n", ["5", "0", "-1", "5.5", "5.9", " 3 ", "+4", "1e1", 7, 2.5,
                               -0.0, True, None, "x", "", [1], {"a": 1}, 2**62, "300",
                               "1000", 2**70])
def test_w7_over_request_params(lua: LuaState, n: Any) -> None:
    request = {"params": {"n": n}} if n is not None else {"params": {}}
    outcome = check(lua, W7, request)
    small = n in ("5", "0", "-1", "5.5", "5.9", " 3 ", "+4", "1e1", 7, 2.5, -0.0, "300")
    assert outcome == ("value" if small else "fallback")


def test_w7_request_not_a_table(lua: LuaState) -> None:
    for request in (None, "text", 5, [1, 2]):
        assert check(lua, W7, request) == "fallback"


# -- random chunks ---------------------------------------------------------------------

LITERALS = ["0", "1", "2", "-3", "7", "1.5", "-0.0", "0.1", "2^53", "9223372036854775807",
            "'5'", "'abc'", "' 7 '", "'2.5'", "''", "nil", "true", "false", "1e15", "3.0"]
FIELDS = ["request.params.n", "request.params.s", "request.query.x", "request.query.list",
          "request.query.missing"]
BINARY = ["+", "-", "*", "/", "//", "%", "^", "..", "==", "~=", "<", "<=", ">", ">=",
          "and", "or"]


def expressions(names: list[str]) -> st.SearchStrategy[str]:
    leaves = st.sampled_from(LITERALS + FIELDS + names)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(BINARY), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(["-", "not", "#"]), inner).map(lambda t: f"({t[0]} {t[1]})"),
            st.lists(inner, max_size=3).map(lambda items: "{" + ", ".join(items) + "}"),
            st.tuples(inner, inner).map(lambda t: f"{{k = {t[0]}, [{t[1]}] = 1}}"),
        )
    return st.recursive(leaves, extend, max_leaves=6)


@st.composite
def chunks(draw: st.DrawFn) -> str:
    expr = expressions(["a", "b"])
    lines = [f"local a = {draw(expressions([]))}", f"local b = {draw(expressions(['a']))}",
             "local t = {}"]
    lines.append(f"for i = 1, {draw(st.sampled_from(['3', 'request.params.n', '0', 'a']))} do "
                 f"t[i] = {draw(expressions(['a', 'b', 'i']))} end")
    lines.append(f"if {draw(expr)} then a = {draw(expr)} elseif {draw(expr)} then "
                 f"b = {draw(expr)} else t.k = {draw(expr)} end")
    lines.append(f"local n = 0 while n < 3 and {draw(expr)} do n = n + 1 end")
    lines.append(f"return {{a = a, b = b, t = t, n = n, e = {draw(expr)}}}")
    return "\n".join(lines)


REQUESTS = st.fixed_dictionaries({
    "params": st.fixed_dictionaries({
        "n": st.sampled_from(["3", "0", "2.5", "x", " 4", "-1", 2, 1.5, None]),
        "s": st.sampled_from(["abc", "", "12", "1e2", "héllo"]),
    }),
    "query": st.fixed_dictionaries({
        "x": st.one_of(st.integers(-10, 10), st.floats(-10, 10), st.booleans(), st.none(),
                       st.sampled_from(["1", "a", "-0", "9223372036854775807"])),
        "list": st.sampled_from([[1, 2], [], [1, None], ["a"], {"k": 1}]),
    }),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=chunks(), request=REQUESTS)
def test_random_chunks_answer_like_lua(lua: LuaState, source: str, request: Any) -> None:
    check(lua, source, request)


NUMBERS = ["0", "1", "2", "-3", "7", "1.5", "-0.0", "0.1", "3.0", "2^62", "1e15",
           "9223372036854775807", "request.params.n", "'12'", "' 4 '"]
ARITHMETIC = ["+", "-", "*", "/", "//", "%", "^"]


def numeric(names: list[str]) -> st.SearchStrategy[str]:
    """Expressions that mostly stay numbers, so most chunks answer."""
    leaves = st.sampled_from(NUMBERS + names)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(ARITHMETIC), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda e: f"(- {e})"),
            st.tuples(inner, st.sampled_from(["<", "<=", "==", "~="]), inner, inner, inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]} and {t[3]} or {t[4]})"),
            st.tuples(inner, inner).map(lambda t: f"#({t[0]} .. {t[1]})"),
            st.tuples(st.sampled_from(["math.floor", "math.ceil", "math.abs", "tonumber"]),
                      inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(inner, inner).map(lambda t: f"math.max({t[0]}, {t[1]})"),
            inner.map(lambda e: f"string.len(tostring({e}))"),
        )
    return st.recursive(leaves, extend, max_leaves=5)


@st.composite
def numeric_chunks(draw: st.DrawFn) -> str:
    lines = [f"local a = {draw(numeric([]))}", "local out = {}",
             f"for i = {draw(st.sampled_from(['1', '-2', '3']))}, "
             f"{draw(st.sampled_from(['3', 'request.params.n', '0', '2.5']))} do",
             f"  out[#out + 1] = {draw(numeric(['a', 'i']))}",
             f"  if {draw(numeric(['a', 'i']))} > {draw(numeric(['a']))} then a = a + 1 end",
             "end",
             f"return {{a = a, out = out, s = 'v' .. {draw(numeric(['a']))}}}"]
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=numeric_chunks(),
       n=st.sampled_from(["3", "0", "2.5", "-1", 4, 1.5, "9223372036854775807", " 2 "]))
def test_random_numeric_chunks_answer_like_lua(lua: LuaState, source: str, n: Any) -> None:
    check(lua, source, {"params": {"n": n}})


GRID = ["5", "-5", "5.5", "-5.5", "0.0", "-0.0", "(1e308 * 10)", "(-1e308 * 10)", "3", "-3",
        "0.5", "1e300", "-1e-300", "9223372036854775807", "'6'", "' -2.5 '"]


@pytest.mark.parametrize("op", ["%", "//", "/", "^", "*", "+", "-", "<", "<=", "==", ".."])
def test_every_pair_of_operands(lua: LuaState, op: str) -> None:
    answered = [check(lua, f"return {a} {op} {b}") for a in GRID for b in GRID]
    assert answered.count("value") > len(GRID)  # not a grid of fall-backs
