"""The `lua` middleware: run a Lua 5.4 chunk, its return value becomes the state.

Spec: spec/middleware.md §5 (our decisions: spec/lua.md). `prepare()` checks the chunk's
syntax once at load and finds the request keys it reads. `run_sync()` (and `run_pure()`, its
value alone, for a plain body) runs the chunk on the event loop under a small CPU and memory
budget (a process round trip costs more than a small chunk's whole run). A chunk that goes
over it, or calls `executeSql`, is abandoned (nothing of it is kept) and `run()` redoes it
in a sandbox worker process (`webpipe.sandbox`, handler `lua_handler.py`) under the app's
`luaTimeoutMs` / `luaMemoryMb` (a step's `@timeout(ms)` overrides the time); that chunk goes
to a worker from then on. A worker can be killed, so no script keeps a thread or the loop:
the pool's size bounds the runs in flight, the others wait within their deadline.
`executeSql` in a worker calls back to this process, which runs it through the `pg`
middleware. Flag and condition writes come back with the answer and are applied here.
`lua_state.py` holds the runtime and the bounds of one run.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

import orjson
from lupa import lua54

from webpipe.embedded import lua_position
from webpipe.errors import ConfigError, StepError, WebpipeError
from webpipe.executor.context import RequestContext
from webpipe.middleware.base import (
    JSON,
    BaseMiddleware,
    Behavior,
    MiddlewareHost,
    RequestView,
    RunAsync,
    StepCall,
    StepResult,
)
from webpipe.middleware.lua_compile import compile_chunk, enabled
from webpipe.middleware.lua_ops import Fallback
from webpipe.middleware.lua_state import (
    Binding,
    Budget,
    LuaChunk,
    LuaState,
    RunElsewhere,
    ScriptsTooHeavy,
    SqlOutcome,
    _text,
)
from webpipe.sandbox.pool import SandboxError, SandboxMemory, SandboxTimeout
from webpipe.source import Span

_CONTEXT_NAME = re.compile(r"\bcontext\b")
_REQUEST_NAME = re.compile(r"\brequest\b")
_FIELD = re.compile(r"\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
# names through which a chunk can reach a global by a computed name
_DYNAMIC_GLOBALS = re.compile(r"\b(?:_ENV|_G|load)\b")
# CPU seconds a chunk may run on the event loop before it is redone in a worker
INLINE_BUDGET = 0.001
# JSON size of an input past which a run goes straight to a worker: building its Lua tables
# costs ~40 ms per MB on the loop
INLINE_INPUT_BYTES = 256 * 1024
# past the deadline the worker's own hook stops the run; the pool kills it this much later
# (a run stuck in C code, e.g. a pattern match, where no hook fires)
KILL_GRACE_S = 0.25
# how much earlier than a step's @timeout(ms) the worker's own hook stops the run, so that
# it answers before the executor's cut (spec/tasks.md) and the worker lives on
STEP_TIMEOUT_LEAD_S = 0.05
# address space a worker needs beyond the Lua heap (Python, conversions of the result)
WORKER_OVERHEAD_MB = 64


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


class SqlExecutor(Protocol):
    """What `host.middleware("pg")` must offer for `executeSql` (spec/lua.md "executeSql")."""

    async def execute_sql(self, sql: str, params: list[JSON]) -> dict[str, JSON]: ...


def _request_view(ctx: RequestView | None, chunk: LuaChunk) -> tuple[RequestView, JSON]:
    """The request's context (a blank one outside a request) and the chunk's `context`."""
    if ctx is None:
        ctx = RequestContext()
    return ctx, ctx.context_json() if chunk.uses_context else None


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


def _input_of(chunk: LuaChunk, state: JSON) -> JSON:
    """What the chunk gets as `request`: only the top-level keys it can read, when known."""
    if chunk.request_keys is not None and type(state) is dict:
        return {key: state[key] for key in chunk.request_keys if key in state}
    return state


def _too_big_for_the_loop(state: JSON, context: JSON) -> bool:
    """Whether converting the input to Lua would hold the event loop too long (~40 ms per
    MB): measured by its JSON size, ~1 µs for a usual request."""
    try:
        size = len(orjson.dumps(state))
        if context is not None:
            size += len(orjson.dumps(context))
    except TypeError:  # not orjson's JSON (an integer past 64 bits): small in practice
        return False
    return size > INLINE_INPUT_BYTES


def _run_seconds(step_ms: int | None, default_ms: int) -> float:
    """A worker run's time: `luaTimeoutMs`, or the step's @timeout(ms) a little early: the
    executor also cuts the step at its @timeout (spec/tasks.md), which cancels the run and
    kills its worker (a respawn for the next run); the worker's own hook answers first."""
    if step_ms is None:
        return default_ms / 1000
    return max(0.0, step_ms / 1000 - STEP_TIMEOUT_LEAD_S)


def _apply_writes(ctx: RequestView, flags: Mapping[str, bool],
                  conditions: Mapping[str, bool]) -> None:
    ctx.flags.update(flags)
    ctx.conditions.update(conditions)


class LuaMiddleware(BaseMiddleware):
    """`|> lua: `...`` — see the module docstring."""

    behavior: ClassVar[Behavior] = Behavior.TRANSFORM
    sync: ClassVar[bool] = True  # inline under its budget, else `RunAsync`
    # an inline run keeps nothing but its answer (flag and condition writes are the
    # request's; `executeSql` hands the run to a worker before any statement runs)
    tryable: ClassVar[bool] = True
    # a run's value is all it gives (flag and condition writes go to the request's context):
    # in a plain body the executor applies it directly (`run_pure`, spec/decisions.md)
    pure: ClassVar[bool] = True

    def __init__(self, host: MiddlewareHost) -> None:
        super().__init__(host)
        self.scripts = load_scripts(scripts_dir())  # read once at startup (§5.1)
        self._scripts_id = hashlib.sha256(repr(sorted(self.scripts.items())).encode()
                                          ).hexdigest()[:16]
        self._inline_budget = Budget(self.limits.lua_timeout_ms, self.limits.lua_memory_mb,
                                     inline_cpu=INLINE_BUDGET)
        self._local = threading.local()  # the inline state (the loop thread's)
        self._checker_lock = threading.Lock()
        self._checker: Any = None
        # chunks that went over the inline budget or call executeSql: always in a worker
        self._in_worker: set[LuaChunk] = set()
        # the scripts directory is too heavy to load on the loop: every chunk runs in workers
        self._workers_only = False

    def prepare(self, config: str, span: Span | None) -> LuaChunk:
        """Check the chunk's syntax once, at load time."""
        err = self._syntax_error(config)
        if err is not None:
            located = lua_position(err, config)
            if located is None:
                raise ConfigError(f"Lua syntax error: {err}", span=span)
            raise ConfigError(f"Lua syntax error: {located[0]}", span=span, at=located[1])
        # a scripts directory can change what a run sees (its loading can fail every run):
        # compiled chunks only without one
        compiled = compile_chunk(config) if enabled() and not self.scripts else None
        chunk = LuaChunk(config, uses_context=_CONTEXT_NAME.search(config) is not None,
                         request_keys=request_keys(config), compiled=compiled)
        if "executeSql" in config:  # known up front: skip the inline attempt
            self._in_worker.add(chunk)
        return chunk

    def input_keys(self, prepared: object) -> frozenset[str] | None:
        """The top-level input keys the chunk can read (None: maybe all, `context` too)."""
        if not isinstance(prepared, LuaChunk) or prepared.uses_context:
            return None
        return prepared.request_keys

    def run_sync(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        return StepResult(self.run_pure(state, prepared, call.ctx))

    def run_pure(self, state: JSON, prepared: object, ctx: RequestView | None) -> JSON:
        """The compiled chunk's answer when it has one (spec/lua.md "Compiled subset"),
        else the inline attempt, on the event loop under `INLINE_BUDGET`; `RunAsync` when
        the chunk belongs in a worker (it then stays there)."""
        assert isinstance(prepared, LuaChunk), "prepare() output expected"
        if prepared.compiled is not None:
            try:
                return prepared.compiled(state)  # pure: nothing to undo on a fall-back
            except Fallback:
                pass
        if prepared in self._in_worker or self._workers_only:
            raise RunAsync
        ctx, context = _request_view(ctx, prepared)
        state = _input_of(prepared, state)
        if _too_big_for_the_loop(state, context):
            raise RunAsync  # converting it to Lua would hold the loop (this input only)
        # an inline run is synchronous: it may read the live flags, no snapshot needed
        binding = Binding(ctx.flags, ctx.conditions)
        try:
            value = self.run_here(prepared, state, context, binding, self._inline_budget)
        except ScriptsTooHeavy:
            self._workers_only = True
            raise RunAsync from None
        except RunElsewhere:
            self._in_worker.add(prepared)  # nothing of the abandoned run is kept
            raise RunAsync from None
        except StepError:
            _apply_writes(ctx, binding.flag_writes, binding.condition_writes)
            raise
        if binding.flag_writes or binding.condition_writes:
            _apply_writes(ctx, binding.flag_writes, binding.condition_writes)
        return value

    def run_here(self, chunk: LuaChunk, state: JSON, context: JSON, binding: Binding,
                 budget: Budget) -> JSON:
        """Run on the calling thread's own Lua state (made on first use, dropped after a
        run that changed its shared tables)."""
        lua_state: LuaState | None = getattr(self._local, "state", None)
        if lua_state is None:
            lua_state = self._local.state = LuaState(self.scripts, budget)
        try:
            return lua_state.run(chunk, state, context, binding, budget)
        finally:
            if lua_state.dirty:
                self._local.state = None

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        try:
            return self.run_sync(state, prepared, call)
        except RunAsync:
            pass
        assert isinstance(prepared, LuaChunk)
        ctx, context = _request_view(call.ctx, prepared)
        answer = await self._run_in_worker(prepared, state, context, ctx, call.timeout_ms)
        _apply_writes(ctx, answer.get("flags") or {}, answer.get("conditions") or {})
        if "error" in answer:
            raise StepError(str(answer["error"]), error_type=answer.get("type"))
        return StepResult(answer.get("value"))

    async def _run_in_worker(self, chunk: LuaChunk, state: JSON, context: JSON,
                             ctx: RequestView, timeout_ms: int | None) -> dict[str, Any]:
        seconds = _run_seconds(timeout_ms, self.limits.lua_timeout_ms)
        timeout_ms = timeout_ms or self.limits.lua_timeout_ms
        memory_mb = self.limits.lua_memory_mb
        payload = {
            "source": chunk.source, "state": _input_of(chunk, state), "context": context,
            "flags": dict(ctx.flags), "conditions": dict(ctx.conditions),
            "scripts": self.scripts, "scripts_id": self._scripts_id,
            "deadline": time.monotonic() + seconds,
            "timeout_ms": timeout_ms, "memory_mb": memory_mb,
        }
        try:
            answer = await self.host.sandbox().run(
                "lua", payload, timeout_s=seconds + KILL_GRACE_S,
                memory_mb=memory_mb + WORKER_OVERHEAD_MB, callback=self._callback)
        except SandboxTimeout:
            raise StepError(f"Lua chunk exceeded its {timeout_ms} ms time budget",
                            error_type="timeout") from None
        except SandboxMemory:
            raise StepError(f"Lua chunk exceeded its {memory_mb} MB memory budget",
                            error_type="limitError") from None
        except SandboxError as exc:
            raise StepError(f"Lua execution error: {exc.message}") from None
        return cast(dict[str, Any], answer)

    async def _callback(self, name: str, payload: Any) -> Any:
        """A worker's call back during a run: only `executeSql`."""
        if name != "executeSql":
            raise ValueError(f"unknown callback {name!r}")
        result, err = await self._execute_sql(payload["sql"], payload["params"])
        return [result, err]

    async def aclose(self) -> None:
        """Drop the inline state (the app owns and closes the sandbox workers)."""
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
