"""`cache`: serve a pipeline run's final output from a store (middleware.md §8).

`prepare()` reads the step's `enabled`/`ttl`/`keyTemplate` pairs over the `config cache`
defaults and compiles the key template; the default key's step identity (file, position,
config text) is fixed there too. At run time an enabled step records `$context.cache`,
renders the key from the state and looks it up: a fresh entry (or a stale one while another
request refreshes it) is a **hit**, returned as `StepResult(cached value, cached content type,
cached status, cache_hit=True)`, which ends the current pipeline body. Otherwise the step
registers a pending save and leaves the state unchanged.

After-pipeline contract (server, script and test runners; see spec/cache-ratelimit.md §2):
`ctx.extras["after_pipeline"]` is a list of **async** callables
`hook(final_state, content_type, status) -> Awaitable[None]`, appended in step order. Whoever
finishes a pipeline run awaits each once, in order, with that run's final state, content type
and status (int or None), on every normal end: the end of the steps, a `result` branch, or a
cache hit. A run that ends in a hard error calls none. Hooks never raise and ignore a second
call. Steps inside `@async` tasks register on the task's forked context, which nobody drains,
so their saves are lost (as specified).

Stores: the in-process `MemoryStore` (LRU, bounded by `max(64, maxCacheSize / 4096)` entries
and `maxCacheSize` bytes) or Redis (`config cache { backend: "redis", url }` or `$REDIS_URL`).
A store that fails makes the lookup a miss and the save a no-op, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from webpipe.config import config_bool, config_int
from webpipe.executor.hooks import AFTER_PIPELINE
from webpipe.executor.state import error_type
from webpipe.middleware.base import (
    JSON,
    Behavior,
    MiddlewareHost,
    RunAsync,
    StepCall,
    StepResult,
)
from webpipe.middleware.stores import (
    KVStore,
    MemoryStore,
    StoreError,
    StoreMiddleware,
    Template,
    compile_template,
    dump_json,
    parse_bool,
    parse_pairs,
    parse_uint,
    render_template,
    scalar_text,
)
from webpipe.source import Span

if TYPE_CHECKING:
    pass

log = logging.getLogger("webpipe.cache")

REFRESH_HOLD_S = 30  # a refresher holds its slot this long before another may take over
_SLOT = "\x00refresh:"  # refresher-slot keys cannot clash with rendered keys (no NUL in .wp)


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """The process-wide `config cache` block (middleware.md §8.1)."""

    enabled: bool = True
    default_ttl: int = 60
    max_cache_size: int = 10_485_760
    max_entry_size: int = 1_048_576
    stale_while_revalidate: int = 30

    @property
    def max_entries(self) -> int:
        return max(64, self.max_cache_size // 4096)


@dataclass(frozen=True, slots=True)
class CacheStep:
    """One prepared `cache` step."""

    enabled: bool
    ttl: int
    key_template: str | None
    template: Template | None
    identity: str  # step position + config text: the seed of the default key

    def context_json(self) -> dict[str, JSON]:
        """The `$context.cache` section."""
        return {"enabled": self.enabled, "ttl": self.ttl, "key_template": self.key_template}

    def key(self, state: JSON) -> str:
        if self.template is not None:
            return render_template(self.template, lambda path: _key_text(state, path))
        return default_key(self.identity, state)


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored pipeline output."""

    value: JSON
    content_type: str
    status: int | None
    fresh_until: float


class CacheMiddleware(StoreMiddleware):
    behavior: ClassVar[Behavior] = Behavior.MERGE
    # running a request twice (server.py does, for a partial request that ended in an
    # error) leaves the store as one run does: error outputs are never saved and a refresher
    # slot is released when its pipeline ends
    rerunnable: ClassVar[bool] = True
    tryable: ClassVar[bool] = True  # `run_sync` only reads a fresh in-process entry
    sync: ClassVar[bool] = True  # a fresh in-process hit
    config_keys: ClassVar[frozenset[str] | None] = frozenset({
        "enabled", "defaultTtl", "maxCacheSize", "maxEntrySize", "staleWhileRevalidate",
        "backend", "url"})
    BLOCK: ClassVar[str] = "cache"
    PREFIX: ClassVar[str] = "webpipe:cache:"

    def __init__(self, host: MiddlewareHost, *, store: KVStore | None = None) -> None:
        self.settings = read_settings(host.config_block("cache"))
        super().__init__(host, store=store)

    def prepare(self, config: str, span: Span | None) -> CacheStep:
        self._open_store(span)
        return prepare_step(config, span, self.settings)

    def input_keys(self, prepared: object) -> frozenset[str] | None:
        """The top-level state keys the key is made of (the state itself passes through)."""
        if not isinstance(prepared, CacheStep):
            return None
        if not prepared.enabled:
            return frozenset()
        if prepared.template is None:
            return DEFAULT_KEY_PARTS
        heads = {_head(part[0]) for part in prepared.template if not isinstance(part, str)}
        return None if "" in heads else frozenset(heads)  # `{}` is the whole state

    def fresh_entry(self, key: str) -> Entry | None:
        """The fresh entry under `key` in the in-process store, read without a coroutine;
        None for a miss, a stale entry or another store (`run` handles those)."""
        store = self.store
        if not isinstance(store, MemoryStore):
            return None
        entry = decode_entry(store.get_nowait(key))
        if entry is None or entry.fresh_until <= store.now():
            return None
        return entry

    def run_sync(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        """A fresh hit in the in-process store, answered without a coroutine; anything else
        (a miss, a stale entry, Redis) goes to `run` before any effect (`RunAsync`)."""
        assert isinstance(prepared, CacheStep)
        if not prepared.enabled:
            return StepResult(state)
        entry = self.fresh_entry(prepared.key(state))
        if entry is None:
            raise RunAsync
        if call.ctx is not None:
            call.ctx.sections["cache"] = prepared.context_json()
        return StepResult(entry.value, entry.content_type, cache_hit=True, status=entry.status)

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert isinstance(prepared, CacheStep)
        if not prepared.enabled:
            return StepResult(state)
        ctx = call.ctx
        if ctx is not None:
            ctx.sections["cache"] = prepared.context_json()
        key = prepared.key(state)
        entry, refresher = await self._lookup(key)
        if entry is not None:
            return StepResult(entry.value, entry.content_type, cache_hit=True,
                              status=entry.status)
        if ctx is not None and prepared.ttl > 0:
            save = PendingSave(self, key, prepared.ttl, refresher)
            ctx.extras.setdefault(AFTER_PIPELINE, []).append(save)
        elif refresher:
            await self.release(key)
        return StepResult(state)

    def _memory(self) -> MemoryStore:
        return MemoryStore(max_entries=self.settings.max_entries,
                           max_bytes=self.settings.max_cache_size)

    def _store(self) -> KVStore:
        if self.store is None:  # run() without prepare(): unit tests, direct use
            self.store = self._memory()
        return self.store

    async def _lookup(self, key: str) -> tuple[Entry | None, bool]:
        """(entry to serve, None on a miss; whether this request was elected refresher)."""
        store = self._store()
        try:
            entry = decode_entry(await store.get(key))
            if entry is None or entry.fresh_until > store.now():
                return entry, False
            if await store.add(_SLOT + key, b"1", REFRESH_HOLD_S):
                return None, True
        except StoreError as exc:
            log.warning("cache lookup of %r failed, treated as a miss: %s", key, exc)
            return None, False
        return entry, False  # stale, and someone else is refreshing it

    async def save(self, key: str, ttl: int, state: JSON, content_type: str,
                   status: int | None) -> bool:
        """Store a final output under `key` if §8.3 allows it; True when stored."""
        if error_type(state) is not None or (status is not None and status >= 500):
            return False
        value = dump_json(state)
        if len(value) > self.settings.max_entry_size:
            log.warning("cache entry %r skipped: %d bytes exceeds maxEntrySize %d", key,
                        len(value), self.settings.max_entry_size)
            return False
        store = self._store()
        record = encode_entry(value, content_type, status, store.now() + ttl)
        try:
            await store.set(key, record, ttl + self.settings.stale_while_revalidate)
        except StoreError as exc:
            log.warning("cache save of %r failed: %s", key, exc)
            return False
        return True

    async def release(self, key: str) -> None:
        """Give up the refresher slot of `key` (a skipped or finished refresh)."""
        try:
            await self._store().delete(_SLOT + key)
        except StoreError as exc:
            log.warning("cache refresher slot of %r not released: %s", key, exc)


class PendingSave:
    """The after-pipeline hook of one cache miss (see the module docstring)."""

    def __init__(self, cache: CacheMiddleware, key: str, ttl: int, refresher: bool) -> None:
        self.cache, self.key, self.ttl, self.refresher = cache, key, ttl, refresher
        self.done = False

    async def __call__(self, state: JSON, content_type: str, status: int | None) -> None:
        if self.done:
            return
        self.done = True
        try:
            await self.cache.save(self.key, self.ttl, state, content_type, status)
        except Exception:  # a hook must never fail the request it runs after
            log.exception("cache save of %r failed", self.key)
        if self.refresher:
            await self.cache.release(self.key)


# ---- configuration ------------------------------------------------------------------------


def read_settings(block: Any) -> CacheSettings:
    d = CacheSettings()
    return CacheSettings(
        enabled=config_bool(block, "enabled", d.enabled),
        default_ttl=config_int(block, "defaultTtl", d.default_ttl),
        max_cache_size=config_int(block, "maxCacheSize", d.max_cache_size),
        max_entry_size=config_int(block, "maxEntrySize", d.max_entry_size),
        stale_while_revalidate=config_int(block, "staleWhileRevalidate",
                                          d.stale_while_revalidate))


def prepare_step(config: str, span: Span | None, settings: CacheSettings) -> CacheStep:
    """Step keys over `config cache` defaults; unknown keys and unreadable values ignored."""
    pairs = parse_pairs(config)
    enabled = parse_bool(pairs.get("enabled", ""))
    ttl = parse_uint(pairs.get("ttl", ""))
    key_template = pairs.get("keyTemplate")
    where = f"{span.source.name}:{span.line}:{span.column}#{span.start}" if span else ""
    return CacheStep(
        enabled=settings.enabled if enabled is None else enabled,
        ttl=settings.default_ttl if ttl is None else ttl,
        key_template=key_template,
        template=None if key_template is None else compile_template(key_template, trim=True),
        identity=json.dumps([where, config]))


# ---- keys and entries ---------------------------------------------------------------------


def _key_text(state: JSON, path: str) -> str:
    """§8.2: walk objects along the dotted path (empty segments skipped); strings raw,
    numbers/booleans as text, objects/arrays compact JSON, missing or null → ""."""
    current = state
    for segment in path.split("."):
        if segment:
            current = current.get(segment) if isinstance(current, dict) else None
    return scalar_text(current, null="")


DEFAULT_KEY_PARTS = frozenset({"method", "path", "query", "params"})


def _head(path: str) -> str:
    """The first non-empty segment of a dotted key path ("" when there is none)."""
    return next((segment for segment in path.split(".") if segment), "")


def default_key(identity: str, state: JSON) -> str:
    """A hash of the step identity and the state's method, path, query and params."""
    parts: list[JSON] = [identity]
    if isinstance(state, dict):
        for name in ("method", "path"):
            if isinstance(state.get(name), str):
                parts.append([name, state[name]])
        for name in ("query", "params"):
            if name in state:
                parts.append([name, state[name]])
    try:
        raw = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:  # ints beyond 64 bits, lone surrogates: the slow encoder copes
        raw = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         default=str).encode("utf-8", "surrogatepass")
    return "pipeline:" + hashlib.sha256(raw).hexdigest()[:32]


def encode_entry(value: bytes, content_type: str, status: int | None,
                 fresh_until: float) -> bytes:
    head = json.dumps({"ct": content_type, "s": status, "f": fresh_until})
    return head[:-1].encode() + b',"v":' + value + b"}"


def decode_entry(raw: bytes | None) -> Entry | None:
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
        return Entry(data["v"], str(data["ct"]), data["s"], float(data["f"]))
    except (ValueError, KeyError, TypeError):
        return None  # foreign or corrupt record: a miss
