"""Every jq program in the project's .wp files (jq steps and jq variables), and request-like
inputs to run them on."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from webpipe.source import Source
from webpipe.syntax import nodes as n
from webpipe.syntax.parser import parse

ROOT = Path(__file__).resolve().parents[2]
WP_GLOBS = ("tests/wp/*.wp", "examples/**/*.wp", "tests/golden/parse/*.wp")


def wp_files() -> list[Path]:
    return sorted({path for pattern in WP_GLOBS for path in ROOT.glob(pattern)})


def jq_programs() -> list[str]:
    """The distinct jq programs, in first-seen order."""
    found: dict[str, None] = {}
    for path in wp_files():
        program = parse(Source(str(path), path.read_text(encoding="utf-8")))
        for text in _walk(program):
            found.setdefault(text, None)
    return list(found)


def _walk(node: Any) -> list[str]:
    if isinstance(node, tuple | list):
        return [text for item in node for text in _walk(item)]
    if not dataclasses.is_dataclass(node) or isinstance(node, type):
        return []
    found: list[str] = []
    if isinstance(node, n.MiddlewareStep) and node.name == "jq" and node.config is not None:
        found.append(node.config)
    if isinstance(node, n.Variable) and node.kind == "jq":
        found.append(node.body)
    for field in dataclasses.fields(node):
        if field.name not in ("span", "comments"):
            found.extend(_walk(getattr(node, field.name)))
    return found


REQUESTS: list[Any] = [
    {"method": "GET", "path": "/hello/world", "params": {"w": "world", "id": "7", "n": 3,
     "who": "Ada", "code": "x1", "mode": "fast", "kind": "bad", "rest": "a/b"},
     "query": {"page": "2", "x": "1.50"}, "headers": {"accept": "*/*"}, "cookies": {},
     "body": None},
    {"method": "POST", "params": {"id": 42}, "query": {}, "body": {"name": "Ada",
     "user": "u1", "order": {"id": 1, "items": [{"qty": 2, "price": 1.5}]}}, "n": 1.0,
     "trace": ["start"], "value": 2.5, "greeting": "hi", "x": -0.0, "title": "T"},
    {"data": {"todoById": {"rowCount": 0, "rows": []}, "markDone": {"rowCount": 1,
     "rows": [{"id": 1, "done": True}]}, "allTodos": {"rows": [{"id": 1}], "rowCount": 1},
     "deleteTodo": {"rowCount": 1}, "insertTodo": {"rows": [{"id": 9}]}},
     "errors": [{"type": "notFound", "message": "no such todo", "field": "id", "task": "t"}],
     "async": {"left": {"a": 1}, "right": {"b": 2}, "calc": {"value": 3}, "bad": {"error":
     "boom"}, "job": 1, "early": {"seen": True}, "slow": None, "quick": {"quick": 1}},
     "cart": {"lines": [{"qty": 2, "unit": 3}, {"qty": 1, "unit": 10.5}]}, "trace": [],
     "n": 100000000000000000000001, "size": "big", "items": [1, 2], "a": 1, "b": {"c": 2}},
    {},
    {"params": {"id": "é😀"}, "errors": [], "trace": None, "data": None, "n": 1e17},
    [1, 2, 3],
    "text",
    None,
]
CONTEXTS: list[Any] = [{"flags": {"beta": True}, "env": "prod"}, None]
