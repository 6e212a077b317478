"""The Lua side of the `lua` middleware: the prelude each `LuaState` runs once (see lua.py).

Kept apart from the Python code that drives it; spec/lua.md describes both. `SANDBOX` trims
the standard library and defines the script-facing functions; `lua_guard.GUARD`, appended to
it, bounds the runs; `lua_json.ENCODER` writes results as JSON text; `lua_guard.ENTRY` runs a
chunk and returns the entry points. `PRELUDE` is the four together, in that order.
"""

from __future__ import annotations

from webpipe.middleware.lua_guard import ENTRY, GUARD
from webpipe.middleware.lua_json import ENCODER

# Runs once per Lua state with the real globals. Receives the Python hooks and the scripts
# directory, trims the standard library (spec/lua.md "Sandbox"), defines the script-facing
# functions as Lua closures (so no Python object is ever reachable from a script) and
# leaves the rest to GUARD (one chunk: GUARD uses these locals).
SANDBOX = r"""
local hooks, sources, names = ...
local G = _G
local rawload, setupvalue, rawxpcall, rawpcall = load, debug.setupvalue, xpcall, pcall
-- the run's budget, managed by lua_guard.GUARD; declared here for `message`
local clock, limit_at, budget_left, aborting = nil, nil, nil, nil
-- the running chunk's `_ENV` (nil between runs): what `load` and `require` hand a chunk
local current_env = nil
local type, tostring, error, select, setmetatable = type, tostring, error, select, setmetatable
local getmetatable = getmetatable
local sethook, cpu_clock = debug.sethook, os.clock

io, debug, package, require, dofile, loadfile, python = nil, nil, nil, nil, nil, nil, nil
local real_os = os
os = {clock = real_os.clock, date = real_os.date, difftime = real_os.difftime,
      getenv = real_os.getenv, time = real_os.time}

-- text chunks only: binary chunks (string.dump output) can break the VM's invariants. The
-- default environment is the running chunk's own (the real globals outside a run), so a
-- loaded chunk cannot reach what later runs see.
function load(chunk, name, mode, ...)
  if select("#", ...) > 0 then return rawload(chunk, name, "t", (...)) end
  if current_env ~= nil then return rawload(chunk, name, "t", current_env) end
  return rawload(chunk, name, "t")
end

local function message(err)
  if aborting then return "" end  -- the run is being stopped: no script code (__tostring)
  if type(err) == "string" or type(err) == "number" then return tostring(err) end
  local mt = getmetatable(err)
  if mt ~= nil and mt.__tostring ~= nil then
    local ok, text = rawpcall(tostring, err)
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
  if current_env ~= nil then current_env[name] = value else G[name] = value end
  return value
end

local LIBRARIES = {string = string, table = table, math = math, utf8 = utf8,
                   coroutine = coroutine, os = os}
local loaded = {}
for name, lib in next, LIBRARIES do loaded[name] = lib end
function require(name)
  name = name_arg("require", name)
  local value = loaded[name]
  if value ~= nil then
    -- a library: the chunk's own copy of it (see lua_guard "Fresh environment")
    if current_env ~= nil and LIBRARIES[name] then return current_env[name] end
    return value
  end
  local fn = compiled[name]
  if fn == nil then
    error("module '" .. name .. "' not found (only scripts in WEBPIPE_SCRIPTS_DIR)", 2)
  end
  value = fn()
  if value == nil then value = true end
  loaded[name] = value
  return value
end

local loading = ""  -- the script being loaded (named when its loading is stopped)
local function init_scripts()
  for _, name in ipairs(names) do
    loading = name
    local fn, err = rawload(sources[name], "@" .. name, "t")
    if fn == nil then return name, err end
    compiled[name] = fn
    local ok, value = rawxpcall(fn, message)
    if not ok then return name, value end
    G[name] = value
    if value == nil then loaded[name] = true else loaded[name] = value end
  end
end

local function compile(source) return rawload(source, "=lua", "t") end

local sandbox_mt = {__metatable = false}  -- its __index is set once the scripts ran

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

"""

PRELUDE = SANDBOX + GUARD + ENCODER + ENTRY
