"""What `cache` and `rateLimit` share: the `KVStore` Protocol, the in-process store, config pairs.

A `KVStore` is a small async key-value store of bytes with per-key expiry plus a windowed
counter (`incr`): enough for cache entries, refresher slots and rate-limit windows, and small
enough that Redis implements it in a few commands (`webpipe.middleware.redis_store`). The
default `MemoryStore` is an LRU `OrderedDict` bounded by entry count and, optionally, total
bytes; it never suspends, so each call is atomic with respect to other requests. Its clock is
injectable, which is how tests move time.

`open_store()` picks the backend from a `config cache`/`config rateLimit` block (`backend`,
`url`) or the `REDIS_URL` environment variable (spec/cache-ratelimit.md §3). The step-config
helpers (`parse_pairs`, `compile_template`) implement the `key: value` list syntax and the
`{dotted.path}` key templates both middleware read (middleware.md §8.1, §9.1).
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import orjson

from webpipe.config import config_str
from webpipe.errors import ConfigError
from webpipe.middleware.base import BaseMiddleware, MiddlewareHost
from webpipe.source import Span

Clock = Callable[[], float]
# A compiled key template: literal text, or a placeholder's path text (between the braces)
TemplatePart = str | tuple[str]
Template = tuple[TemplatePart, ...]
JSON = Any


class StoreError(Exception):
    """The store could not be reached or answered nonsense (only remote backends raise it)."""


class KVStore(Protocol):
    """The async key-value store behind `cache` and `rateLimit` (TTLs in seconds)."""

    def now(self) -> float:
        """The store's clock, in seconds; entries' freshness is measured against it."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store `value` for `ttl` seconds (ttl <= 0 deletes the key)."""
        ...

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store only if the key is absent; True when this call stored it."""
        ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, amount: int, window: float) -> tuple[int, float]:
        """Add `amount` to a counter that starts at 0 and expires `window` seconds after its
        first increment; return the new count and the seconds left until it expires."""
        ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Entry:
    value: bytes
    expires: float


class MemoryStore:
    """In-process `KVStore`: LRU-bounded by entry count and optionally by total value bytes."""

    def __init__(self, *, max_entries: int, max_bytes: int | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.max_entries = max(1, max_entries)
        self.max_bytes = max_bytes
        self.clock = clock
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    def now(self) -> float:
        return self.clock()

    def __len__(self) -> int:
        return len(self._data)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def keys(self) -> list[str]:
        """Keys from least to most recently used (expired ones included until touched)."""
        return list(self._data)

    async def get(self, key: str) -> bytes | None:
        return self.get_nowait(key)

    def get_nowait(self, key: str) -> bytes | None:
        """`get` without a coroutine (an in-process store never waits)."""
        entry = self._live(key)
        if entry is None:
            return None
        self._data.move_to_end(key)
        return entry.value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            self._remove(key)
            return
        self._put(key, value, self.now() + ttl)

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        await self.set(key, value, ttl)
        return ttl > 0

    async def delete(self, key: str) -> None:
        self._remove(key)

    async def incr(self, key: str, amount: int, window: float) -> tuple[int, float]:
        now = self.now()
        entry = self._live(key)
        if entry is None:
            count, expires = amount, now + window
        else:
            count, expires = int(entry.value) + amount, entry.expires
        self._put(key, str(count).encode(), expires)
        return count, expires - now

    async def aclose(self) -> None:
        self._data.clear()
        self._bytes = 0

    def _live(self, key: str) -> _Entry | None:
        entry = self._data.get(key)
        if entry is not None and entry.expires <= self.now():
            self._remove(key)
            return None
        return entry

    def _put(self, key: str, value: bytes, expires: float) -> None:
        self._remove(key)
        self._data[key] = _Entry(value, expires)
        self._bytes += len(value)
        while len(self._data) > self.max_entries or (
                self.max_bytes is not None and self._bytes > self.max_bytes):
            _, evicted = self._data.popitem(last=False)
            self._bytes -= len(evicted.value)

    def _remove(self, key: str) -> None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.value)


def open_store(block: Mapping[str, Any] | None, *, block_name: str, prefix: str,
               span: Span | None, memory: Callable[[], MemoryStore]) -> KVStore:
    """The store a `config <block_name>` block asks for: `backend: "memory"|"redis"` and
    `url`; without `backend`, Redis when `url` or `$REDIS_URL` is set, else `memory()`."""
    backend = config_str(block, "backend")
    url = config_str(block, "url") or os.environ.get("REDIS_URL") or None
    if backend is None:
        backend = "redis" if url else "memory"
    if backend == "memory":
        return memory()
    if backend != "redis":
        raise ConfigError(f"config {block_name}: unknown backend {backend!r} "
                          "(expected \"memory\" or \"redis\")", span=span)
    if not url:
        raise ConfigError(f"config {block_name}: backend \"redis\" needs `url` or $REDIS_URL",
                          span=span)
    try:
        from webpipe.middleware.redis_store import RedisStore
    except ImportError:
        raise ConfigError(f"config {block_name}: the redis backend needs "
                          "`pip install webpipe[redis]`", span=span) from None
    try:
        return RedisStore(url, prefix=prefix)
    except ValueError as exc:  # redis-py checks the URL's scheme and parts when it parses it
        raise ConfigError(f"config {block_name}: bad redis url: {exc}", span=span) from None


class StoreMiddleware(BaseMiddleware):
    """A middleware whose state lives in a `KVStore` (`cache`, `rateLimit`): the store is
    opened from `config <BLOCK>` at the first `prepare()`, closed at shutdown, and
    `reset()` forgets in-process state (a shared Redis store is kept)."""

    BLOCK: ClassVar[str]
    PREFIX: ClassVar[str]

    def __init__(self, host: MiddlewareHost, *, store: KVStore | None = None) -> None:
        super().__init__(host)
        self.store = store

    def _memory(self) -> MemoryStore:
        raise NotImplementedError

    def _open_store(self, span: Span | None) -> None:
        if self.store is None:
            self.store = open_store(self.host.config_block(self.BLOCK), block_name=self.BLOCK,
                                    prefix=self.PREFIX, span=span, memory=self._memory)

    async def aclose(self) -> None:
        if self.store is not None:
            await self.store.aclose()

    async def reset(self) -> None:
        if isinstance(self.store, MemoryStore):
            await self.store.aclose()
            self.store = self._memory()


# ---- step config: `key: value` pairs and key templates ----------------------------------


def parse_pairs(config: str) -> dict[str, str]:
    """`a: 1, b: x` (commas and/or newlines): split at the first `:`, trim; last key wins.
    Parts without `:` are ignored; a value cannot contain a comma."""
    out: dict[str, str] = {}
    for part in config.replace("\n", ",").split(","):
        key, colon, value = part.strip().partition(":")
        if colon:
            out[key.strip()] = value.strip()
    return out


def parse_uint(text: str) -> int | None:
    """A non-negative integer as Rust's `u64::from_str` reads it (optional `+`), else None."""
    digits = text[1:] if text.startswith("+") else text
    # u64 has at most 20 digits (and int() refuses 4300)
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 20 else None


def parse_bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    return True if lowered == "true" else False if lowered == "false" else None


def compile_template(text: str, *, trim: bool) -> Template:
    """Split `a-{x.y}-b` into literal and placeholder parts. An unclosed `{` and everything
    after it stay literal; `trim` trims the placeholder text (cache does, rateLimit not)."""
    parts: list[TemplatePart] = []
    rest = text
    while True:
        open_at = rest.find("{")
        close_at = rest.find("}", open_at + 1) if open_at >= 0 else -1
        if close_at < 0:
            break
        if open_at:
            parts.append(rest[:open_at])
        inner = rest[open_at + 1:close_at]
        parts.append((inner.strip() if trim else inner,))
        rest = rest[close_at + 1:]
    if rest:
        parts.append(rest)
    return tuple(parts)


def scalar_text(value: JSON, *, null: str) -> str:
    """A JSON value as key text (serde_json's `to_string` for numbers and containers)."""
    if value is None:
        return null
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return dump_json(value).decode()


def dump_json(value: JSON) -> bytes:
    """Compact JSON (orjson, with the stdlib as fallback for ints beyond 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def render_template(template: Template, render: Callable[[str], str]) -> str:
    """Join the parts, replacing each placeholder with `render(path_text)`."""
    return "".join(part if isinstance(part, str) else render(part[0]) for part in template)
