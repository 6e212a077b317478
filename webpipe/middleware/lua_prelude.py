"""The Lua side of the `lua` middleware: the prelude each `LuaState` runs once (see lua.py).

Kept apart from the Python code that drives it; spec/lua.md describes both.
"""

from __future__ import annotations

# Runs once per Lua state with the real globals. Receives the Python hooks and the scripts
# directory, trims the standard library (spec/lua.md "Sandbox"), defines the script-facing
# functions as Lua closures (so no Python object is ever reachable from a script) and
# returns the three entry points Python needs.
PRELUDE = r"""
local hooks, sources, names = ...
local G = _G
local rawload, setupvalue, xpcall, pcall = load, debug.setupvalue, xpcall, pcall
local type, tostring, error, select, setmetatable = type, tostring, error, select, setmetatable
local getmetatable = getmetatable
local sethook, cpu_clock = debug.sethook, os.clock

io, debug, package, require, dofile, loadfile, python = nil, nil, nil, nil, nil, nil, nil
local real_os = os
os = {clock = real_os.clock, date = real_os.date, difftime = real_os.difftime,
      getenv = real_os.getenv, time = real_os.time}

-- text chunks only: binary chunks (string.dump output) can break the VM's invariants
function load(chunk, name, mode, ...)
  if select("#", ...) > 0 then return rawload(chunk, name, "t", (...)) end
  return rawload(chunk, name, "t")
end

local function message(err)
  if type(err) == "string" or type(err) == "number" then return tostring(err) end
  local mt = getmetatable(err)
  if mt ~= nil and mt.__tostring ~= nil then
    local ok, text = pcall(tostring, err)
    if ok and type(text) == "string" then return text end
  end
  return "(error object is a " .. type(err) .. " value)"
end

local function name_arg(fname, name)
  local kind = type(name)
  if kind == "string" then return name end
  if kind == "number" then return tostring(name) end
  error("bad argument #1 to '" .. fname .. "' (string expected, got " .. kind .. ")", 3)
end

-- values are coerced by Lua truthiness: only nil and false are false
function getFlag(name) return hooks.get_flag(name_arg("getFlag", name)) end
function setFlag(name, value) hooks.set_flag(name_arg("setFlag", name), not not value) end
function getWhen(name) return hooks.get_when(name_arg("getWhen", name)) end
function setWhen(name, value) hooks.set_when(name_arg("setWhen", name), not not value) end
function getEnv(name) return hooks.get_env(name_arg("getEnv", name)) end

function executeSql(sql, params)
  sql = name_arg("executeSql", sql)
  if params == nil then return hooks.execute_sql(sql, {}, 0) end
  if type(params) ~= "table" then return hooks.execute_sql(sql, false, 0) end
  local list, n = {}, 0
  while params[n + 1] ~= nil do n = n + 1; list[n] = params[n] end
  return hooks.execute_sql(sql, list, n)
end

local compiled = {}

function requireScript(name)
  name = name_arg("requireScript", name)
  local fn = compiled[name]
  if fn == nil then return nil end
  local value = fn()
  G[name] = value
  return value
end

local loaded = {string = string, table = table, math = math, utf8 = utf8,
                coroutine = coroutine, os = os}
function require(name)
  name = name_arg("require", name)
  local value = loaded[name]
  if value ~= nil then return value end
  local fn = compiled[name]
  if fn == nil then
    error("module '" .. name .. "' not found (only scripts in WEBPIPE_SCRIPTS_DIR)", 2)
  end
  value = fn()
  if value == nil then value = true end
  loaded[name] = value
  return value
end

local function init_scripts()
  for _, name in ipairs(names) do
    local fn, err = rawload(sources[name], "@" .. name, "t")
    if fn == nil then return name, err end
    compiled[name] = fn
    local ok, value = xpcall(fn, message)
    if not ok then return name, value end
    G[name] = value
  end
end

local function compile(source) return rawload(source, "=lua", "t") end

local sandbox_mt = {__index = G}

-- The result crosses into Python as one flat tuple (one boundary crossing, not one per table
-- entry): pairs of (0, scalar), (1, n) + n items for a sequence, (2, n) + n (key, value)
-- for any other table, 3 for a value past MAX_DEPTH, 4 for an unsupported type. Python
-- applies the rest of spec §5.2 (see lua_convert.from_flat). Keys that are not strings or
-- numbers are sent as `false` ("[unsupported key]").
local next, rawget, mtype, unpack = next, rawget, math.type, table.unpack
local MAX_DEPTH, CHUNK = 20, 4096
local function flatten(value, out, n, depth)
  if depth > MAX_DEPTH then n = n + 1; out[n] = 3; return n end
  local kind = type(value)
  if kind == "table" then
    local count, top, seq = 0, 0, true
    for k in next, value do
      count = count + 1
      if seq then
        if mtype(k) == "integer" and k > 0 then
          if k > top then top = k end
        else
          seq = false
        end
      end
    end
    if seq and count > 0 and top == count then
      out[n + 1] = 1; out[n + 2] = count; n = n + 2
      for i = 1, count do n = flatten(rawget(value, i), out, n, depth + 1) end
    else
      out[n + 1] = 2; out[n + 2] = count; n = n + 2
      for k, v in next, value do
        local kk = type(k)
        n = n + 1
        if kk == "string" or kk == "number" then out[n] = k else out[n] = false end
        n = flatten(v, out, n, depth + 1)
      end
    end
  elseif kind == "string" or kind == "number" or kind == "boolean" or kind == "nil" then
    out[n + 1] = 0; out[n + 2] = value; n = n + 2
  else
    n = n + 1; out[n] = 4
  end
  return n
end

-- `budget` (CPU seconds, or nil) bounds a run on the event loop thread: a count hook fires
-- every 10000 instructions; the first firing in a run reads the clock, later ones check it
-- and, once over, raise on every firing until the run unwinds (a script's pcall cannot keep
-- it alive); the caller then reruns on a worker thread. The hook is installed once, by the
-- first budgeted run (only the loop thread's state has them), and is idle between runs.
local over_budget, budget_left, started, hooked = false, nil, nil, false
local function budget_hook()
  if budget_left == nil then return end
  if over_budget then error("webpipe: inline time budget exceeded", 0) end
  local now = cpu_clock()
  if started == nil then
    started = now
  elseif now - started > budget_left then
    over_budget = true
    error("webpipe: inline time budget exceeded", 0)
  end
end

-- returns ok, over_budget, then the error message, or the flat result: its length, the
-- table itself when longer than CHUNK (Python reads it with `slice`), else its items
local function run(fn, request, context, budget)
  local env = setmetatable({request = request, context = context}, sandbox_mt)
  env._G = env
  setupvalue(fn, 1, env)  -- a main chunk's only upvalue is _ENV
  over_budget = false
  budget_left, started = budget, nil
  if budget ~= nil and not hooked then
    sethook(budget_hook, "", 10000)
    hooked = true
  end
  local ok, value = xpcall(fn, message)
  setupvalue(fn, 1, G)    -- drop the request's sandbox; stray closures see plain globals
  local out, n
  if ok then
    out = {}
    ok, n = pcall(flatten, value, out, 0, 0)
    if not ok then value = message(n) end
  end
  budget_left = nil
  if not ok or over_budget then return false, over_budget, value end
  if n > CHUNK then return true, false, n, out end
  return true, false, n, false, unpack(out, 1, n)
end

local function slice(out, i, j) return unpack(out, i, j) end

return init_scripts, compile, run, slice
"""
