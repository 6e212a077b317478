"""The `lua` middleware: run a Lua 5.4 chunk, its return value becomes the state.

Spec: spec/middleware.md §5 (our decisions: spec/lua.md). `prepare()` checks the chunk's
syntax once at load and finds the request keys it reads. `run_sync()` runs the chunk on the
loop thread under a CPU budget (`INLINE_BUDGET`, checked by a Lua count hook): a thread hop
costs more than a small chunk's whole run. A chunk that goes over the budget, or calls
`executeSql`, is abandoned (its flag writes are dropped) and `run()` reruns it with
`asyncio.to_thread` on snapshots of flags and conditions; that chunk runs on a worker from
then on. Each thread has its own
`LuaState` (lupa runtimes are not thread-safe, so a state never leaves the thread that
created it). Each run gets a fresh sandbox table whose lookups fall through to the state's
globals. `executeSql` hops back to the loop with `run_coroutine_threadsafe` and blocks the
worker until pg answers. Flag/condition writes are collected in the `Binding` and applied on
the loop afterwards.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NoReturn, Protocol, cast

from lupa import lua54

from webpipe.errors import ConfigError, StepError, WebpipeError
from webpipe.executor.context import RequestContext
from webpipe.middleware.base import (
    JSON,
    BaseMiddleware,
    Behavior,
    MiddlewareHost,
    RunAsync,
    StepCall,
    StepResult,
)
from webpipe.middleware.lua_convert import from_flat, json_to_lua, lua_to_json
from webpipe.middleware.lua_prelude import PRELUDE
from webpipe.source import Span

_CONTEXT_NAME = re.compile(r"\bcontext\b")
_REQUEST_NAME = re.compile(r"\brequest\b")
_FIELD = re.compile(r"\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
# names through which a chunk can reach a global by a computed name
_DYNAMIC_GLOBALS = re.compile(r"\b(?:_ENV|_G|load)\b")
_SLICE = 4096  # items per call when a long result is read back in pieces
# CPU seconds a chunk may run on the event loop before it is moved to a worker thread
INLINE_BUDGET = 0.001
SqlOutcome = tuple[JSON, str | None]  # (result, error text), like executeSql's two values



def request_keys(source: str) -> frozenset[str] | None:
    """The top-level keys of `request` a chunk can read, when the text proves it: every
    occurrence of the word `request` (strings and comments included, which only makes the
    answer more cautious) is followed by `.name`, and no `_ENV`, `_G` or `load` could reach
    the global by a computed name. Scripts loaded by `require` run outside the sandbox and
    never see `request`. None when any of that fails."""
    if _DYNAMIC_GLOBALS.search(source):
        return None
    keys: set[str] = set()
    for match in _REQUEST_NAME.finditer(source):
        field = _FIELD.match(source, match.end())
        if field is None:
            return None
        keys.add(field.group(1))
    return frozenset(keys)


def _deny_attributes(obj: object, name: object, is_setting: bool) -> NoReturn:
    # No Python object should reach a script; if one does, it must not expose __globals__ etc.
    raise AttributeError("Python attributes are not accessible from Lua")


class SqlExecutor(Protocol):
    """What `host.middleware("pg")` must offer for `executeSql` (spec/lua.md "executeSql")."""

    async def execute_sql(self, sql: str, params: list[JSON]) -> dict[str, JSON]: ...


SqlCall = Callable[[str, "list[JSON] | None"], Coroutine[Any, Any, SqlOutcome]]


@dataclass(frozen=True, slots=True, eq=False)
class LuaChunk:
    """A prepared `lua` step: the checked source (hashed by identity for per-state caches)."""

    source: str
    # converting `$context` costs more than a small chunk's run; skip it when the name
    # does not occur in the source (only a computed `_ENV["con".."text"]` could miss it)
    uses_context: bool = True
    # the only top-level keys of the input the chunk can read (None: maybe any)
    request_keys: frozenset[str] | None = None


@dataclass(slots=True)
class Binding:
    """One run's view of the request: snapshots to read, writes to apply on the loop."""

    flags: Mapping[str, bool]
    conditions: Mapping[str, bool]
    loop: asyncio.AbstractEventLoop
    execute_sql: SqlCall
    flag_writes: dict[str, bool] = field(default_factory=dict)
    condition_writes: dict[str, bool] = field(default_factory=dict)
    wants_thread: bool = False  # executeSql was called during an inline run


class MustRunOnThread(Exception):
    """An inline run went over its budget or needs `executeSql`: rerun it on a worker."""


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class LuaState:
    """One Lua runtime with the webpipe globals; only ever used by the thread that made it."""

    def __init__(self, scripts: Mapping[str, str]) -> None:
        self.lua = lua54.LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_filter=_deny_attributes,
        )
        self.binding: Binding | None = None
        self._compiled: dict[LuaChunk, Any] = {}
        hooks = self.lua.table_from({
            b"get_flag": self._get_flag, b"set_flag": self._set_flag,
            b"get_when": self._get_when, b"set_when": self._set_when,
            b"get_env": _get_env, b"execute_sql": self._execute_sql,
        })
        names = sorted(scripts)
        sources = self.lua.table_from({n.encode(): scripts[n].encode() for n in names})
        init, self._compile, self._run, self._slice = self.lua.execute(
            PRELUDE, hooks, sources, self.lua.table_from([n.encode() for n in names])
        )
        failed = init()
        if failed is not None:
            name, err = failed
            raise StepError(f"Lua script '{_text(name)}' execution error: {_text(err)}")

    def run(self, chunk: LuaChunk, state: JSON, context: JSON, binding: Binding,
            budget: float | None = None) -> JSON:
        """Run `chunk` with `request = state`; a Lua error raises `StepError`.

        With a `budget` (CPU seconds) the run is on the event loop: going over it, or calling
        `executeSql`, abandons the run with `MustRunOnThread` (nothing of it is kept)."""
        fn = self._compiled.get(chunk)
        if fn is None:
            fn = self._compiled[chunk] = self._compile_chunk(chunk)
        if chunk.request_keys is not None and type(state) is dict:
            state = {key: state[key] for key in chunk.request_keys if key in state}
        self.binding = binding
        try:
            lua_context = None if context is None else json_to_lua(self.lua, context)
            out = self._run(fn, json_to_lua(self.lua, state), lua_context, budget)
            if out[1] or binding.wants_thread:
                raise MustRunOnThread
            if not out[0]:
                raise StepError(f"Lua execution error: {_text(out[2])}")
            count, table = out[2], out[3]
            if table is False:
                return from_flat(out, 4)
            flat: list[Any] = []
            for start in range(1, count + 1, _SLICE):
                flat.extend(self._slice(table, start, min(count, start + _SLICE - 1)))
            return from_flat(flat, 0)
        finally:
            self.binding = None

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
        values = None if params is False else [lua_to_json(params[i]) for i in range(1, count + 1)]
        if _on_loop_thread(binding.loop):  # .result() below would deadlock the loop
            binding.wants_thread = True  # the run is abandoned and redone on a worker
            return None, b"executeSql cannot run on the event loop thread"
        future = asyncio.run_coroutine_threadsafe(
            binding.execute_sql(_text(sql), values), binding.loop
        )
        # a hook must never raise: the exception object would reach the script as userdata
        try:
            result, err = future.result()
            if err is None:
                return json_to_lua(self.lua, result), None
        except Exception as exc:
            err = f"executeSql failed: {exc}"
        return None, err.encode()


def _request_view(call: StepCall, chunk: LuaChunk) -> tuple[RequestContext, JSON]:
    """The request's context (a blank one outside a request) and the chunk's `context`."""
    ctx = call.ctx if call.ctx is not None else RequestContext()
    return ctx, ctx.context_json() if chunk.uses_context else None


def _apply_writes(ctx: RequestContext, binding: Binding) -> None:
    ctx.flags.update(binding.flag_writes)
    ctx.conditions.update(binding.condition_writes)


def _get_env(name: bytes) -> bytes | None:
    value = os.environ.get(_text(name))
    return None if value is None else value.encode()


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def scripts_dir() -> Path:
    """`$WEBPIPE_SCRIPTS_DIR`, default `scripts` relative to the working directory."""
    return Path(os.environ.get("WEBPIPE_SCRIPTS_DIR") or "scripts")


def load_scripts(directory: Path) -> dict[str, str]:
    """Every `*.lua` file directly in `directory` (stem → source); symlinks must stay inside."""
    if not directory.is_dir():
        return {}
    root = directory.resolve()
    scripts: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() != ".lua" or not path.stem or not path.is_file():
            continue
        if not path.resolve().is_relative_to(root):
            continue
        scripts[path.stem] = path.read_text(encoding="utf-8")
    return scripts


class LuaMiddleware(BaseMiddleware):
    """`|> lua: `...`` — see the module docstring."""

    behavior: ClassVar[Behavior] = Behavior.TRANSFORM

    def __init__(self, host: MiddlewareHost) -> None:
        super().__init__(host)
        self.scripts = load_scripts(scripts_dir())  # read once at startup (§5.1)
        self._local = threading.local()
        self._checker_lock = threading.Lock()
        self._checker: Any = None
        # chunks that went over the inline budget or call executeSql: always on a worker
        self._on_thread: set[LuaChunk] = set()

    def prepare(self, config: str, span: Span | None) -> LuaChunk:
        """Check the chunk's syntax once, at load time."""
        err = self._syntax_error(config)
        if err is not None:
            raise ConfigError(f"Lua syntax error: {err}", span=span)
        chunk = LuaChunk(config, uses_context=_CONTEXT_NAME.search(config) is not None,
                         request_keys=request_keys(config))
        if "executeSql" in config:  # known up front: skip the inline attempt
            self._on_thread.add(chunk)
        return chunk

    def input_keys(self, prepared: object) -> frozenset[str] | None:
        """The top-level input keys the chunk can read (None: maybe all, `context` too)."""
        if not isinstance(prepared, LuaChunk) or prepared.uses_context:
            return None
        return prepared.request_keys

    def run_sync(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        """The inline attempt, on the event loop under `INLINE_BUDGET`; `RunAsync` when the
        chunk belongs on a worker thread (it then stays there)."""
        assert isinstance(prepared, LuaChunk), "prepare() output expected"
        if prepared in self._on_thread:
            raise RunAsync
        ctx, context = _request_view(call, prepared)
        # an inline run is synchronous: it may read the live flags, no snapshot needed
        binding = Binding(ctx.flags, ctx.conditions, asyncio.get_running_loop(),
                          self._execute_sql)
        try:
            value = self.run_in_thread(prepared, state, context, binding, INLINE_BUDGET)
        except MustRunOnThread:
            self._on_thread.add(prepared)  # nothing of the abandoned run is kept
            raise RunAsync from None
        except StepError:
            _apply_writes(ctx, binding)
            raise
        _apply_writes(ctx, binding)
        return StepResult(value)

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        try:
            return self.run_sync(state, prepared, call)
        except RunAsync:
            pass
        assert isinstance(prepared, LuaChunk)
        ctx, context = _request_view(call, prepared)
        binding = Binding(dict(ctx.flags), dict(ctx.conditions), asyncio.get_running_loop(),
                          self._execute_sql)
        try:
            return StepResult(await asyncio.to_thread(self.run_in_thread, prepared, state,
                                                      context, binding))
        finally:
            _apply_writes(ctx, binding)

    def run_in_thread(self, chunk: LuaChunk, state: JSON, context: JSON, binding: Binding,
                      budget: float | None = None) -> JSON:
        """Run on the calling thread's own Lua state (created on first use)."""
        lua_state: LuaState | None = getattr(self._local, "state", None)
        if lua_state is None:
            lua_state = self._local.state = LuaState(self.scripts)
        return lua_state.run(chunk, state, context, binding, budget)

    async def aclose(self) -> None:
        """Drop every thread's Lua state (a run still in flight keeps its own reference)."""
        self._local = threading.local()

    async def _execute_sql(self, sql: str, params: list[JSON] | None) -> SqlOutcome:
        """executeSql on the loop: find pg, then run (middleware.md §5.3 error texts)."""
        try:
            pg = cast(SqlExecutor, self.host.middleware("pg"))
        except KeyError:
            return None, "database not configured"
        if params is None:
            return None, "params must be a table/array"
        try:
            return await pg.execute_sql(sql, params), None
        except WebpipeError as exc:
            return None, exc.message
        except Exception as exc:  # any driver failure becomes executeSql's error value
            return None, str(exc)

    def _syntax_error(self, source: str) -> str | None:
        with self._checker_lock:
            if self._checker is None:
                runtime = lua54.LuaRuntime(encoding=None, register_eval=False,
                                           register_builtins=False)
                self._checker = runtime.eval(
                    "function(src) local _, err = load(src, '=lua', 't'); return err end"
                )
            err = self._checker(source.encode())
        return None if err is None else _text(err)
