"""Compiled Lua chunks over HTTP (spec/lua.md "Compiled subset"): a real `webpipe serve`
answers W7's route and a few request-shaping chunks with the same bytes as one started
with `WEBPIPE_LUA_COMPILED=0`, including the requests whose compiled run falls back (a
parameter that is not a number, a loop past the compiled code's work cap, a runaway that
only Lua's budget stops).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.hostile.harness import serve

APP = """
config limits {
  luaTimeoutMs: 300
}

GET /lua/:n
  |> lua: `local out = {} for i = 1, request.params.n do out[i] = i * i end
    return { squares = out }`

GET /record/:n
  |> lua: `return { id = request.params.n, name = 'item ' .. request.params.n,
    price = request.params.n * 1.25, tags = { 'a', 'b' }, none = {} }`

GET /spin/:n
  |> lua: `local i = 0 while i < request.params.n do i = i + 0 end return i`
"""

PATHS = ["/lua/5", "/lua/0", "/lua/5.5", "/lua/x", "/lua/3000", "/lua/-1", "/record/7",
         "/record/2.5", "/record/abc", "/spin/0", "/spin/1"]


async def answers(tmp_path: Path) -> dict[str, tuple[int, bytes]]:
    out: dict[str, tuple[int, bytes]] = {}
    async with serve(tmp_path, APP) as served, httpx.AsyncClient(timeout=30) as client:
        for path in PATHS:
            response = await client.get(served.base + path)
            out[path] = (response.status_code, response.content)
    return out


async def test_compiled_and_switched_off_give_the_same_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = await answers(tmp_path)
    monkeypatch.setenv("WEBPIPE_LUA_COMPILED", "0")
    in_lua = await answers(tmp_path)
    assert compiled == in_lua
    assert compiled["/lua/5"] == (200, b'{"squares":[1,4,9,16,25]}')
    assert compiled["/lua/x"][0] == 500  # Lua's own error envelope, through the fall-back
    assert b"timeout" in compiled["/spin/1"][1]  # only Lua's budget stops it
