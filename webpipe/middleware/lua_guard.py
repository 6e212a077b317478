"""The bounding half of the Lua prelude (spec/lua.md "Bounds", "Fresh environment"): the
budget hook, the protected-call wrappers a script cannot use to outlive it, the guards on
long C calls, the per-run environment, and the check that a run left the state's shared
tables as it found them (with a scripts directory).

It is Lua text appended to `lua_prelude.SANDBOX`, so it shares that chunk's locals (`G`,
`hooks`, `message`, `flatten`, the raw `pcall`/`xpcall`/`sethook`, ...). `GUARD` holds the
bounds; `ENTRY`, after `lua_json.ENCODER`, the run itself, and it ends the prelude by
returning the entry points `LuaState` calls.
"""

from __future__ import annotations

GUARD = r"""
-- Budget. A count hook fires every `count` instructions in every coroutine of the state:
-- INLINE_COUNT on the event loop (one instruction can cost a millisecond, e.g. `..` of two
-- MB-long strings, so the loop must look often; each look reads the CPU clock, a system
-- call, so not every 100: that cost ~3 µs per small run), WORKER_COUNT in a worker (where
-- the pool's kill bounds what the hook misses). It is set only while script code runs (the
-- chunk, the scripts, the flattening of a result, see `body`): with a count hook set, Lua
-- checks it at every instruction, which made the prelude's own code around a small run
-- ~40 % slower. It acts only `inside` a run's protected body. A run sets `clock`
-- (os.clock for an inline run, the host's monotonic clock otherwise) and either an absolute
-- `limit_at` or a `budget_left` counted from the hook's first firing (a short chunk never
-- reads the clock). Once over, `aborting` is set and stays set until the run returns: every
-- later firing raises again, and every protected call (pcall, xpcall, coroutine.resume,
-- close and wrap, load's reader) re-raises when it sees it, so no handler can keep the run
-- alive. Message handlers are skipped while aborting (a looping __tostring or xpcall
-- handler cannot outlive the budget either).
local INLINE_COUNT, WORKER_COUNT = 500, 10000
local count = WORKER_COUNT
local ABORT = "webpipe: run aborted"
local inside = false
local now = hooks.now

local function budget_hook()
  if not inside then return end
  if aborting then error(ABORT, 0) end
  local t = clock()
  if limit_at == nil then
    limit_at = t + budget_left
  elseif t > limit_at then
    aborting = "time"
    error(ABORT, 0)
  end
end

local function pass(ok, ...)
  if aborting then error(ABORT, 0) end
  return ok, ...
end

G.pcall = function(f, ...) return pass(rawpcall(f, ...)) end
G.xpcall = function(f, handler, ...)
  return pass(rawxpcall(f, function(err)
    if aborting then return err end
    return handler(err)
  end, ...))
end

local co_create, co_resume, co_close, co_status =
  coroutine.create, coroutine.resume, coroutine.close, coroutine.status
-- a new coroutine inherits the C hook but not debug.sethook's Lua function: set it anew
local function hooked(co) sethook(co, budget_hook, "", count); return co end
local function wrapped_result(co, ok, ...)
  if aborting then error(ABORT, 0) end
  if ok then return ... end
  local err = ...
  if co_status(co) == "dead" then co_close(co) end
  if type(err) == "string" then error(err, 2) end
  error(err, 0)
end
coroutine.create = function(f) return hooked(co_create(f)) end
coroutine.resume = function(co, ...) return pass(co_resume(co, ...)) end
coroutine.close = function(co) return pass(co_close(co)) end
coroutine.wrap = function(f)
  local co = hooked(co_create(f))
  return function(...) return wrapped_result(co, co_resume(co, ...)) end
end

-- Some library calls run long in C, where no hook fires: a backtracking pattern can take
-- hours, compiling a huge `load` text or sorting a long table takes a while. An inline run
-- (on the event loop) gives up on such a call past C_WORK steps (patterns: about
-- len ^ (unbounded quantifiers + 1), one less when anchored); the run is redone in a worker,
-- where it can be killed.
local C_WORK = 1e7
local LOAD_TEXT, SORT_ITEMS = 65536, 20000
local str_find, str_match, str_gmatch, str_gsub = string.find, string.match,
  string.gmatch, string.gsub
local str_sub, rawlen, tbl_sort = string.sub, rawlen, table.sort
local inline = false  -- this run is the event loop's attempt
local function too_slow()
  aborting = "slow"
  error(ABORT, 0)
end
local function costly(s, p, plain)
  if not (inside and inline) or plain or type(s) ~= "string" or type(p) ~= "string" then
    return
  end
  local _, q = str_gsub(p, "[%*%+%-]", "")
  if str_sub(p, 1, 1) ~= "^" then q = q + 1 end
  if (#s) ^ q > C_WORK then too_slow() end
end
string.find = function(s, p, i, plain) costly(s, p, plain); return str_find(s, p, i, plain) end
string.match = function(s, p, i) costly(s, p); return str_match(s, p, i) end
string.gmatch = function(s, p, i) costly(s, p); return str_gmatch(s, p, i) end
string.gsub = function(s, p, r, n) costly(s, p); return str_gsub(s, p, r, n) end
local str_rep, tbl_move = string.rep, table.move
-- `rep` of an empty string and separator loops n times in C doing nothing (2^60 is forever)
string.rep = function(s, n, sep)
  if type(s) == "string" and (sep == nil or type(sep) == "string")
     and #s + #(sep or "") == 0 and tonumber(n) ~= nil then
    return ""
  end
  return str_rep(s, n, sep)
end
-- `move` over absent keys allocates nothing: only the count bounds it
table.move = function(a1, f, e, t, a2)
  local first, last = tonumber(f), tonumber(e)
  if inside and inline and first and last and last - first > SORT_ITEMS then
    too_slow()
  end
  return tbl_move(a1, f, e, t, a2)
end
table.sort = function(t, f)
  if inside and inline and type(t) == "table" and rawlen(t) > SORT_ITEMS then too_slow() end
  return tbl_sort(t, f)
end
-- `load` catches an error raised in its reader function: re-raised while aborting
local sandbox_load = load
G.load = function(chunk, ...)
  if inside and inline and type(chunk) == "string" and #chunk > LOAD_TEXT then too_slow() end
  return pass(sandbox_load(chunk, ...))
end

-- GC switches would outlive the run (a stopped collector, another mode): refused.
local rawcollect = collectgarbage
local GC_ALLOWED = {collect = true, count = true, step = true, isrunning = true}
G.collectgarbage = function(opt, ...)
  if opt == nil or GC_ALLOWED[opt] then return rawcollect(opt, ...) end
  error("collectgarbage('" .. tostring(opt) .. "') is not available in webpipe", 2)
end

-- A finalizer runs whenever the collector gets to it, possibly outside any budget.
local rawsetmetatable = setmetatable
G.setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not available in webpipe", 2)
  end
  return rawsetmetatable(t, mt)
end

local rawseed, seeded = math.randomseed, false
math.randomseed = function(...) seeded = true; return rawseed(...) end

-- Fresh environment. A chunk's `_ENV` is a new table per run whose lookups fall through to
-- BASE, a copy of the globals made once the scripts ran, without the libraries. A library
-- name resolves to a per-run proxy (its own table, reads fall through to the library, writes
-- stay in the proxy), cached in the run's `_ENV`. BASE, the sandbox metatable, the proxies'
-- metatables and the string metatable are protected (`__metatable = false`), `load` and
-- `require` hand out the run's environment and proxies, so without a scripts directory a
-- chunk can reach no table a later run sees. Scripts can (they run with the real globals
-- and may hand their tables to a chunk): then every run ends with `changed()` (below).
local BASE, LIBRARY_META = {}, {}
for name, lib in next, LIBRARIES do
  LIBRARY_META[name] = {__index = lib, __metatable = false,
                        __pairs = function() return next, lib, nil end}
end
rawsetmetatable(BASE, {__metatable = false, __index = function(_, name)
  local meta = LIBRARY_META[name]
  if meta == nil or current_env == nil then return nil end
  local proxy = rawsetmetatable({}, meta)
  rawset(current_env, name, proxy)
  return proxy
end})

-- Shared tables: everything reachable from the globals, the string metatable and the module
-- cache, with their metatables. `snapshot` records their contents once, after the scripts
-- ran; `changed` tells whether a run left any of them different. The caller then drops the
-- whole state (a fresh one is built for the next run). Only needed with scripts. Upvalues
-- of script functions are not tables and are not checked (spec/lua.md).
local rawgetmeta = getmetatable
local string_mt = rawgetmeta("")
local function snapshot()
  local seen, list = {}, {}
  local function walk(t)
    if seen[t] then return end
    seen[t] = true
    local copy, n = {}, 0
    for k, v in next, t do
      copy[k] = v; n = n + 1
      if type(k) == "table" then walk(k) end
      if type(v) == "table" then walk(v) end
    end
    local mt = rawgetmeta(t)
    list[#list + 1] = {t, copy, n, mt}
    if type(mt) == "table" then walk(mt) end
  end
  walk(G); walk(string_mt); walk(loaded)
  return list
end

local shared
local function changed()
  if shared == nil then return false end
  for i = 1, #shared do
    local entry = shared[i]
    local t, copy, n = entry[1], entry[2], 0
    for k, v in next, t do
      if not rawequal(rawget(copy, k), v) then return true end
      n = n + 1
    end
    if n ~= entry[3] or not rawequal(rawgetmeta(t), entry[4]) then return true end
  end
  return false
end

local gc_mark = 0
local function settle()
  -- after the scripts ran: BASE, the protections, the snapshot when there are scripts, and
  -- what a clean state holds (a run that leaves more gets a full GC)
  for k, v in next, G do
    if LIBRARIES[k] == nil and k ~= "_G" then BASE[k] = v end
  end
  sandbox_mt.__index = BASE
  string_mt.__metatable = false
  if #names > 0 then shared = snapshot() end
  rawcollect("collect")
  gc_mark = rawcollect("count") + 1024
end
"""

# The run's entry points, after lua_json.ENCODER (which the prelude puts between the two,
# so that it can use GUARD's raw `str_find`, `str_gsub` and `tbl_sort`, and so that the
# lines before it, which library errors can name, keep their numbers).
ENTRY = r"""
-- The hook is on while the chunk runs and while `flatten` walks a result; the encoder runs
-- without it, as it bounds its own work (lua_json.py). `sethook()` clears the main
-- thread's hook only: a coroutine keeps the one it was made with. The protected part of a
-- run: everything the hook may interrupt. Its results go to upvalues (cleared first, so an
-- interrupted body leaves none from an earlier run).
local r_ok, r_value, r_n, r_out
local function body(fn)
  r_ok, r_value, r_n, r_out = false, nil, nil, nil
  inside = true
  sethook(budget_hook, "", count)
  local ok, value = rawxpcall(fn, message)
  sethook()
  if ok and not aborting then
    -- JSON text when the encoder can write it as flatten's reading would
    local fine, text = rawpcall(encode_json, value)
    if fine then
      r_out = text
    elseif text == GIVE_UP then
      local out = {}
      sethook(budget_hook, "", count)
      local done, n = rawpcall(flatten, value, out, 0, 0)
      sethook()
      if done then r_n, r_out = n, out else ok, value = false, message(n) end
    else
      ok, value = false, message(text)
    end
  end
  r_ok, r_value = ok, value
  inside = false
end

local function init_body() r_ok, r_value = init_scripts() end

local function init(deadline)
  clock, limit_at = now, deadline
  inside = true
  sethook(budget_hook, "", count)
  local fine, err = rawpcall(init_body)
  sethook()
  inside = false
  local name, text = r_ok, r_value
  if aborting then name, text = loading, "time budget exceeded"
  elseif not fine then name, text = loading, err end
  clock, limit_at, aborting, r_ok, r_value = nil, nil, nil, nil, nil
  if name ~= nil then return name, text end
  settle()
end

-- Status codes of a run, read by lua_state.py: 0 done, 1 Lua error, 2 over time, 3 out
-- of memory, 4 a pattern too costly for an inline run. Then whether the shared tables
-- changed, then the error text, or the result: its JSON text, or else flat: its length,
-- the table itself when longer than CHUNK (Python reads it with `slice`), else its items.
local STATUS = {time = 2, slow = 4}
local function finish(fine, err, ok, value)
  local status = 0
  if aborting then
    status, value = STATUS[aborting], nil
  elseif not fine then  -- failed outside the chunk's own call (e.g. no memory for `out`)
    status, value = err == "not enough memory" and 3 or 1, err
  elseif not ok then
    status = value == "not enough memory" and 3 or 1
  end
  clock, limit_at, budget_left, aborting, inline = nil, nil, nil, nil, false
  if seeded then seeded = false; rawseed() end
  local dirty = changed()
  if rawcollect("count") > gc_mark then rawcollect("collect") end
  return status, dirty, value
end

-- `budget`: CPU seconds for an inline run (from the hook's first firing); `deadline`: the
-- host clock's reading past which a run off the loop stops. One of the two is given.
local function run(fn, request, context, budget, deadline)
  -- `_G` in the constructor: the table is made with room for it (no growing it to add it)
  local env = rawsetmetatable({request = request, context = context, _G = false}, sandbox_mt)
  env._G = env
  current_env = env
  setupvalue(fn, 1, env)  -- a main chunk's only upvalue is _ENV
  count = deadline ~= nil and WORKER_COUNT or INLINE_COUNT
  aborting = nil  -- (a run that failed before `finish`, e.g. out of memory, left them set)
  if deadline ~= nil then
    clock, limit_at, inline = now, deadline, false
  else
    clock, limit_at, budget_left, inline = cpu_clock, nil, budget, true
  end
  local fine, err = rawpcall(body, fn)
  if not fine then sethook() end  -- (body failed between setting the hook and clearing it)
  inside = false
  current_env = nil
  setupvalue(fn, 1, G)    -- drop the request's sandbox; stray closures see plain globals
  local ok, value, n, out = r_ok, r_value, r_n, r_out
  r_value, r_n, r_out = nil, nil, nil
  local status, dirty
  status, dirty, value = finish(fine, err, ok, value)
  if status ~= 0 then return status, dirty, value end
  if n == nil then return 0, dirty, out end
  if n > CHUNK then return 0, dirty, n, out end
  return 0, dirty, n, false, unpack(out, 1, n)
end

local function slice(out, i, j) return unpack(out, i, j) end

return init, compile, run, slice
"""
