"""A Lua result read two ways gives the same JSON (spec/lua.md "JSON ↔ Lua").

The prelude writes a result as JSON text (`lua_json.ENCODER`, read with one `orjson.loads`)
and gives up on what it cannot write exactly as the flat path would (`flatten` +
`lua_convert.from_flat`). These tests run the same chunks on a real Lua state with the
encoder and on one whose encoder always gives up, and compare the outcomes byte for byte:
value (as orjson writes it, so 1 and 1.0 differ), or error text and type.
"""

from __future__ import annotations

import locale
import random
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from webpipe.errors import StepError
from webpipe.middleware import lua_state
from webpipe.middleware.lua import request_keys
from webpipe.middleware.lua_json import ENCODER
from webpipe.middleware.lua_state import Binding, Budget, LuaChunk, LuaState

# on the empty line ENTRY starts with, so the prelude's line numbers stay as they are
GIVES_UP = "encode_json = function() error(GIVE_UP) end"
INLINE = Budget(1000, 256, inline_cpu=0.001)


def worker_budget() -> Budget:
    return Budget(1000, 256, deadline=time.monotonic() + 10)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[LuaState, LuaState]]:
    """A state as the server makes it, and one that always takes the flat path."""
    text = LuaState({}, worker_budget())
    original = lua_state.PRELUDE
    assert original.count(ENCODER) == 1
    lua_state.PRELUDE = original.replace(ENCODER, ENCODER + GIVES_UP)
    try:
        flat = LuaState({}, worker_budget())
    finally:
        lua_state.PRELUDE = original
    yield text, flat


def outcome(state: LuaState, source: str, request: Any = None,
            budget: Budget | None = None) -> tuple[Any, ...]:
    try:
        value = state.run(LuaChunk(source), request, None, Binding({}, {}),
                          budget or worker_budget())
    except StepError as exc:
        return ("error", exc.message, exc.error_type)
    return ("value", orjson.dumps(value))


def took_text(state: LuaState, source: str) -> bool:
    """Whether the encoder wrote this chunk's result (the run's answer is JSON text)."""
    seen: list[bool] = []
    read = state._result

    def spy(out: Any) -> Any:
        seen.append(type(out[2]) is bytes)
        return read(out)
    state._result = spy  # type: ignore[method-assign]
    try:
        outcome(state, source)
    finally:
        del state._result
    return seen == [True]


def same(pair: tuple[LuaState, LuaState], source: str, request: Any = None) -> tuple[Any, ...]:
    text, flat = pair
    got = outcome(text, source, request)
    assert got == outcome(flat, source, request), source
    return got


# what the encoder writes itself
WRITTEN = [
    "return nil", "return", "return true", "return false", "return 0", "return -7",
    "return math.maxinteger", "return math.mininteger", "return 0.1", "return -0.0",
    "return 1.0", "return 2^53", "return 1e16", "return 1e300", "return 5e-324",
    "return 123.456", "return -1.5e-7", "return 1/0", "return -1/0", "return 0/0",
    "return ''", "return 'plain'", "return 'q\"b\\\\s'", "return '\\0\\1\\31\\127 x'",
    "return '\\n\\r\\t\\b\\f'", "return 'héllo ☃ 𝄞'", "return '\\u{10FFFF}'",
    "return {}", "return {1, 2, 3}", "return {1, 'a', true, 2.5, {}}",
    "return {squares = {1, 4, 9, 16, 25}}",
    "return {b = 1, a = 2, ['é'] = 3, ['Z'] = 4, ['a b'] = 5, [''] = 6, ['\\0'] = 7}",
    "return {x = {y = {z = {1, {w = 'deep'}}}}}",
    "return {f = print, co = coroutine.create(print)}",
    "return {print, 1}",
    "local t = {} local cur = t for i = 1, 25 do cur.n = {} cur = cur.n end return t",
    "local t = {} for i = 1, 25 do t = {t} end return t",
    "local t = {} t.self = t return t",
    "return 1, 2, 3",
    "return {['k\"\\\\\\n'] = 'v'}",
    "return {1, 2.0, 3}", "return {1, -2, math.maxinteger, math.mininteger}",
    # integer lists on both sides of the depth cap (written in one call above it)
    *(f"local t = {{1, 2}} for i = 1, {d} do t = {{t}} end return t" for d in (18, 19, 20, 21)),
    *(f"local t = {{k = {{3}}}} for i = 1, {d} do t = {{t}} end return t" for d in (18, 19)),
]
# what it leaves to the flat path
FLAT = [
    "return '\\255'", "return 'a\\128b'", "return '\\xC0\\xAF'", "return '\\xED\\xA0\\x80'",
    "return '\\xF4\\x90\\x80\\x80'", "return '\\xE2\\x82'", "return {s = 'ok', bad = '\\200'}",
    "return {[1] = 'a', [3] = 'c'}", "return {[0] = 'z'}", "return {[-1] = 1}",
    "return {[1.5] = 1, [2^63] = 2}", "return {[true] = 1}", "return {[{}] = 1}",
    "return {1, 2, x = 3}", "return {[1] = 'int', ['1'] = 'str'}",
    "return {['\\255'] = 1}", "local t = {} for i = 1, 3000 do t[i] = i end return t",
    "return string.rep('x', 70000)",
    "local t = {} t[1] = t t[2] = t return t",
]
ERRORS = [
    "error('boom')", "error('boom', 0)", "error({})", "error(setmetatable({}, "
    "{__tostring = function() return 'custom' end}))", "error(42)", "local x = nil; return x.y",
    "return #string.rep('x', 2^40)",
]


@pytest.mark.parametrize("source", WRITTEN)
def test_the_encoder_writes_what_the_flat_path_reads(
        pair: tuple[LuaState, LuaState], source: str) -> None:
    same(pair, source)
    assert took_text(pair[0], source)


@pytest.mark.parametrize("source", FLAT)
def test_what_the_encoder_cannot_write_takes_the_flat_path(
        pair: tuple[LuaState, LuaState], source: str) -> None:
    same(pair, source)
    assert not took_text(pair[0], source)


@pytest.mark.parametrize("source", ERRORS)
def test_errors_are_the_same(pair: tuple[LuaState, LuaState], source: str) -> None:
    assert same(pair, source)[0] == "error"


def test_some_expected_values(pair: tuple[LuaState, LuaState]) -> None:
    assert same(pair, "return 1.0") == ("value", b"1.0")
    assert same(pair, "return 0/0") == ("value", b"0")
    assert same(pair, "return {2.5, 'x'}") == ("value", b'[2.5,"x"]')
    assert same(pair, "return '\\200'") == ("value", b'"[invalid utf8]"')
    assert same(pair, "return {b = 1, a = {}}") == ("value", b'{"a":{},"b":1}')


def test_the_request_round_trips(pair: tuple[LuaState, LuaState]) -> None:
    request = {"params": {"n": 5}, "body": {"items": [1, 2.5, "three", None, True, {}],
                                            "name": "é\"\\\n", "big": 2**70}}
    got = same(pair, "return request", request)
    # the null leaves a hole, so `items` is no sequence any more: an object (§5.2)
    assert orjson.loads(got[1]) == {"params": {"n": 5}, "body": {
        "items": {"1": 1, "2": 2.5, "3": "three", "5": True, "6": {}},
        "name": "é\"\\\n", "big": float(2**70)}}


def test_inline_runs_agree_too(pair: tuple[LuaState, LuaState]) -> None:
    text, flat = pair
    for source in WRITTEN[:12] + FLAT[:5]:
        assert outcome(text, source, budget=INLINE) == outcome(flat, source, budget=INLINE)


def test_a_collation_other_than_c_takes_the_flat_path(pair: tuple[LuaState, LuaState]) -> None:
    before = locale.setlocale(locale.LC_COLLATE)
    try:
        locale.setlocale(locale.LC_COLLATE, "C.UTF-8")
    except locale.Error:
        pytest.skip("no C.UTF-8 locale here")
    try:
        source = "return {b = 1, a = 2}"
        same(pair, source)
        assert not took_text(pair[0], source)
        assert took_text(pair[0], "return {a = 1}")  # one key: nothing to sort
    finally:
        locale.setlocale(locale.LC_COLLATE, before)
    assert took_text(pair[0], "return {b = 1, a = 2}")


def test_a_runaway_result_is_stopped_by_the_budget(pair: tuple[LuaState, LuaState]) -> None:
    # 2^40 paths through a cyclic table: the encoder gives up at its node bound, and the
    # flat path runs under the budget hook until the run's time is up
    source = "local t = {} for i = 1, 4 do t[i] = t end return t"
    budget = Budget(100, 256, deadline=time.monotonic() + 0.1)
    started = time.monotonic()
    got = outcome(pair[0], source, budget=budget)
    assert got == ("error", "Lua chunk exceeded its 100 ms time budget", "timeout")
    assert time.monotonic() - started < 5


# random values: nested tables of every key and value kind, strings of random bytes
def random_bytes(rng: random.Random) -> bytes:
    pick = rng.random()
    if pick < 0.5:
        return rng.choice(["", "a", "key", "Zed", "é", "☃", "a b", "q\"", "\\", "\n"]).encode()
    if pick < 0.8:
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(160, 0x3000),
                                       rng.randrange(0x10000, 0x10FFFF)]))
                       for _ in range(rng.randrange(6))).encode()
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5)))


def lua_string(raw: bytes) -> str:
    return '"' + "".join(f"\\{b}" for b in raw) + '"'


def lua_number(rng: random.Random) -> str:
    return rng.choice([
        str(rng.randrange(-10**6, 10**6)), repr(rng.uniform(-1e6, 1e6)),
        repr(rng.random() * 10 ** rng.randrange(-300, 300)), "(1/0)", "(0/0)", "-0.0",
        str(rng.choice([2**63 - 1, -2**63])), repr(float(rng.randrange(100))),
    ])


def lua_key(rng: random.Random, strings_only: bool) -> tuple[str, str]:
    """A key's Lua text and the JSON key it becomes: a table whose keys collide there
    (two invalid strings, 1 and "1") gives whichever Lua iterates last, and the order
    differs between states, so the generator avoids collisions."""
    if strings_only or rng.random() < 0.85:
        raw = random_bytes(rng)
        try:
            return lua_string(raw), raw.decode()
        except UnicodeDecodeError:
            return lua_string(raw), "[invalid key]"
    number = rng.randrange(-2, 6)
    return rng.choice([(str(number), str(number)), ("1.5", "1.5"),
                       ("true", "[unsupported key]"), ("2^53", "9007199254740992")])


def lua_value(rng: random.Random, depth: int) -> str:
    pick = rng.random()
    if depth > 3 or pick < 0.45:
        if rng.random() < 0.1:
            return rng.choice(["true", "false", "print"])
        return lua_string(random_bytes(rng)) if rng.random() < 0.5 else lua_number(rng)
    count = rng.randrange(5)
    if pick < 0.7:
        return "{" + ", ".join(lua_value(rng, depth + 1) for _ in range(count)) + "}"
    strings_only = rng.random() < 0.7
    entries: dict[str, str] = {}
    for _ in range(count):
        key, text = lua_key(rng, strings_only)
        if text not in entries:
            entries[text] = f"[{key}] = {lua_value(rng, depth + 1)}"
    return "{" + ", ".join(entries.values()) + "}"


@pytest.mark.parametrize("seed", range(40))
def test_random_values_agree(pair: tuple[LuaState, LuaState], seed: int) -> None:
    rng = random.Random(seed)
    texts = 0
    for _ in range(25):
        source = "return " + lua_value(rng, 0)
        same(pair, source)
        texts += took_text(pair[0], source)
    assert texts > 0  # the encoder took part


def test_a_chunk_that_cannot_name_request_gets_none_built() -> None:
    state = LuaState({}, worker_budget())
    request = {"params": {"n": 5}}
    for source, want in [
        ("return 1", b"1"),  # nothing built, nothing to see
        ("return request.params.n", b"5"),
        ("return _ENV.request.params.n", b"5"),  # a computed way in: all of it is built
        ("return _G['req' .. 'uest'].params.n", b"5"),
        ("return load('return request.params.n')()", b"5"),
    ]:
        chunk = LuaChunk(source, request_keys=request_keys(source))
        value = state.run(chunk, request, None, Binding({}, {}), worker_budget())
        assert orjson.dumps(value) == want, source
