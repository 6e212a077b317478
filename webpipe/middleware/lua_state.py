"""One Lua 5.4 runtime with the webpipe globals, and one bounded run on it (spec/lua.md).

`LuaState` runs the prelude (`lua_prelude.PRELUDE`: sandbox, globals, budget hook) once,
then runs chunks. Each run has a `Budget`: either an inline CPU budget (the event loop's
attempt: over it, out of its small memory allowance, or wanting `executeSql`, the run is
abandoned with `RunElsewhere` and nothing of it is kept) or a deadline on the monotonic
clock with the app's memory budget (in a sandbox worker: past them the run fails with a
`timeout` / `limitError` envelope). Memory is bounded by lupa's allocator limit, time by
the prelude's count hook, which no `pcall` can outlive. A run that changed the state's
shared tables marks the state `dirty`; its owner then drops it, so no run sees another's
changes. The state is used by one thread only (lupa runtimes are not thread-safe).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import orjson
from lupa import lua54

from webpipe.errors import StepError
from webpipe.middleware.lua_convert import from_flat, json_to_lua, lua_to_json
from webpipe.middleware.lua_prelude import PRELUDE

JSON = Any
MB = 1024 * 1024
_SLICE = 4096  # items per call when a long result is read back in pieces
SqlOutcome = tuple[JSON, str | None]  # (result, error text), like executeSql's two values
SqlCall = Callable[[str, "list[JSON] | None"], SqlOutcome]
# memory an inline run may allocate; past it the run is redone in a worker with the full budget
INLINE_MEMORY_MB = 4
# wall time the scripts directory may take to load on the event loop (else: workers only)
INLINE_INIT_S = 0.02
MEMORY_ERROR, TIME_ERROR = b"not enough memory", b"time budget exceeded"
_NOTHING: frozenset[str] = frozenset()
MAX_ERROR_TEXT = 4096  # bytes of a Lua error message kept in the envelope
# status codes of the prelude's `run` (lua_guard.ENTRY)
DONE, LUA_ERROR, OVER_TIME, OUT_OF_MEMORY, COSTLY_PATTERN = range(5)


@dataclass(frozen=True, slots=True, eq=False)
class LuaChunk:
    """A prepared `lua` step: the checked source (hashed by identity for per-state caches)."""

    source: str
    # converting `$context` costs more than a small chunk's run; skip it when the name
    # does not occur in the source (only a computed `_ENV["con".."text"]` could miss it)
    uses_context: bool = True
    # the only top-level keys of the input the chunk can read (None: maybe any)
    request_keys: frozenset[str] | None = None
    # the chunk as Python when it is in the compiled subset (lua_compile), else None
    compiled: Callable[[JSON], JSON] | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    """What one run may use. `inline_cpu` (seconds of CPU, counted from the hook's first
    firing) marks the event loop's attempt; otherwise `deadline` (time.monotonic()) holds."""

    timeout_ms: int
    memory_mb: int
    deadline: float = 0.0
    inline_cpu: float | None = None


@dataclass(slots=True)
class Binding:
    """One run's view of the request: flags to read, writes to apply afterwards, and how
    to reach Postgres (None on the event loop, where a blocking call would stall it)."""

    flags: Mapping[str, bool]
    conditions: Mapping[str, bool]
    sql: SqlCall | None = None
    flag_writes: dict[str, bool] = field(default_factory=dict)
    condition_writes: dict[str, bool] = field(default_factory=dict)
    wants_worker: bool = False  # executeSql was called during an inline run


class RunElsewhere(Exception):
    """An inline run went over its budget or needs `executeSql`: redo it in a worker."""


class ScriptsTooHeavy(RunElsewhere):
    """The scripts directory took too long (or too much memory) to load on the event loop."""


def _deny_attributes(obj: object, name: object, is_setting: bool) -> NoReturn:
    # No Python object should reach a script; if one does, it must not expose __globals__ etc.
    raise AttributeError("Python attributes are not accessible from Lua")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _get_env(name: bytes) -> bytes | None:
    value = os.environ.get(_text(name))
    return None if value is None else value.encode()


class LuaState:
    """One Lua runtime with the webpipe globals; only ever used by the thread that made it."""

    def __init__(self, scripts: Mapping[str, str], budget: Budget) -> None:
        self.lua = lua54.LuaRuntime(
            encoding=None, register_eval=False, register_builtins=False,
            unpack_returned_tuples=True, attribute_filter=_deny_attributes, max_memory=0,
        )
        self.binding: Binding | None = None
        self.dirty = False  # a run changed shared tables: the owner must drop this state
        self._limit = 0  # the running run's memory limit (lupa's max_memory, bytes)
        self._compiled: dict[LuaChunk, Any] = {}
        hooks = self.lua.table_from({
            b"get_flag": self._get_flag, b"set_flag": self._set_flag,
            b"get_when": self._get_when, b"set_when": self._set_when,
            b"get_env": _get_env, b"execute_sql": self._execute_sql, b"now": time.monotonic,
        })
        names = sorted(scripts)
        sources = self.lua.table_from({n.encode(): scripts[n].encode() for n in names})
        inline = budget.inline_cpu is not None
        self.lua.set_max_memory((INLINE_MEMORY_MB if inline else budget.memory_mb) * MB)
        init, self._compile, self._run, self._slice = self.lua.execute(
            PRELUDE, hooks, sources, self.lua.table_from([n.encode() for n in names])
        )
        # in a worker: the run's own deadline (loading the scripts is part of its time)
        deadline = time.monotonic() + INLINE_INIT_S if inline else budget.deadline
        try:
            failed = init(deadline)
        except lua54.LuaMemoryError:
            failed = (b"", MEMORY_ERROR)
        if failed is not None:
            name, err = failed
            if inline and err in (MEMORY_ERROR, TIME_ERROR):
                raise ScriptsTooHeavy  # for the loop: workers make their states
            raise StepError(f"Lua script '{_text(name)}' execution error: {_text(err)}")

    def run(self, chunk: LuaChunk, state: JSON, context: JSON, binding: Binding,
            budget: Budget) -> JSON:
        """Run `chunk` with `request = state` (see the module docstring for the outcomes;
        the caller has cut `state` to the chunk's `request_keys`)."""
        fn = self._compiled.get(chunk)
        if fn is None:
            fn = self._compiled[chunk] = self._compile_chunk(chunk)
        inline = budget.inline_cpu is not None
        allowance = INLINE_MEMORY_MB if inline else budget.memory_mb
        # lupa builds tables with unprotected Lua API calls, where a failed allocation aborts
        # the process ("PANIC: unprotected error"): convert with no limit (the input is
        # bounded by maxBodyBytes), then bound what the run itself allocates
        self.lua.set_max_memory(0)
        lua_context = None if context is None else json_to_lua(self.lua, context)
        # a chunk that cannot name `request` (no such word, no `_ENV`, `_G` or `load`) cannot
        # tell an absent one from a converted one: skip building it
        lua_request = None if chunk.request_keys == _NOTHING else json_to_lua(self.lua, state)
        self._limit = self.lua.get_memory_used() + allowance * MB
        self.lua.set_max_memory(self._limit)
        self.binding = binding
        try:
            out = self._run(fn, lua_request, lua_context,
                            budget.inline_cpu, None if inline else budget.deadline)
        except lua54.LuaMemoryError:  # outside the chunk's own pcall (e.g. flattening)
            self.dirty = True  # the prelude did not get to check the shared tables
            out = (OUT_OF_MEMORY, True, None)
        finally:
            self.binding = None
        self.dirty = self.dirty or bool(out[1])
        status = out[0]
        if status == DONE and not binding.wants_worker:
            return self._result(out)
        if inline and (status != LUA_ERROR or binding.wants_worker):
            raise RunElsewhere
        raise _failure(status, out[2], budget)

    def _unlimited(self, value: JSON) -> Any:
        """`value` in Lua, built with the limit lifted (see `run`); the rows then count
        against the run's limit, so its next allocation fails if they took it past."""
        self.lua.set_max_memory(0)
        try:
            return json_to_lua(self.lua, value)
        finally:
            self.lua.set_max_memory(self._limit)

    def forget_chunks(self) -> None:
        """Drop the compiled chunks (their `LuaChunk` keys are no longer used)."""
        self._compiled.clear()

    def _result(self, out: Any) -> JSON:
        if type(out[2]) is bytes:  # the prelude's encoder wrote it (lua_json.py)
            return orjson.loads(out[2])
        count, table = out[2], out[3]
        if table is False:
            return from_flat(out, 4)
        flat: list[Any] = []
        for start in range(1, count + 1, _SLICE):
            flat.extend(self._slice(table, start, min(count, start + _SLICE - 1)))
        return from_flat(flat, 0)

    def _compile_chunk(self, chunk: LuaChunk) -> Any:
        result = self._compile(chunk.source.encode())
        fn, err = result if isinstance(result, tuple) else (result, None)
        if fn is None:  # prepare() checked the syntax, so this is not expected
            raise StepError(f"Lua execution error: {_text(err)}")
        return fn

    def _current(self) -> Binding:
        assert self.binding is not None, "Lua hook called outside a run"
        return self.binding

    def _get_flag(self, name: bytes) -> bool:
        return bool(self._current().flags.get(_text(name), False))

    def _set_flag(self, name: bytes, value: bool) -> None:
        self._current().flag_writes[_text(name)] = value

    def _get_when(self, name: bytes) -> bool:
        return bool(self._current().conditions.get(_text(name), False))

    def _set_when(self, name: bytes, value: bool) -> None:
        self._current().condition_writes[_text(name)] = value

    def _execute_sql(self, sql: bytes, params: Any, count: int) -> tuple[Any, bytes | None]:
        binding = self._current()
        if binding.sql is None:  # inline: blocking here would stall the event loop
            binding.wants_worker = True  # the run is abandoned and redone in a worker
            return None, b"executeSql cannot run on the event loop thread"
        values = None if params is False else [lua_to_json(params[i]) for i in range(1, count + 1)]
        # a hook must never raise: the exception object would reach the script as userdata
        try:
            result, err = binding.sql(_text(sql), values)
            if err is None:
                return self._unlimited(result), None
        except Exception as exc:
            err = f"executeSql failed: {exc}"
        return None, err.encode()




def _failure(status: int, text: bytes | None, budget: Budget) -> StepError:
    if status == OVER_TIME:
        return StepError(f"Lua chunk exceeded its {budget.timeout_ms} ms time budget",
                         error_type="timeout")
    if status == OUT_OF_MEMORY:
        return StepError(f"Lua chunk exceeded its {budget.memory_mb} MB memory budget",
                         error_type="limitError")
    # an error value can be as long as the memory budget: the envelope carries its start
    return StepError(f"Lua execution error: {_text((text or b'')[:MAX_ERROR_TEXT])}")
