"""The sandbox worker's `js` handler: one JavaScript run on QuickJS (spec/js.md).

The payload is `{"source", "request", "context", "flags", "conditions", "scripts"}`. Every
run gets a fresh QuickJS context (about 0.15 ms), so nothing a script does survives it:
the scripts folder's `*.js` files are evaluated first, each completion value bound to a
global named after its file, then the step's source runs as the body of a strict-mode
function of `request` and `context`. QuickJS here has no module loader, `std`, `os`,
timers or network; `eval` and `Function` are removed as in the reference. The run's
memory is bounded twice: QuickJS's own allocator limit (a script gets `out of memory`) and
the worker's `RLIMIT_AS`. Time is the parent's deadline, which kills the worker (QuickJS's
own time limit refuses calls into Python, which `executeSql` and `getEnv` are). The answer
is `{"value", "flags", "conditions"}`; the result is converted
with `undefined` as `null` and BigInt as its decimal string. A script error is raised as
`HandlerError("<Error>: <message>|<line>")` where line counts from the step's source.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import quickjs

from webpipe.sandbox.channel import Channel, HandlerError

# The step's source starts on the wrapper's first line, so QuickJS's line is the source's.
_HEAD = ("(function (request, context, __flags, __conditions) {'use strict'; "
         "const getFlag = (k) => __flags[k] === true; "
         "const setFlag = (k, v) => { __flags[k] = v === true; }; "
         "const getWhen = (k) => __conditions[k] === true; "
         "const setWhen = (k, v) => { __conditions[k] = v === true; }; ")
_TAIL = "\n})"
_PRELUDE = """
globalThis.executeSql = function (sql, params) {
  if (typeof sql !== 'string') throw new TypeError('executeSql requires query string');
  if (params !== undefined && params !== null && !Array.isArray(params))
    throw new TypeError('params must be an array');
  const answer = JSON.parse(__executeSql(sql, JSON.stringify(params || [])));
  if (answer.error !== undefined) throw new Error(answer.error);
  return answer.value;
};
globalThis.getEnv = function (name) {
  if (typeof name !== 'string') throw new TypeError('getEnv requires string argument');
  const value = __getEnv(name);
  return value === null ? undefined : value;
};
"""
# as the reference; QuickJS has no dangerous capability for them to reach anyway
_LOCKDOWN = "eval = undefined; Function = undefined;"
# Runs the step's function on JSON text and answers JSON text, so no value crosses into
# Python on the way (a BigInt would arrive as a float)
_RUNNER = """(f, request, context, flags, conditions) => {
  const fl = JSON.parse(flags), co = JSON.parse(conditions);
  const value = f(JSON.parse(request), JSON.parse(context), fl, co);
  return JSON.stringify({ value, flags: fl, conditions: co },
    (k, x) => x === undefined ? null : (typeof x === 'bigint' ? x.toString() : x));
}"""
_LINE = re.compile(r"<input>:(\d+)")
_MB = 1024 * 1024


def run(payload: dict[str, Any], channel: Channel) -> Any:
    ctx = quickjs.Context()
    ctx.set_memory_limit(int(payload.get("memory_mb", 256)) * _MB)
    ctx.add_callable("__executeSql", lambda sql, params: _sql(channel, sql, params))
    ctx.add_callable("__getEnv", lambda name: os.environ.get(str(name)))
    try:
        ctx.eval(_PRELUDE)
        for name, source in payload.get("scripts", {}).items():
            ctx.set(name, _script(ctx, name, source))
        ctx.eval(_LOCKDOWN)
        function = ctx.eval(wrap(payload["source"]))
        answer = ctx.eval(_RUNNER)(function, *(json.dumps(payload.get(key)) for key in
                                               ("request", "context", "flags", "conditions")))
        return json.loads(answer)
    except quickjs.JSException as exc:
        if _out_of_memory(str(exc)):
            raise MemoryError from None  # the worker reports SandboxMemory
        raise HandlerError(describe(str(exc))) from None


def _out_of_memory(text: str) -> bool:
    # QuickJS throws `null` when it cannot even allocate the error object
    return text.strip() in ("null", "") or text.startswith("InternalError: out of memory")


def _script(ctx: Any, name: str, source: str) -> Any:
    try:
        return ctx.eval(source)
    except quickjs.JSException as exc:
        if _out_of_memory(str(exc)):
            raise MemoryError from None
        message = str(exc).strip().splitlines()[0]
        raise HandlerError(f"JavaScript script '{name}' execution error: {message}|") from None


def _sql(channel: Channel, sql: Any, params: Any) -> str:
    """executeSql through the server (its pg pool); never raises into QuickJS."""
    try:
        value = channel.call("executeSql", {"sql": str(sql), "params": json.loads(params)})
        return json.dumps({"value": value})
    except HandlerError as exc:
        return json.dumps({"error": str(exc)})


def wrap(source: str) -> str:
    """The step's source as the function the handler runs (also compiled at load)."""
    return _HEAD + source + _TAIL


def describe(text: str) -> str:
    """`Message|line` from QuickJS's `Message\\n    at f (<input>:LINE)` (line may be empty)."""
    lines = text.strip().splitlines()
    message = lines[0] if lines else "JavaScript error"
    found = _LINE.search(text)
    return f"{message}|{found.group(1) if found else ''}"
