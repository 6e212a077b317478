"""The sandbox worker's `lua` handler: a run the event loop gave up on (spec/lua.md).

The payload is `{"source", "state", "context", "flags", "conditions", "scripts",
"scripts_id", "deadline", "timeout_ms", "memory_mb"}`; `deadline` is the server's
`time.monotonic()` reading past which the run stops (CLOCK_MONOTONIC is system-wide, so
both processes read the same clock). The worker keeps one `LuaState` per scripts directory
for its life and drops it after a run that changed its shared tables. `executeSql` goes
back to the server through the channel. The answer is `{"value"}` or `{"error", "type"}`,
with the run's flag and condition writes, which the server applies in both cases.
"""

from __future__ import annotations

from typing import Any

from webpipe.errors import StepError
from webpipe.middleware.lua_state import Binding, Budget, LuaChunk, LuaState, SqlOutcome
from webpipe.sandbox.channel import Channel

_states: dict[str, LuaState] = {}
_chunks: dict[str, LuaChunk] = {}  # source -> chunk, so each state compiles a chunk once
_MAX_CHUNKS = 1024


def _chunk(source: str) -> LuaChunk:
    chunk = _chunks.get(source)
    if chunk is None:
        if len(_chunks) >= _MAX_CHUNKS:
            _chunks.clear()
            for state in _states.values():
                state.forget_chunks()
        chunk = _chunks[source] = LuaChunk(source)
    return chunk


def _sql(channel: Channel) -> Any:
    def call(sql: str, params: list[Any] | None) -> SqlOutcome:
        result, err = channel.call("executeSql", {"sql": sql, "params": params})
        return result, err
    return call


def run(payload: dict[str, Any], channel: Channel) -> dict[str, Any]:
    budget = Budget(payload["timeout_ms"], payload["memory_mb"], payload["deadline"])
    binding = Binding(payload["flags"], payload["conditions"], _sql(channel))
    key = payload["scripts_id"]
    answer: dict[str, Any]
    try:
        state = _states.get(key)
        if state is None:
            state = _states[key] = LuaState(payload["scripts"], budget)
        try:
            answer = {"value": state.run(_chunk(payload["source"]), payload["state"],
                                         payload["context"], binding, budget)}
        finally:
            if state.dirty:
                del _states[key]
    except StepError as exc:
        answer = {"error": exc.message, "type": exc.error_type}
    answer["flags"] = binding.flag_writes
    answer["conditions"] = binding.condition_writes
    return answer
