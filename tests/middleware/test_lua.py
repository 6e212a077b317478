"""The `lua` middleware on real Lua 5.4 (lupa): spec/middleware.md §5 and spec/lua.md."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support import SimpleHost
from webpipe.errors import ConfigError, StepError
from webpipe.executor.context import RequestContext
from webpipe.middleware.base import Behavior, RunAsync, StepCall
from webpipe.middleware.lua import LuaMiddleware, request_keys
from webpipe.middleware.lua_state import Binding, Budget, LuaChunk, LuaState
from webpipe.source import Source

JSON = Any


@pytest.fixture
def scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "scripts"
    directory.mkdir()
    monkeypatch.setenv("WEBPIPE_SCRIPTS_DIR", str(directory))
    return directory


def a_host(**others: Any) -> SimpleHost:
    """A host whose Lua budget leaves room for a sandbox worker's cold start (up to a
    second or more on a busy machine; tests of the budget itself set `timeout_ms`)."""
    return SimpleHost(configs={"limits": {"luaTimeoutMs": 10000}}, others=others)


@pytest.fixture
def host(scripts: Path) -> SimpleHost:
    return a_host()


MakeLua = Callable[[SimpleHost], LuaMiddleware]


@pytest.fixture
async def make_lua() -> AsyncIterator[MakeLua]:
    """Middleware closed after the test, with their host's sandbox workers."""
    made: list[LuaMiddleware] = []

    def make(host: SimpleHost) -> LuaMiddleware:
        made.append(LuaMiddleware(host))
        return made[-1]
    yield make
    for mw in made:
        await mw.aclose()
        pool = mw.host.others.get("sandbox")  # type: ignore[attr-defined]
        if pool is not None:
            await pool.aclose()


@pytest.fixture
def lua(host: SimpleHost, make_lua: MakeLua) -> LuaMiddleware:
    return make_lua(host)


async def run(
    mw: LuaMiddleware, code: str, state: JSON = None, ctx: RequestContext | None = None
) -> JSON:
    chunk = mw.prepare(code, None)
    result = await mw.run(state, chunk, StepCall("lua", code, ctx=ctx))
    return result.value


async def lua_error(mw: LuaMiddleware, code: str, state: JSON = None) -> str:
    with pytest.raises(StepError) as info:
        await run(mw, code, state)
    return info.value.message


def run_here(mw: LuaMiddleware, code: str, state: JSON = None) -> JSON:
    """Run on the calling thread's state (no executeSql), to observe per-thread behaviour."""
    budget = Budget(5000, 256, deadline=time.monotonic() + 5)
    return mw.run_here(mw.prepare(code, None), state, {}, Binding({}, {}), budget)


# -- contract ----------------------------------------------------------------------------


async def test_behaviour_is_transform_and_output_is_json(lua: LuaMiddleware) -> None:
    chunk = lua.prepare("return { ok = true }", None)
    result = await lua.run({}, chunk, StepCall("lua", ""))
    assert LuaMiddleware.behavior is Behavior.TRANSFORM
    assert (result.value, result.content_type) == ({"ok": True}, "application/json")


def test_syntax_error_is_a_config_error_at_load(lua: LuaMiddleware) -> None:
    source = Source.from_text("app.wp", "GET /x\n  |> lua: `return = 1`\n")
    span = source.span(12, 27)
    with pytest.raises(ConfigError) as info:
        lua.prepare("return = 1", span)
    assert info.value.message == "Lua syntax error: unexpected symbol near '='"
    assert info.value.span is span
    assert info.value.at == (1, 8, 1)  # line and column of `=` inside the chunk


# -- JSON -> Lua (§5.2) ------------------------------------------------------------------


async def test_json_null_is_nil_and_null_members_disappear(lua: LuaMiddleware) -> None:
    code = """
      local n = 0
      for _ in pairs(request.obj) do n = n + 1 end
      return { top = type(top), members = n, gone = request.obj.a == nil, b = request.obj.b }
    """
    out = await run(lua, code, {"obj": {"a": None, "b": 1}, "top": None})
    assert out == {"top": "nil", "members": 1, "gone": True, "b": 1}
    assert await run(lua, "return request == nil", None) is True


async def test_json_scalars_keep_their_lua_types(lua: LuaMiddleware) -> None:
    code = """
      return { math.type(request.i), math.type(request.f), math.type(request.whole),
               math.type(request.huge), type(request.t), request.f2, #request.s }
    """
    state = {"i": 7, "f": 1.5, "whole": 2.0, "huge": 2**64, "t": True, "f2": False, "s": "é"}
    out = await run(lua, code, state)
    assert out == ["integer", "float", "float", "float", "boolean", False, 2]


async def test_json_arrays_are_sequences_and_objects_have_string_keys(
    lua: LuaMiddleware,
) -> None:
    code = """
      return { #request.a, request.a[1], request.a[3], request.holes[2] == nil,
               request.holes[3], request.obj["1"], request.obj[1] == nil }
    """
    state = {"a": [10, 20, 30], "holes": [1, None, 3], "obj": {"1": "one"}}
    assert await run(lua, code, state) == [3, 10, 30, True, 3, "one", True]


# -- Lua -> JSON (§5.2) ------------------------------------------------------------------


async def test_nothing_or_nil_returned_is_null(lua: LuaMiddleware) -> None:
    assert await run(lua, "local x = 1", {"a": 1}) is None
    assert await run(lua, "return nil", {"a": 1}) is None


async def test_numbers_keep_integer_float_distinction(lua: LuaMiddleware) -> None:
    out = await run(lua, "return { 7, 5.0, 2^53, 0/0, 1/0, -1/0, math.maxinteger }")
    assert out == [7, 5.0, 9007199254740992.0, 0, 0, 0, 2**63 - 1]
    assert [type(v) for v in out] == [int, float, float, int, int, int, int]


async def test_strings_and_invalid_utf8(lua: LuaMiddleware) -> None:
    out = await run(lua, r'return { "héllo", "\255\254", true, false }')
    assert out == ["héllo", "[invalid utf8]", True, False]


async def test_tables_become_arrays_only_for_keys_1_to_n(lua: LuaMiddleware) -> None:
    code = """
      return { seq = {1, 2, 3}, empty = {}, holes = {10, nil, 30}, sparse = {[2] = "b"},
               mixed = {1, x = 2}, neg = {[-1] = "m"}, zero = {[0] = "z"} }
    """
    assert await run(lua, code) == {
        "empty": {},
        "holes": {"1": 10, "3": 30},
        "mixed": {"1": 1, "x": 2},
        "neg": {"-1": "m"},
        "seq": [1, 2, 3],
        "sparse": {"2": "b"},
        "zero": {"0": "z"},
    }


async def test_empty_array_round_trips_as_empty_object(lua: LuaMiddleware) -> None:
    assert await run(lua, "return request", {"list": [], "obj": {}}) == {"list": {}, "obj": {}}


async def test_odd_keys_float_boolean_invalid_utf8(lua: LuaMiddleware) -> None:
    code = r'return { [1.5] = "f", [2^63] = "big", [true] = "b", ["\255"] = "k" }'
    assert await run(lua, code) == {
        "1.5": "f",
        "9223372036854776000": "big",
        "[unsupported key]": "b",
        "[invalid key]": "k",
    }


async def test_object_keys_come_out_sorted(lua: LuaMiddleware) -> None:
    out = await run(lua, "return { zeta = 1, alpha = 2, mid = 3, [10] = 4 }")
    assert list(out) == ["10", "alpha", "mid", "zeta"]


async def test_functions_and_threads_are_unsupported(lua: LuaMiddleware) -> None:
    out = await run(lua, "return { print, coroutine.create(print), function() end }")
    assert out == ["[unsupported lua type]"] * 3


async def test_nesting_deeper_than_20_is_cut(lua: LuaMiddleware) -> None:
    code = "local t = {} local cur = t for i = 1, 25 do cur.n = {} cur = cur.n end return t"
    out = await run(lua, code)
    for _ in range(21):
        out = out["n"]
    assert out == "[max depth exceeded]"
    cyclic = await run(lua, "local t = {} t.self = t return t")
    for _ in range(20):
        cyclic = cyclic["self"]
    assert cyclic == {"self": "[max depth exceeded]"}


async def test_only_the_first_return_value_is_used(lua: LuaMiddleware) -> None:
    assert await run(lua, "return 1, 2, 3") == 1


async def test_domain_envelope_passes_through(lua: LuaMiddleware) -> None:
    code = 'return { errors = { { type = "sqlError", message = "no" } } }'
    assert await run(lua, code) == {"errors": [{"type": "sqlError", "message": "no"}]}


# -- context, flags, conditions ----------------------------------------------------------


async def test_context_is_the_request_context_snapshot(lua: LuaMiddleware) -> None:
    ctx = RequestContext(request={"path": "/x"}, env_name="production", flags={"beta": True},
                         conditions={"late": False}, args=["a1"])
    code = """
      return { context.env, context.request.path, context.flags.beta,
               context.conditions.late, context.args[1], next(context.options) == nil }
    """
    assert await run(lua, code, {}, ctx) == ["production", "/x", True, False, "a1", True]


async def test_context_is_only_built_when_the_chunk_names_it(lua: LuaMiddleware) -> None:
    # spec/lua.md: `context` is skipped when the word does not occur in the source
    assert await run(lua, 'return type(_ENV["con" .. "text"])') == "nil"
    assert await run(lua, 'return type(_ENV["context"])') == "table"


async def test_set_flag_writes_request_flags_get_flag_reads_snapshot(
    lua: LuaMiddleware,
) -> None:
    ctx = RequestContext(flags={"on": True})
    code = """
      setFlag("on", false)
      setFlag("new", true)
      return { getFlag("on"), getFlag("new"), getFlag("unknown"), context.flags.new == nil }
    """
    assert await run(lua, code, {}, ctx) == [True, False, False, True]
    assert ctx.flags == {"on": False, "new": True}
    assert await run(lua, 'return { getFlag("on"), getFlag("new") }', {}, ctx) == [False, True]


async def test_flag_values_use_lua_truthiness(lua: LuaMiddleware) -> None:
    ctx = RequestContext()
    code = 'setFlag("zero", 0) setFlag("nil") setFlag("str", "no") setFlag(42, false)'
    await run(lua, code, {}, ctx)
    assert ctx.flags == {"zero": True, "nil": False, "str": True, "42": False}


async def test_conditions_are_a_separate_namespace(lua: LuaMiddleware) -> None:
    ctx = RequestContext(conditions={"late": True})
    code = 'setWhen("big", true) return { getWhen("late"), getWhen("big"), getFlag("late") }'
    assert await run(lua, code, {}, ctx) == [True, False, False]
    assert (ctx.conditions, ctx.flags) == ({"late": True, "big": True}, {})


async def test_writes_made_before_an_error_are_kept(lua: LuaMiddleware) -> None:
    ctx = RequestContext()
    with pytest.raises(StepError):
        await run(lua, 'setFlag("a", true) error("stop")', {}, ctx)
    assert ctx.flags == {"a": True}


async def test_flag_name_must_be_a_string(lua: LuaMiddleware) -> None:
    message = await lua_error(lua, "getFlag({})")
    assert message == (
        "Lua execution error: lua:1: bad argument #1 to 'getFlag' (string expected, got table)"
    )


async def test_get_env(lua: LuaMiddleware, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WP_LUA_TEST", "v1")
    monkeypatch.delenv("WP_LUA_UNSET", raising=False)
    assert await run(lua, 'return { getEnv("WP_LUA_TEST"), getEnv("WP_LUA_UNSET") }') == ["v1"]


# -- scripts directory -------------------------------------------------------------------


async def test_scripts_are_globals_and_require_script_reloads(
    scripts: Path,
    make_lua: MakeLua,
) -> None:
    (scripts / "fmt.lua").write_text("return { shout = function(s) return s:upper() end }")
    (scripts / "counter.lua").write_text("calls = (calls or 0) + 1 return calls")
    (scripts / "notes.txt").write_text("return 1")
    mw = make_lua(a_host())
    out = await run(mw, """
      local first = counter
      local again = requireScript("counter")
      return { fmt.shout("hi"), first, again, counter, requireScript("fmt").shout("x"),
               notes == nil, requireScript("notes") == nil }
    """)
    assert out == ["HI", 1, 2, 2, "X", True, True]


async def test_require_script_cannot_leave_the_directory(scripts: Path, make_lua: MakeLua) -> None:
    (scripts.parent / "secret.lua").write_text("return 'secret'")
    (scripts / "sub").mkdir()
    (scripts / "sub" / "inner.lua").write_text("return 'inner'")
    (scripts / "link.lua").symlink_to(scripts.parent / "secret.lua")
    mw = make_lua(a_host())
    out = await run(mw, """
      return { requireScript("../secret") == nil, requireScript("sub/inner") == nil,
               requireScript("link") == nil, link == nil, secret == nil }
    """)
    assert out == [True, True, True, True, True]
    assert sorted(mw.scripts) == []


async def test_require_serves_builtins_and_scripts_only(scripts: Path, make_lua: MakeLua) -> None:
    (scripts / "util.lua").write_text("return { two = 2 }")
    mw = make_lua(a_host())
    # a script module is the value the script produced when the state was made (its global)
    code = 'return { require("util").two, require("string") == string, require("util") == util }'
    assert await run(mw, code) == [2, True, True]
    assert await lua_error(mw, 'require("io")') == (
        "Lua execution error: lua:1: module 'io' not found (only scripts in WEBPIPE_SCRIPTS_DIR)"
    )


async def test_failing_script_makes_runs_fail(scripts: Path, make_lua: MakeLua) -> None:
    (scripts / "bad.lua").write_text('error("oops")')
    mw = make_lua(a_host())
    assert await lua_error(mw, "return 1") == "Lua script 'bad' execution error: bad:1: oops"


# -- sandbox -----------------------------------------------------------------------------


async def test_dangerous_globals_are_removed(lua: LuaMiddleware) -> None:
    code = """
      local gone = {}
      for _, v in ipairs({ io, debug, package, dofile, loadfile, python, os.execute,
                           os.exit, os.remove, os.rename, os.tmpname, os.setlocale }) do
        gone[#gone + 1] = v
      end
      return #gone
    """
    assert await run(lua, code) == 0


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ('os.execute("id")', "lua:1: attempt to call a nil value (field 'execute')"),
        ('io.open("/etc/passwd")', "lua:1: attempt to index a nil value (global 'io')"),
        ('loadfile("/etc/passwd")', "lua:1: attempt to call a nil value (global 'loadfile')"),
        ('dofile("/etc/passwd")', "lua:1: attempt to call a nil value (global 'dofile')"),
        ("debug.getinfo(1)", "lua:1: attempt to index a nil value (global 'debug')"),
        ('package.loadlib("x", "y")', "lua:1: attempt to index a nil value (global 'package')"),
    ],
)
async def test_sandbox_refusals(lua: LuaMiddleware, code: str, message: str) -> None:
    assert await lua_error(lua, code) == f"Lua execution error: {message}"


async def test_time_functions_stay_available(lua: LuaMiddleware) -> None:
    code = 'return { math.type(os.time()), type(os.clock()), os.date("!%Y-%m-%d", 86400) }'
    assert await run(lua, code) == ["integer", "number", "1970-01-02"]


async def test_load_accepts_text_but_not_bytecode(lua: LuaMiddleware) -> None:
    code = """
      local f, err = load(string.dump(function() return 1 end))
      local env = { x = 41 }
      return { f == nil, err, load("return 1 + 1")(), load("return x + 1", "c", "b", env)() }
    """
    out = await run(lua, code)
    assert out == [True, "attempt to load a binary chunk (mode is 't')", 2, 42]


async def test_no_python_object_is_reachable(lua: LuaMiddleware) -> None:
    code = f"local names = '{BASE_NAMES}'" + """
      local seen, found = {}, {}
      local function walk(v)
        if type(v) == "userdata" then found[#found + 1] = tostring(v) end
        if type(v) ~= "table" or seen[v] then return end
        seen[v] = true
        for k, x in pairs(v) do walk(k) walk(x) end
        walk(getmetatable(v))
      end
      for name in names:gmatch("%S+") do walk(_ENV[name]) end
      walk(_G) walk(getmetatable(_G)) walk(getmetatable(""))
      return #found
    """
    assert await run(lua, code) == 0


BASE_NAMES = (
    "assert collectgarbage error getmetatable ipairs next pairs pcall print rawequal rawget "
    "rawlen rawset select setmetatable tonumber tostring type xpcall load require "
    "string table math utf8 coroutine os getFlag setFlag getWhen setWhen getEnv executeSql "
    "requireScript"
)


async def test_nothing_a_run_changes_is_seen_by_a_later_run(lua: LuaMiddleware) -> None:
    # same thread → same Lua state; every run still starts from the same globals
    changes = """
      leak = 1; _G.leak2 = 2; string.leak3 = 3; math.floor = tostring; table.insert(table, 1)
      load("leak4 = 4")(); rawset(string, "leak5", 5); require("os").leak6 = 6
      assert(not pcall(setmetatable, string, {}))
      assert(getmetatable("") == false and getmetatable(_ENV) == false)
      return { leak, string.leak3, math.floor(1.5), leak4, string.leak5 }
    """
    assert run_here(lua, changes) == [1, 3, "1.5", 4, 5]
    after = """
      return { leak == nil, leak2 == nil, string.leak3 == nil, math.floor(1.5), #table,
               leak4 == nil, string.leak5 == nil, os.leak6 == nil, ("x"):upper() }
    """
    assert run_here(lua, after) == [True, True, True, 1, 0, True, True, True, "X"]
    assert lua._local.state is not None and not lua._local.state.dirty


async def test_gc_switches_and_finalizers_are_refused(lua: LuaMiddleware) -> None:
    assert await lua_error(lua, 'collectgarbage("stop")') == (
        "Lua execution error: lua:1: collectgarbage('stop') is not available in webpipe")
    assert await lua_error(lua, "setmetatable({}, { __gc = function() end })") == (
        "Lua execution error: lua:1: __gc metamethods are not available in webpipe")
    assert await run(lua, 'collectgarbage("collect") return collectgarbage("isrunning")')


async def test_script_state_changed_by_a_run_is_rebuilt(scripts: Path, make_lua: MakeLua) -> None:
    (scripts / "store.lua").write_text("return { items = {} }")
    mw = make_lua(a_host())
    code = "table.insert(store.items, request.n) return #store.items"
    assert run_here(mw, code, {"n": 1}) == 1
    assert run_here(mw, code, {"n": 2}) == 1  # the changed state was dropped


# -- errors (§5.4) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ('error("boom")', "lua:1: boom"),
        ('error("boom", 0)', "boom"),
        ("error(42)", "42"),
        ("error({})", "(error object is a table value)"),
        ('error(setmetatable({}, { __tostring = function() return "custom" end }))', "custom"),
        ("local t\nreturn t.x", "lua:2: attempt to index a nil value (local 't')"),
    ],
)
async def test_runtime_error_messages(lua: LuaMiddleware, code: str, message: str) -> None:
    assert await lua_error(lua, code) == f"Lua execution error: {message}"


# -- executeSql (§5.3): the seam to the pg middleware -------------------------------------


class RecordingPg:
    """A real object with pg's `execute_sql` coroutine; answers with fixed rows."""

    def __init__(self, fail: Exception | None = None, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, list[JSON]]] = []
        self.threads: set[int] = set()
        self.fail = fail
        self.delay = delay
        self.active = 0
        self.max_active = 0

    async def execute_sql(self, sql: str, params: list[JSON]) -> dict[str, JSON]:
        self.calls.append((sql, params))
        self.threads.add(threading.get_ident())
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        if self.fail is not None:
            raise self.fail
        return {"rows": [{"id": params[0] if params else 1, "name": "a", "note": None}],
                "rowCount": 1}


async def test_execute_sql_returns_rows_and_converts_params(
    host: SimpleHost,
    make_lua: MakeLua,
) -> None:
    pg = host.others["pg"] = RecordingPg()
    mw = make_lua(host)
    code = """
      local res, err = executeSql("SELECT $1", { 7, 2.5, "s", true, {}, {1, 2}, nil, 9 })
      local row = res.rows[1]
      return { count = res.rowCount, id = row.id, name = row.name,
               noteAbsent = row.note == nil, err = err }
    """
    out = await run(mw, code)
    assert out == {"count": 1, "id": 7, "name": "a", "noteAbsent": True}
    assert pg.calls == [("SELECT $1", [7, 2.5, "s", True, {}, [1, 2]])]
    assert pg.threads == {threading.get_ident()}  # the coroutine ran on the event loop


async def test_execute_sql_without_params(host: SimpleHost, make_lua: MakeLua) -> None:
    pg = host.others["pg"] = RecordingPg()
    out = await run(make_lua(host), 'return executeSql("SELECT 1").rows[1].id')
    assert (out, pg.calls) == (1, [("SELECT 1", [])])


async def test_execute_sql_without_database(lua: LuaMiddleware) -> None:
    code = 'local r, e = executeSql("SELECT 1", 5) return { r == nil, e }'
    assert await run(lua, code) == [True, "database not configured"]


async def test_execute_sql_params_must_be_a_table(host: SimpleHost, make_lua: MakeLua) -> None:
    pg = host.others["pg"] = RecordingPg()
    code = 'local r, e = executeSql("SELECT 1", "x") return { r == nil, e }'
    assert await run(make_lua(host), code) == [True, "params must be a table/array"]
    assert pg.calls == []


@pytest.mark.parametrize(
    ("fail", "text"),
    [
        (StepError('relation "nope" does not exist'), 'relation "nope" does not exist'),
        (RuntimeError("connection reset"), "connection reset"),
    ],
)
async def test_execute_sql_failure_is_the_second_value(
    host: SimpleHost, fail: Exception, text: str,
    make_lua: MakeLua,
) -> None:
    host.others["pg"] = RecordingPg(fail=fail)
    code = 'local r, e = executeSql("SELECT * FROM nope") return { r == nil, e }'
    assert await run(make_lua(host), code) == [True, text]


async def test_execute_sql_needs_sql_text(lua: LuaMiddleware) -> None:
    assert await lua_error(lua, "executeSql(nil)") == (
        "Lua execution error: lua:1: bad argument #1 to 'executeSql' (string expected, got nil)"
    )


# -- concurrency -------------------------------------------------------------------------


async def test_concurrent_runs_are_independent(host: SimpleHost, make_lua: MakeLua) -> None:
    pg = host.others["pg"] = RecordingPg(delay=0.05)
    mw = make_lua(host)
    chunk = mw.prepare("""
      local res = executeSql("SELECT $1", { request.n })
      setFlag("n" .. request.n, true)
      scratch = request.n  -- sandbox global: must not be seen by the other runs
      return { n = request.n, id = res.rows[1].id, flag = getFlag("n" .. request.n) }
    """, None)
    ctxs = [RequestContext() for _ in range(6)]
    results = await asyncio.gather(*(
        mw.run({"n": i}, chunk, StepCall("lua", "", ctx=ctx)) for i, ctx in enumerate(ctxs)
    ))
    assert [r.value for r in results] == [{"n": i, "id": i, "flag": False} for i in range(6)]
    assert [ctx.flags for ctx in ctxs] == [{f"n{i}": True} for i in range(6)]
    assert pg.max_active >= 2  # the runs really overlapped


def test_runs_on_many_threads_give_their_own_results(lua: LuaMiddleware) -> None:
    code = "local s = 0 for i = 1, 20000 do s = s + request.n end return s"
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda n: run_here(lua, code, {"n": n}), range(16)))
    assert results == [n * 20000 for n in range(16)]


async def test_aclose_drops_states_and_runs_still_work(lua: LuaMiddleware) -> None:
    assert run_here(lua, "return 1") == 1
    before = lua._local.state
    await lua.aclose()
    assert run_here(lua, "return 2") == 2
    assert lua._local.state is not before  # a fresh state


# -- where a run happens: inline under a budget, else a worker thread -----------------------


async def test_small_chunk_runs_on_the_loop_thread(
        lua: LuaMiddleware, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBPIPE_LUA_COMPILED", "0")  # the Lua tier (the chunk is compilable)
    chunk = lua.prepare("return { n = request.n * 2 }", None)
    assert (await lua.run({"n": 21}, chunk, StepCall("lua", ""))).value == {"n": 42}
    # the loop thread now owns a Lua state; no worker was needed
    assert getattr(lua._local, "state", None) is not None
    assert chunk not in lua._in_worker


async def test_chunk_over_the_budget_is_rerun_on_a_worker_and_stays_there(
    lua: LuaMiddleware,
) -> None:
    code = ("setFlag('seen', true) local s = 0 "
            "for i = 1, request.n do s = s + i % 7 end return { s = s }")
    chunk = lua.prepare(code, None)
    ctx = RequestContext()
    n = 3_000_000  # far more than a millisecond of Lua
    value = (await lua.run({"n": n}, chunk, StepCall("lua", "", ctx=ctx))).value
    full_cycles, rest = divmod(n, 7)
    assert value == {"s": full_cycles * 21 + sum(range(1, rest + 1))}
    assert chunk in lua._in_worker
    assert ctx.flags == {"seen": True}  # applied once, from the worker's run
    # a later small input still runs on a worker: the chunk is known to be heavy
    assert (await lua.run({"n": 7}, chunk, StepCall("lua", ""))).value == {"s": 21}


async def test_pcall_cannot_keep_an_over_budget_run_on_the_loop(lua: LuaMiddleware) -> None:
    code = """
      local s = 0
      local ok = pcall(function() for i = 1, request.n do s = s + 1 end end)
      return { s = s, ok = ok }
    """
    chunk = lua.prepare(code, None)
    value = (await lua.run({"n": 3_000_000}, chunk, StepCall("lua", ""))).value
    assert value == {"s": 3_000_000, "ok": True}
    assert chunk in lua._in_worker


async def test_execute_sql_through_a_computed_name_is_rerun_on_a_worker(
    host: SimpleHost, make_lua: MakeLua,
) -> None:
    pg = host.others["pg"] = RecordingPg()
    mw = make_lua(host)
    code = 'local f = _G["execute" .. "Sql"] local r, e = f("SELECT 1") return { r.rows[1].id, e }'
    chunk = mw.prepare(code, None)
    assert (await mw.run({}, chunk, StepCall("lua", ""))).value == [1]
    assert pg.calls == [("SELECT 1", [])]
    assert chunk in mw._in_worker


# --- reading only what a chunk can read; results in one crossing ------------------------


@pytest.mark.parametrize(("source", "keys"), [
    ("return request.params.n", {"params"}),
    ("return { a = request.query.a, b = request . body }", {"query", "body"}),
    ("return 1", set()),
    ("local r = request return r.params", None),          # the table escapes
    ("return request['params']", None),                   # indexed by an expression
    ("return request:len()", None),                       # a method call
    ("return request..'x'", None),                        # concatenation, not a field
    ("return _ENV.request.params", None),                 # computed names possible
    ("return _G['req'..'uest'].params", None),
    ("return load('return request')()", None),
    ("-- request\nreturn request.params", None),          # a comment counts: cautious
    ("local my_request = 1 return request.x", {"x"}),     # only the whole word
])
def test_request_keys_are_read_from_the_text(source: str, keys: set[str] | None) -> None:
    found = request_keys(source)
    assert (None if found is None else set(found)) == keys


async def test_a_chunk_sees_the_keys_it_reads_and_a_whole_request_when_it_escapes(
        lua: LuaMiddleware) -> None:
    state = {"params": {"n": 3}, "query": {"q": "x"}, "headers": {"h": "1"}}
    assert await run(lua, "return request.params.n * 2", state) == 6
    assert await run(lua, "local r = request return r.headers.h .. r.query.q", state) == "1x"
    count = "local n = 0 for _ in pairs(request) do n = n + 1 end return n"
    assert await run(lua, count, state) == 3


async def test_results_longer_than_one_crossing_come_back_whole(lua: LuaMiddleware) -> None:
    out = await run(lua, "local t = {} for i = 1, 9000 do t[i] = { i, tostring(i) } end "
                         "return { items = t, n = #t }")
    assert out["n"] == 9000
    assert out["items"][0] == [1, "1"]
    assert out["items"][8999] == [9000, "9000"]
    assert len(out["items"]) == 9000


async def test_scripts_too_heavy_for_the_loop_load_in_workers(
    scripts: Path,
    make_lua: MakeLua,
) -> None:
    (scripts / "slow.lua").write_text(
        "local s = 0 for i = 1, 3000000 do s = s + i end return { total = s }")
    mw = make_lua(a_host())
    assert await run(mw, "return slow.total") == 4500001500000
    assert mw._workers_only  # the loop gave up making its own state
    assert await run(mw, "return 1") == 1


async def test_a_looping_script_fails_every_run_within_the_budget(
    scripts: Path,
    make_lua: MakeLua,
) -> None:
    (scripts / "stuck.lua").write_text("while true do pcall(function() while true do end end) end")
    mw = make_lua(a_host())
    with pytest.raises(StepError) as info:  # a long budget: a worker may be slow to start
        await mw.run({}, mw.prepare("return 1", None), StepCall("lua", "", timeout_ms=3000))
    assert info.value.message == "Lua script 'stuck' execution error: time budget exceeded"


async def test_a_huge_error_message_is_cut(lua: LuaMiddleware) -> None:
    message = await lua_error(lua, "error(string.rep('x', 1000000), 0)")
    assert message == "Lua execution error: " + "x" * 4096


@pytest.mark.parametrize("code", [
    "return { string.find(string.rep('a', 5000), '.-.-.-.-b') }",
    "local t = { string.byte(string.rep('a', 30000), 1, -1) } table.sort(t) return #t",
    "return load(string.rep('x = 1 ', 20000)) ~= nil",
])
async def test_long_c_calls_leave_the_loop(lua: LuaMiddleware, code: str) -> None:
    chunk = lua.prepare(code, None)
    try:
        await lua.run({}, chunk, StepCall("lua", "", timeout_ms=3000))
    except StepError as exc:  # the pattern: a worker is killed past its budget
        assert exc.error_type == "timeout"
    assert chunk in lua._in_worker


async def test_step_timeout_overrides_the_budget(lua: LuaMiddleware) -> None:
    chunk = lua.prepare("while true do end", None)
    start = time.monotonic()
    with pytest.raises(StepError) as info:
        await lua.run({}, chunk, StepCall("lua", "", timeout_ms=200))
    assert (info.value.error_type, info.value.message) == (
        "timeout", "Lua chunk exceeded its 200 ms time budget")
    assert time.monotonic() - start < 0.2 + 3.0


@pytest.mark.parametrize("code", [
    "local big = string.rep('x', 1500000) while true do local u = big .. big end",
    "local big = string.rep('x', 3000000) while true do local u = big:upper() end",
    "table.move({}, 1, 2^40, 2)",
    "local t = {} for i = 1, 200000 do t[i] = i end "
    "while true do table.insert(t, 1, 0) table.remove(t, 1) end",
])
def test_the_loop_gives_up_on_costly_instructions_at_once(lua: LuaMiddleware, code: str) -> None:
    # each of these stalled the loop for seconds (or for ever) between two hook firings
    chunk = lua.prepare(code, None)
    start = time.monotonic()
    with pytest.raises(RunAsync):
        lua.run_sync({}, chunk, StepCall("lua", ""))
    assert time.monotonic() - start < 0.5  # the inline budget is 1 ms; 26 s before
    assert chunk in lua._in_worker


async def test_rep_of_an_empty_string_is_empty(lua: LuaMiddleware) -> None:
    assert await run(lua, "return { #string.rep('', 2^60), #string.rep('', 2^60, '') }") == [0, 0]


async def test_a_request_larger_than_the_inline_allowance_does_not_abort_the_process(
    lua: LuaMiddleware,
) -> None:
    # lupa builds the request's tables with unprotected Lua API calls: under the allocator
    # limit, a failed allocation there was "PANIC: unprotected error" and the server died
    big = {"items": [{"name": "x" * 100, "n": i} for i in range(60000)]}  # ~10 MB in Lua
    assert await run(lua, "return #request.items", big) == 60000
    code = "local t = {} for i, v in ipairs(request.items) do t[i] = v.name .. i end return #t"
    assert await run(lua, code, big) == 60000


def test_an_input_too_big_to_convert_on_the_loop_goes_to_a_worker(
        lua: LuaMiddleware, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBPIPE_LUA_COMPILED", "0")  # the Lua tier (the chunk is compilable)
    chunk = lua.prepare("return #request.items", None)
    big = {"items": ["x" * 1000] * 300}  # ~300 KB of JSON: ~12 ms of table building
    with pytest.raises(RunAsync):
        lua.run_sync(big, chunk, StepCall("lua", ""))
    assert chunk not in lua._in_worker  # only that input: a small one still runs inline
    assert lua.run_sync({"items": [1, 2]}, chunk, StepCall("lua", "")).value == 2


RUNAWAYS = [
    "while true do pcall(function() while true do end end) end",
    "while true do xpcall(function() while true do end end, function() while true do end end) end",
    "while true do coroutine.wrap(function() while true do end end)() end",
    "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
    "error(setmetatable({}, { __tostring = function() while true do end end }))",
    "while true do pcall(function() local x <close> = setmetatable({}, "
    "{ __close = function() while true do end end }) error('x') end) end",
    "while true do load(function() while true do end end) end",
    "while true do pcall(string.rep, 'x', 2^30) end",
]


@pytest.mark.parametrize("code", RUNAWAYS)
def test_the_hook_stops_what_a_script_tries_to_outlive_it_with(code: str) -> None:
    # on a state directly: no worker to kill, only the hook can end these runs
    state = LuaState({}, Budget(200, 64, deadline=time.monotonic() + 5))
    budget = Budget(200, 64, deadline=time.monotonic() + 0.2)
    with pytest.raises(StepError) as info:
        state.run(LuaChunk(code), None, None, Binding({}, {}), budget)
    assert info.value.error_type == "timeout"
    assert state.run(LuaChunk("return 7"), None, None, Binding({}, {}),
                     Budget(200, 64, deadline=time.monotonic() + 5)) == 7


@pytest.mark.parametrize("code", RUNAWAYS)
async def test_no_handler_outlives_the_time_budget(lua: LuaMiddleware, code: str) -> None:
    chunk = lua.prepare(code, None)
    start = time.monotonic()
    with pytest.raises(StepError) as info:
        await lua.run({}, chunk, StepCall("lua", "", timeout_ms=300))
    assert (info.value.error_type, info.value.message) == (
        "timeout", "Lua chunk exceeded its 300 ms time budget")
    assert time.monotonic() - start < 0.3 + 5.0  # a cold worker start on a busy machine
    assert chunk in lua._in_worker  # the loop gave up on it within its own budget first


async def test_a_chunk_in_the_compiled_subset_needs_no_lua_state(lua: LuaMiddleware) -> None:
    """spec/lua.md "Compiled subset": answered by its Python form, even for an input too
    big to convert on the loop (nothing is converted)."""
    chunk = lua.prepare("return #request.items", None)
    assert chunk.compiled is not None
    big = {"items": ["x" * 1000] * 300}
    assert lua.run_sync(big, chunk, StepCall("lua", "")).value == 300
    assert getattr(lua._local, "state", None) is None
    assert lua.run_sync({"items": [1, None]}, chunk, StepCall("lua", "")).value in (1, 2)
    assert getattr(lua._local, "state", None) is not None  # a hole: Lua answered
