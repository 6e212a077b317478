"""The requests that read or change a paused thread: stack, scopes, variables, evaluate.

Frame ids encode the thread (`thread * FRAMES + index`, index 0 the innermost). Every
frame of a thread shows the thread's one state: the state a step is about to receive.
Scopes are `State`, `Async` (the joined `.async` values and the `@async` tasks still
pending) and `Context` (`$context`, read-only). `evaluate` runs a jq program against the
state through the app's jq (inline under the fast path's budget, else on a sandbox worker
under `jqTimeoutMs`), never on the event loop unbounded; `setVariable` takes JSON or, when
the text is not JSON, a jq expression evaluated the same way.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from webpipe.debugger.variables import (
    Path,
    Ref,
    child_key,
    children,
    lookup,
    set_in,
    variable,
)
from webpipe.debugger.wire import DapError
from webpipe.jqlib import JqError, JqProgram, NeedsWorker
from webpipe.wire import json_type

if TYPE_CHECKING:
    from webpipe.debugger.hook import Debugger
    from webpipe.debugger.session import DapSession, Handler
    from webpipe.debugger.threads import Thread

FRAMES = 1000  # frame ids per thread
Args = dict[str, Any]
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def paused_thread(debugger: Debugger, thread_id: int) -> Thread:
    thread = debugger.threads.get(thread_id)
    if thread is None or not thread.paused:
        raise DapError(f"thread {thread_id} is not paused")
    return thread


async def _stack_trace(session: DapSession, args: Args) -> dict[str, Any]:
    thread = session.debugger.threads.get(int(args["threadId"]))
    if thread is None or not thread.paused:
        return {"stackFrames": [], "totalFrames": 0}
    frames = []
    for index, frame in enumerate(reversed(thread.frames[-FRAMES:])):
        span = frame.span
        path = session.debugger.index.file_of(span.source)
        name = frame.name if frame.is_test else f"{frame.name} |> {frame.step}"
        frames.append({"id": thread.id * FRAMES + index, "name": name,
                       "source": {"name": span.source.name.rsplit("/", 1)[-1], "path": path},
                       "line": span.line, "column": span.column,
                       "endLine": span.end_line, "endColumn": span.end_column})
    return {"stackFrames": frames, "totalFrames": len(frames)}


def _frame_thread(session: DapSession, args: Args) -> Thread:
    return paused_thread(session.debugger, int(args["frameId"]) // FRAMES)


async def _scopes(session: DapSession, args: Args) -> dict[str, Any]:
    thread = _frame_thread(session, args)
    refs = session.debugger.refs
    thread.roots.setdefault("context", thread.ctx.context_json())
    scopes = [("State", Ref(thread.id, "state", ())), ("Async", Ref(thread.id, "async", ())),
              ("Context", Ref(thread.id, "context", ()))]
    return {"scopes": [{"name": name, "variablesReference": refs.add(ref),
                        "expensive": False} for name, ref in scopes]}


def _root(thread: Thread, root: str) -> Any:
    return thread.state if root in ("state", "async") else thread.roots[root]


async def _variables(session: DapSession, args: Args) -> dict[str, Any]:
    ref = _ref(session, int(args["variablesReference"]))
    thread = paused_thread(session.debugger, ref.thread)

    def ref_of(path: Path) -> int:
        return session.debugger.refs.add(Ref(thread.id, _stored_root(ref.root), path))

    if ref.root == "async":
        return {"variables": _async_scope(thread, ref_of)}
    value = lookup(_root(thread, ref.root), ref.path)
    page = children(value, ref.path, ref_of, int(args.get("start", 0)),
                    int(args.get("count", 0)))
    return {"variables": page}


def _stored_root(root: str) -> str:
    return "state" if root == "async" else root


def _async_scope(thread: Thread, ref_of: Any) -> list[dict[str, Any]]:
    """`.async` (the values joined so far) and the tasks still pending."""
    state = thread.state
    joined = state.get("async") if isinstance(state, dict) else None
    out = children(joined, ("async",), ref_of) if isinstance(joined, dict) else []
    tasks = thread.ctx.existing_tasks()
    for name, (task, _info) in (tasks.handles.items() if tasks is not None else ()):
        status = "finished, not joined yet" if task.done() else "running"
        out.append({"name": f"{name} (pending)", "value": status, "type": "task",
                    "variablesReference": 0})
    return out


def _ref(session: DapSession, ref_id: int) -> Ref:
    ref = session.debugger.refs.refs.get(ref_id)
    if ref is None:
        raise DapError(f"variables reference {ref_id} is no longer valid (the thread ran on)")
    return ref


async def _set_variable(session: DapSession, args: Args) -> dict[str, Any]:
    ref = _ref(session, int(args["variablesReference"]))
    thread = paused_thread(session.debugger, ref.thread)
    if ref.root not in ("state", "async"):
        raise DapError("only the pipeline state can be changed ($context and "
                       "evaluated values are read-only)")
    if thread.frames and thread.frames[-1].is_test:
        raise DapError("a test's `it` line shows its values read-only; step into the test "
                       "to change the state its steps receive")
    container_path: Path = ("async",) if ref.root == "async" else ref.path
    name = str(args["name"])
    try:
        container = lookup(thread.state, container_path)
        path = (*container_path, child_key(container, name))
    except (KeyError, IndexError, TypeError) as exc:
        raise DapError(f"cannot set {name}: {exc}") from None
    value = await _value_of(thread, str(args["value"]))
    try:
        thread.state = set_in(thread.state, path, value)
    except KeyError as exc:
        raise DapError(str(exc)) from None
    answer = variable(name, value, path, lambda p: session.debugger.refs.add(
        Ref(thread.id, "state", p)))
    return {key: answer[key] for key in ("value", "type", "variablesReference")
            if key in answer}


async def _value_of(thread: Thread, text: str) -> Any:
    """JSON text as is; anything else as a jq expression on the state."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return await run_jq(thread, text)
    except JqError as exc:
        raise DapError(f"not JSON, and not a jq expression: {exc}") from None


async def _evaluate(session: DapSession, args: Args) -> dict[str, Any]:
    if "frameId" not in args:
        raise DapError("evaluate needs a paused request (select a stack frame)")
    thread = _frame_thread(session, args)
    text = str(args["expression"]).strip()
    if args.get("context") == "hover" and _BARE_NAME.fullmatch(text):
        text = "." + text  # a hovered key of the state, not a jq builtin
    try:
        value = await run_jq(thread, text)
    except JqError as exc:
        raise DapError(str(exc)) from None
    if value is None and args.get("context") == "hover":
        raise DapError(f"{text} is null")  # no hover box over words that are not keys
    key = f"eval:{session.debugger.refs.next_id}"
    thread.roots[key] = value
    answer = variable("result", value, (), lambda p: session.debugger.refs.add(
        Ref(thread.id, key, p)))
    answer.pop("evaluateName")
    return {"result": answer["value"], "type": json_type(value),
            **{k: answer[k] for k in ("variablesReference", "namedVariables",
                                      "indexedVariables") if k in answer}}


async def run_jq(thread: Thread, text: str) -> Any:
    """The first output of jq `text` on the thread's state, bounded like a step's jq.
    Not through `compile_jq`: the client's expressions stay out of the program's cache."""
    program = JqProgram(text)
    context = thread.ctx.context_json() if program.uses_context else None
    try:
        return program.first_inline(thread.state, context)
    except NeedsWorker:
        env = thread.env
        assert env is not None, "a paused thread keeps its env"
        limits = env.limits
        return await program.run_in_worker(thread.state, context, env.sandbox(),
                                           limits.jq_timeout_ms, limits.jq_memory_mb)


COMMANDS: dict[str, Handler] = {
    "stackTrace": _stack_trace,
    "scopes": _scopes,
    "variables": _variables,
    "setVariable": _set_variable,
    "evaluate": _evaluate,
}
