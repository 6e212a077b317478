"""AST → plain JSON-able data, for golden files and `--json` tooling.

Each node becomes `{"node": ClassName, field: value, …}` without positions (spans and the
other fields that do not take part in equality); tuples become lists and enums their values.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


def dump(node: Any) -> Any:
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        out: dict[str, Any] = {"node": type(node).__name__}
        for f in dataclasses.fields(node):
            if not f.compare:  # spans, comments, keyword offsets
                continue
            out[f.name] = dump(getattr(node, f.name))
        return out
    if isinstance(node, tuple | list):
        return [dump(item) for item in node]
    if isinstance(node, enum.Enum):
        return node.value
    return node
