"""The Lua side of a run's result as JSON text (spec/lua.md "JSON ↔ Lua"): `ENCODER`, a part
of the prelude that writes the value a chunk returned as one JSON text, which Python reads
with a single `orjson.loads`.

Reading a result back was most of a small chunk's cost: `flatten` into a tagged tuple,
crossing into Python and rebuilding it there (`lua_convert.from_flat`) cost ~5.7 µs for
W7's five squares, the text ~1.9 µs. The text must give exactly what `from_flat` gives, so
the encoder handles only what it can write the same way and gives up on the rest
(`GIVE_UP`), which then takes the flat path: a string that is not valid UTF-8 (the flat path
writes `"[invalid utf8]"`), a table with keys other than strings that is not a sequence
(integer and float key texts, `"[invalid key]"`, `"[unsupported key]"`), a result past the
encoder's own bound on work (`NODES`, `BYTES`), and a process whose C locale for collation or
numbers is not "C" (Lua's `<` on strings uses `strcoll`, and `%.17g` the locale's decimal
point). `tests/middleware/test_lua_result.py` compares the two paths.
"""

from __future__ import annotations

# Lua text, inserted between lua_guard.GUARD and lua_guard.ENTRY; it reads SANDBOX's
# `real_os` and GUARD's raw `str_find`, `str_gsub` and `tbl_sort` (the library's are
# GUARD's wrappers by then), and defines `encode_json` and `GIVE_UP` for ENTRY's `body`. A
# `do` block, so its locals do not count against the prelude's limit of 200.
ENCODER = r"""
local encode_json, GIVE_UP = nil, {}
do
  local type, next, rawget, mtype, error = type, next, rawget, math.type, error
  local find, gsub, format, char = str_find, str_gsub, string.format, string.char
  local concat, sort, utf8_len, setlocale = table.concat, tbl_sort, utf8.len, real_os.setlocale
  local huge = math.huge
  local MAX_DEPTH, KEEP_BUFFER = 20, 1024
  -- It runs without the budget hook (see lua_guard's `body`), so it bounds its own work: at
  -- most NODES values (a table's entries are counted before it is walked) and BYTES of
  -- strings scanned, a few hundred µs; a bigger result takes the flat path, under the hook.
  -- A cyclic table is cut at MAX_DEPTH but can still have exponentially many paths: the
  -- value count stops that too.
  local NODES, BYTES = 2048, 65536
  -- a string without these bytes is written as it is; explicit bytes, as `%c` depends on
  -- the locale
  local UNPLAIN, SPECIAL = "[\0-\31\"\\\128-\255]", "[\0-\31\"\\]"
  local ESCAPE = {['"'] = '\\"', ['\\'] = '\\\\'}
  for i = 0, 31 do ESCAPE[char(i)] = format("\\u%04x", i) end
  -- the pieces of the text, kept between runs while small (no growing from empty each run)
  local spare = {}
  local buf, n, checked, nodes, bytes

  local function c_locale()
    checked = true
    local collate, numeric = setlocale(nil, "collate"), setlocale(nil, "numeric")
    if (collate ~= "C" and collate ~= "POSIX") or (numeric ~= "C" and numeric ~= "POSIX") then
      error(GIVE_UP)
    end
  end

  -- `s` as JSON, quotes included
  local function quoted(s)
    bytes = bytes - #s
    if bytes < 0 then error(GIVE_UP) end
    if find(s, UNPLAIN) then
      if utf8_len(s) == nil then error(GIVE_UP) end  -- strict: what Python's decode accepts
      if find(s, SPECIAL) then s = gsub(s, SPECIAL, ESCAPE) end
    end
    return '"' .. s .. '"'
  end

  -- an object key as JSON with its colon: kept across runs, since the same keys come back
  -- run after run (values do not: they are written each time); bounded in count and size
  local KEYS, keys_kept = {}, 0
  local function key_text(k)
    local text = KEYS[k]
    if text ~= nil then return text end
    text = quoted(k) .. ":"
    if #k <= 64 then
      if keys_kept >= 1024 then KEYS, keys_kept = {}, 0 end
      KEYS[k] = text
      keys_kept = keys_kept + 1
    end
    return text
  end

  local function float_text(v)
    if v ~= v or v == huge or v == -huge then return "0" end
    if not checked then c_locale() end
    -- 17 digits read back as the same double; a whole number still reads as a float
    local text = format("%.17g", v)
    if find(text, "^-?[0-9]+$") then return text .. ".0" end
    return text
  end

  local put_value

  local function put_object(t, count, depth)
    if count == 1 then  -- the usual small object: no key list to make and sort
      local k, v = next(t)
      if type(k) ~= "string" then error(GIVE_UP) end
      n = n + 1; buf[n] = "{"
      n = n + 1; buf[n] = key_text(k)
      put_value(v, depth)
      n = n + 1; buf[n] = "}"
      return
    end
    if not checked then c_locale() end
    local keys, i = {}, 0
    for k in next, t do
      if type(k) ~= "string" then error(GIVE_UP) end
      i = i + 1; keys[i] = k
    end
    sort(keys)
    local open = "{"
    for j = 1, count do
      local k = keys[j]
      n = n + 1; buf[n] = open; open = ","
      n = n + 1; buf[n] = key_text(k)
      put_value(rawget(t, k), depth)
    end
    n = n + 1; buf[n] = "}"
  end

  -- the sequence test is flatten's (lua_prelude): every key a positive integer, the count
  -- equal to the largest
  local function put_table(t, depth)
    local count, top, seq, integers = 0, 0, true, true
    for k, v in next, t do
      count = count + 1
      if count > nodes then error(GIVE_UP) end
      if seq then
        if mtype(k) == "integer" and k > 0 then
          if k > top then top = k end
          if integers and mtype(v) ~= "integer" then integers = false end
        else
          seq = false
        end
      end
    end
    if not (seq and count > 0 and top == count) then
      if count == 0 then n = n + 1; buf[n] = "{}" else put_object(t, count, depth) end
      return
    end
    if integers and depth < MAX_DEPTH then  -- Lua writes a list of integers in one call
      nodes = nodes - count
      n = n + 1; buf[n] = "["
      n = n + 1; buf[n] = concat(t, ",", 1, count)
      n = n + 1; buf[n] = "]"
      return
    end
    local open = "["
    for i = 1, count do
      local v = rawget(t, i)
      n = n + 1; buf[n] = open; open = ","
      if mtype(v) == "integer" and depth < MAX_DEPTH then  -- the usual item, inline
        n = n + 1; buf[n] = v
      else
        put_value(v, depth)
      end
    end
    n = n + 1; buf[n] = "]"
  end

  -- `depth` is the caller's: the value sits one deeper
  put_value = function(v, depth)
    nodes = nodes - 1
    if nodes < 0 then error(GIVE_UP) end
    depth = depth + 1
    n = n + 1
    if depth > MAX_DEPTH then buf[n] = '"[max depth exceeded]"'; return end
    local kind = type(v)
    if kind == "string" then buf[n] = quoted(v)
    elseif kind == "number" then
      if mtype(v) == "integer" then buf[n] = v else buf[n] = float_text(v) end
    elseif kind == "table" then n = n - 1; put_table(v, depth)
    elseif kind == "boolean" then buf[n] = v and "true" or "false"
    elseif kind == "nil" then buf[n] = "null"
    else buf[n] = '"[unsupported lua type]"' end
  end

  -- raises GIVE_UP (the caller then flattens the value), or any error of the run (time,
  -- memory); the next call then starts on a new buffer
  encode_json = function(value)
    if spare[1] ~= nil then spare = {} end  -- an interrupted call's pieces
    buf, n, checked, nodes, bytes = spare, 0, false, NODES, BYTES
    put_value(value, -1)
    local text = concat(buf, "", 1, n)
    if n > KEEP_BUFFER then spare = {} else for i = n, 1, -1 do buf[i] = nil end end
    return text
  end
end
"""
