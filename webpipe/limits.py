"""Bounds on what a request or a `.wp` author can make unbounded: `config limits { }`.

One frozen `Limits` per app, read from the `limits` config block (values may come from the
environment as strings, like every config value). Middleware read it through
`limits_of(host)`; the server reads it once at startup. Every key, its default and what it
bounds is listed in spec/limits.md, which is the user-facing table; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from webpipe.config import config_int

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Defaults are the values in force without a `config limits` block."""

    jq_timeout_ms: int = 1000  # one jq run (a step's `@timeout(ms)` overrides it)
    jq_memory_mb: int = 256  # memory one jq run may use
    lua_timeout_ms: int = 1000  # one Lua run
    lua_memory_mb: int = 256
    js_timeout_ms: int = 1000  # one JavaScript run
    js_memory_mb: int = 256
    sandbox_workers: int = 2  # worker processes that run embedded code past its inline budget
    max_json_depth: int = 512  # nesting of a request body (and of JSON read from upstreams)
    max_json_containers: int = 200_000  # arrays and objects in one request or fetch body
    max_body_bytes: int = 10 * MB  # a request body
    header_timeout_ms: int = 10_000  # from connection (or last response) to a complete head
    body_timeout_ms: int = 30_000  # to read a whole request body
    keep_alive_ms: int = 5_000  # an idle keep-alive connection is closed after this
    fetch_max_bytes: int = 10 * MB  # an upstream response body read by `fetch`
    pg_statement_timeout_ms: int = 30_000  # one SQL statement

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> Limits:
        """The limits of a resolved `config limits { }` block (camelCase keys)."""
        default = cls()
        values = {f.name: config_int(block, _camel(f.name), getattr(default, f.name))
                  for f in fields(cls)}
        return cls(**values)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


KEYS: tuple[str, ...] = tuple(  # the camelCase spellings `config limits` accepts
    _camel(f.name) for f in fields(Limits))


class ConfigHost(Protocol):
    def config_block(self, name: str) -> Mapping[str, Any] | None: ...


def limits_of(host: ConfigHost) -> Limits:
    """The app's limits (from its `config limits` block, else the defaults)."""
    return Limits.from_config(host.config_block("limits"))
