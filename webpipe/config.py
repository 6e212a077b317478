"""`config NAME { }` blocks → plain dicts, with `$ENV || "default"` resolved.

Blocks of the main file and its direct imports count (imports first, so the main file
wins); repeated keys and repeated blocks: last wins (spec/language.md §3.1). A `$VAR`
without default whose variable is unset makes the whole block unresolvable (None), as in the
reference. Environment values are strings; `config_int`/`config_bool` accept both the
typed literal and its string spelling, in this one place (spec/decisions.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from webpipe.syntax import nodes as n

ConfigBlocks = dict[str, dict[str, Any] | None]


def resolve_block(block: n.ConfigBlock, environ: Mapping[str, str]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for prop in block.props:
        value = prop.value
        if isinstance(value, n.EnvRef):
            if value.var in environ:
                out[prop.key] = environ[value.var]
            elif value.has_default:
                out[prop.key] = value.default
            else:
                return None
        else:
            out[prop.key] = value
    return out


def resolve_blocks(blocks: Iterable[n.ConfigBlock],
                   environ: Mapping[str, str] | None = None) -> ConfigBlocks:
    env = os.environ if environ is None else environ
    resolved: ConfigBlocks = {}
    for block in blocks:
        resolved[block.name] = resolve_block(block, env)
    return resolved


def config_int(block: Mapping[str, Any] | None, key: str, default: int) -> int:
    value = (block or {}).get(key)
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text.isascii() and text.isdigit() and len(text) <= 18:  # int() has a digit limit
        return int(text)
    return default


def config_bool(block: Mapping[str, Any] | None, key: str, default: bool) -> bool:
    value = (block or {}).get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return default


def config_str(block: Mapping[str, Any] | None, key: str, default: str | None = None,
               ) -> str | None:
    value = (block or {}).get(key)
    return value if isinstance(value, str) else default
