"""The pipeline state as DAP variables: references, children, previews and edits.

A variables reference names a path into one root value of a paused thread (its state,
its `$context`). References live only while that thread stays paused (DAP's rule), so
they are handed out per pause and dropped on resume. Children of an object are its keys,
of an array its indices (`[0]`), paged with `start`/`count`. Each variable carries its jq
path as `evaluateName`, so "add to watch" evaluates it back through `evaluate`.
`set_in` edits a copy along the path: steps treat the state as read-only and share its
containers with snapshots and `$context.request`, so nothing is changed in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from webpipe.wire import json_type

PREVIEW_CHARS = 120
Path = tuple[str | int, ...]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Ref:
    """What a variables reference points at: a root of a thread's pause and a path."""

    thread: int
    root: str  # "state" | "context"
    path: Path


@dataclass
class RefTable:
    """Every variables reference handed out, across threads (ids are never reused)."""

    refs: dict[int, Ref] = field(default_factory=dict)
    next_id: int = 1

    def add(self, ref: Ref) -> int:
        ref_id, self.next_id = self.next_id, self.next_id + 1
        self.refs[ref_id] = ref
        return ref_id

    def drop_thread(self, thread: int) -> None:
        self.refs = {k: v for k, v in self.refs.items() if v.thread != thread}


def lookup(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


def preview(value: Any) -> str:
    """Compact JSON, cut to `PREVIEW_CHARS` (the panel shows one line per variable)."""
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"


def jq_path(path: Path) -> str:
    """The jq expression reading `path` (`.a.b[0]`, `."odd key"`)."""
    parts = []
    for key in path:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif _IDENT.fullmatch(key):
            parts.append(f".{key}")
        else:
            parts.append("." + orjson.dumps(key).decode())
    return "".join(parts) or "."


def variable(name: str, value: Any, path: Path, ref_of: Any) -> dict[str, Any]:
    """One DAP `Variable`; `ref_of(path)` hands out a reference for a container."""
    out: dict[str, Any] = {"name": name, "value": preview(value), "type": json_type(value),
                           "evaluateName": jq_path(path), "variablesReference": 0}
    if isinstance(value, dict) and value:
        out["variablesReference"] = ref_of(path)
        out["namedVariables"] = len(value)
    elif isinstance(value, list) and value:
        out["variablesReference"] = ref_of(path)
        out["indexedVariables"] = len(value)
    return out


def children(value: Any, path: Path, ref_of: Any, start: int = 0,
             count: int = 0) -> list[dict[str, Any]]:
    """The variables of a container's entries (a page of an array's)."""
    if isinstance(value, dict):
        return [variable(str(k), v, (*path, k), ref_of) for k, v in value.items()]
    if isinstance(value, list):
        end = len(value) if count <= 0 else min(len(value), start + count)
        return [variable(f"[{i}]", value[i], (*path, i), ref_of) for i in range(start, end)]
    return [variable("value", value, path, ref_of)]


def child_key(container: Any, name: str) -> str | int:
    """The key a variable name denotes in `container` (`[3]` is index 3 of an array)."""
    if isinstance(container, list):
        match = _INDEX.fullmatch(name) or re.fullmatch(r"(\d+)", name)
        if match is None or int(match.group(1)) >= len(container):
            raise KeyError(f"no element {name} in this array")
        return int(match.group(1))
    if isinstance(container, dict):
        return name
    raise KeyError(f"{name} is not inside an object or array")


def set_in(root: Any, path: Path, value: Any) -> Any:
    """`root` with the value at `path` replaced, copying each container on the way."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(root, dict):
        return {**root, head: set_in(root.get(head), rest, value)}
    if isinstance(root, list) and isinstance(head, int):
        copy = list(root)
        copy[head] = set_in(copy[head], rest, value)
        return copy
    raise KeyError(f"cannot set {jq_path(path)}: not inside an object or array")
