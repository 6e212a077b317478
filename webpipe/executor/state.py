"""Pipeline state helpers: error envelopes, the state rules, and a pipeline's outcome.

The state is a plain Python JSON value passed between steps; middleware treat their input
as read-only and steps build new containers instead of mutating (so snapshots are cheap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webpipe.middleware.base import Behavior

JSON_CT = "application/json"

# spec/language.md §6.3: keys a non-final Transform copies back when its output lacks them
RESTORED_KEYS = ("async", "data", "originalRequest", "query", "params", "body", "headers",
                 "cookies", "method", "path", "ip", "content_type")


@dataclass(slots=True)
class Outcome:
    """What running a pipeline body produced."""

    state: Any
    content_type: str = JSON_CT
    status: int | None = None
    # request keys the state rules copied back (§6.3): left out of a response that still
    # holds the request's value for them (webpipe.respond)
    restored: set[str] = field(default_factory=set)


# the keys of the initial state that describe the request (RESTORED_KEYS but `async`/`data`)
REQUEST_KEYS = ("originalRequest", "query", "params", "body", "headers", "cookies", "method",
                "path", "ip", "content_type")
_REQUEST_KEY_SET = frozenset(REQUEST_KEYS)


def carried(value: Any, new_state: Any) -> list[str]:
    """The request keys of `new_state` that a step's `value` did not have: the state rules
    (restore, Merge, `.data` wrapping) carried them along."""
    if not isinstance(new_state, dict):
        return []
    if not isinstance(value, dict):
        return [k for k in REQUEST_KEYS if k in new_state]
    return [k for k in REQUEST_KEYS if k in new_state and k not in value]


def without_restored(state: Any, restored: set[str] | None, request: Any) -> Any:
    """`state` without the carried keys (`carried`) that still hold the request's value:
    what a route answers and what a cache stores (spec/server.md §6)."""
    if not restored or not isinstance(state, dict) or not isinstance(request, dict):
        return state
    drop = [key for key in restored
            if key in state and key in request and state[key] == request[key]]
    if not drop:
        return state
    return {k: v for k, v in state.items() if k not in drop}


def error_type(state: Any) -> str | None:
    """`errors[0].type` when the state is an error envelope, else None."""
    if isinstance(state, dict):
        errors = state.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            kind = errors[0].get("type")
            return kind if isinstance(kind, str) else None
    return None


def envelope(kind: str, message: str, step: str, location: str | None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message, "step": step}
    if location:
        error["location"] = location
    return {"errors": [error]}


def rename_error(value: Any, name: str) -> Any:
    """`@error(NAME)`: set `errors[0].type` of an envelope-shaped value."""
    if isinstance(value, dict):
        errors = value.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return {**value, "errors": [{**errors[0], "type": name}, *errors[1:]]}
    return value


def merge(state: Any, value: Any) -> Any:
    if isinstance(state, dict) and isinstance(value, dict):
        return {**state, **value}
    return value


def transform(state: Any, value: Any, last: bool) -> Any:
    return transform_carried(state, value, last)[0]


def transform_carried(state: Any, value: Any, last: bool) -> tuple[Any, list[str]]:
    """`transform`'s state, with the request keys it carried along (what `carried` of it
    gives), in one pass: a plain body's Transform steps run this per step."""
    carried_keys: list[str] = []
    if last or not isinstance(value, dict) or not isinstance(state, dict):
        return value, carried_keys
    out = None
    for key in RESTORED_KEYS:
        if key in state and key not in value:
            if out is None:
                out = dict(value)
            out[key] = state[key]
            if key in _REQUEST_KEY_SET:
                carried_keys.append(key)
    return value if out is None else out, carried_keys


def wrap_data(state: Any, target: str, value: Any) -> Any:
    if not isinstance(state, dict):
        return {"data": {target: value}}
    data = state.get("data")
    data = dict(data) if isinstance(data, dict) else {}
    data[target] = value
    return {**state, "data": data}


def apply_value(behavior: Behavior, wraps_data: bool, target: str | None, state: Any,
                value: Any, last: bool) -> Any:
    """The state after a step produced `value` (spec/language.md §6.3)."""
    if wraps_data and target and error_type(value) is None:
        return wrap_data(state, target, value)
    if behavior is Behavior.MERGE:
        return merge(state, value)
    if behavior is Behavior.TRANSFORM:
        return transform(state, value, last)
    return value


def timeout_value(ms: int) -> dict[str, str]:
    """A task's value when its deadline passed."""
    return {"error": f"timeout after {ms} ms", "type": "timeout"}


def failure_text(value: Any) -> str:
    """A task's failure in one line: its `error` text or its first envelope error."""
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return str(value["error"])
    errors = value.get("errors") if isinstance(value, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return f"{first.get('type')}: {first.get('message', '')}"
    return "failed"
