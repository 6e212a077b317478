"""Control flow: `result`, `if`, `dispatch` and `foreach` (spec/language.md §5).

Each function updates the body's `Outcome` in place (`run_result` returns it, since a
`result` step always ends its body).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webpipe.executor.state import JSON_CT, Outcome, error_type
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    pass


def choose_branch(step: n.ResultStep, state: Any) -> int | None:
    """The index of the branch named by the error type (or `ok`), else of the first
    `default`."""
    wanted = error_type(state) or "ok"
    for name in (wanted, "default"):
        for index, branch in enumerate(step.branches):
            if branch.name == name:
                return index
    return None


def take_branch(out: Outcome, inner: Outcome) -> None:
    out.state = inner.state
    if inner.status is not None:
        out.status = inner.status
    if inner.content_type != JSON_CT:
        out.content_type = inner.content_type


def selector_path(selector: str) -> list[str | int]:
    """`cart.lines`, `.items`, `rows.0` → path segments; `.` or empty → the state itself."""
    parts = [p for p in selector.lstrip(".").split(".") if p != ""]
    return [int(p) if p.isascii() and p.isdigit() and len(p) < 19 else p for p in parts]


def get_path(value: Any, path: list[str | int]) -> Any:
    for key in path:
        indexable = isinstance(key, int) and isinstance(value, list) and key < len(value)
        if not indexable and not (isinstance(value, dict) and key in value):
            return None
        value = value[key]
    return value


def set_path(value: Any, path: list[str | int], new: Any) -> Any:
    if not path:
        return new
    key, rest = path[0], path[1:]
    if isinstance(value, list) and isinstance(key, int):
        copy = list(value)
        copy[key] = set_path(copy[key], rest, new)
        return copy
    assert isinstance(value, dict)
    return {**value, str(key): set_path(value[str(key)], rest, new)}


