"""`rateLimit`: reject requests over a per-key budget (middleware.md §9).

`prepare()` reads the step's `keyTemplate`, `limit`, `window` (`N`, or `N` + `ms|s|m|h|d`),
`burst`, `scope`, `enabled` and this port's `algorithm` (`fixed`, the default, or `sliding`)
and compiles the key template. A missing or unreadable required key is a `ConfigError` at load
time (a `check` diagnostic; at run time the step yields a `rateLimitError` envelope) unless
`enabled: false`, which turns the step into a no-op.

At run time the key is rendered from the state (§9.2), the store's counter is bumped, and
`$context.rate_limit` is set to `{allowed, remaining, limit, retry_after, key, scope}`. Over
budget, the step puts the seconds to wait in `ctx.extras["retry_after"]` and raises
`HardError(..., status=429)`; the server answers 429 with a `Retry-After` header (a deliberate
deviation from the reference's 500, spec/cache-ratelimit.md §4).

Algorithms. `fixed` is the reference's fixed window: capacity `limit + burst` per window that
starts at a key's first request. `sliding` is the sliding-window counter: the previous fixed
window's count, weighted by how much of it still overlaps the last `window` seconds, plus the
current one's, must stay within the capacity; rejected requests are not counted. The store is
in-process (LRU, `config rateLimit { maxEntries }`, default 10 000 keys) or Redis; when the
store fails the step lets the request through with a warning (`failOpen: false` → HTTP 503).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import ClassVar

from webpipe.config import config_bool, config_int
from webpipe.errors import ConfigError, HardError
from webpipe.middleware.base import (
    JSON,
    Behavior,
    MiddlewareHost,
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
    parse_bool,
    parse_pairs,
    parse_uint,
    render_template,
    scalar_text,
)
from webpipe.source import Span

log = logging.getLogger("webpipe.rate_limit")

ALGORITHMS = ("fixed", "sliding")
# suffix → (multiplier, divisor); `ms` is floored to whole seconds as in the reference
_UNITS = (("ms", 1, 1000), ("s", 1, 1), ("m", 60, 1), ("h", 3600, 1), ("d", 86400, 1))
_REQUIRED = ("keyTemplate", "limit", "window")


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    """One prepared, enabled `rateLimit` step."""

    key_template: Template
    limit: int
    window: int  # whole seconds, at least 1
    burst: int
    scope: str | None
    algorithm: str

    @property
    def capacity(self) -> int:
        return self.limit + self.burst


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one check: what `$context.rate_limit` reports."""

    allowed: bool
    count: int  # requests counted against the capacity, at most the capacity
    remaining: int
    retry_after: int


DISABLED = None  # the prepared value of an `enabled: false` step


class RateLimitMiddleware(StoreMiddleware):
    behavior: ClassVar[Behavior] = Behavior.MERGE
    config_keys: ClassVar[frozenset[str] | None] = frozenset({
        "maxEntries", "backend", "url", "algorithm", "failOpen"})

    BLOCK: ClassVar[str] = "rateLimit"
    PREFIX: ClassVar[str] = "webpipe:rl:"

    def __init__(self, host: MiddlewareHost, *, store: KVStore | None = None) -> None:
        block = host.config_block("rateLimit")
        self.max_entries = config_int(block, "maxEntries", 10_000)
        self.fail_open = config_bool(block, "failOpen", True)
        super().__init__(host, store=store)

    def prepare(self, config: str, span: Span | None) -> RateLimitRule | None:
        self._open_store(span)
        return parse_rule(config, span)

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        if prepared is DISABLED:
            return StepResult(state)
        assert isinstance(prepared, RateLimitRule)
        key = render_template(prepared.key_template, lambda path: _key_text(state, path))
        decision = await self._decide(prepared, key, call)
        if decision is None:
            return StepResult(state)
        if call.ctx is not None:
            call.ctx.sections["rate_limit"] = context_json(decision, prepared, key)
        if not decision.allowed:
            if call.ctx is not None:
                call.ctx.extras["retry_after"] = decision.retry_after
            raise HardError(rejection_message(decision, prepared, key), span=call.span,
                            status=429)
        return StepResult(state)

    def _memory(self) -> MemoryStore:
        return MemoryStore(max_entries=self.max_entries)

    async def _decide(self, rule: RateLimitRule, key: str, call: StepCall) -> Decision | None:
        if self.store is None:  # run() without prepare(): unit tests, direct use
            self.store = self._memory()
        check = sliding_window if rule.algorithm == "sliding" else fixed_window
        try:
            return await check(self.store, key, rule)
        except StoreError as exc:
            if not self.fail_open:
                raise HardError(f"rate limit store unavailable: {exc}", span=call.span,
                                status=503) from None
            log.warning("rateLimit store failed, request let through: %s", exc)
            return None


# ---- algorithms ---------------------------------------------------------------------------


async def fixed_window(store: KVStore, key: str, rule: RateLimitRule) -> Decision:
    """§9.3: one counter per key and window; rejected requests leave the window unchanged
    for later callers (they are counted, but the reported count stops at the capacity)."""
    count, left = await store.incr(key, 1, rule.window)
    capacity = rule.capacity
    shown = min(count, capacity)
    return Decision(count <= capacity, shown, capacity - shown, max(1, math.ceil(left)))


async def sliding_window(store: KVStore, key: str, rule: RateLimitRule) -> Decision:
    """Sliding-window counter over the current and previous fixed windows of `key`."""
    window, capacity = rule.window, rule.capacity
    index, offset = divmod(store.now(), window)
    current = f"{key}#{int(index)}"
    count, _ = await store.incr(current, 1, 2 * window)  # kept to serve as "previous"
    previous = int(await store.get(f"{key}#{int(index) - 1}") or 0)
    weight = 1 - offset / window
    estimate = previous * weight + count
    if estimate <= capacity:
        shown = min(math.ceil(estimate), capacity)
        return Decision(True, shown, capacity - shown, max(1, math.ceil(window - offset)))
    await store.incr(current, -1, 2 * window)  # a rejected request does not count
    wait = sliding_wait(previous, count - 1, offset, window, capacity)
    return Decision(False, capacity, 0, max(1, math.ceil(wait)))


def sliding_wait(previous: int, current: int, offset: float, window: int,
                 capacity: int) -> float:
    """Seconds until one more request fits: `previous` decays through the current window,
    then `current` decays through the next one."""
    if capacity < 1:
        return window
    excess = previous * (1 - offset / window) + current + 1 - capacity
    if previous > 0 and offset + excess * window / previous < window:
        return excess * window / previous
    later = (current + 1 - capacity) * window / current if current + 1 > capacity else 0
    return window - offset + later


# ---- configuration and reporting ----------------------------------------------------------


def parse_rule(config: str, span: Span | None) -> RateLimitRule | None:
    """The step's pairs (§9.1) → a rule; None when `enabled: false`."""
    pairs = parse_pairs(config)
    if parse_bool(pairs.get("enabled", "")) is False:
        return DISABLED
    for name in _REQUIRED:
        if name not in pairs:
            raise ConfigError(f"{name} is required", span=span)
    limit = parse_uint(pairs["limit"])
    window = parse_window(pairs["window"])
    if limit is None:
        raise ConfigError(f"limit must be a non-negative integer, not {pairs['limit']!r}",
                          span=span)
    if window is None:
        raise ConfigError(f"window must be N or N followed by ms/s/m/h/d, not "
                          f"{pairs['window']!r}", span=span)
    algorithm = pairs.get("algorithm", "fixed")
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm must be \"fixed\" or \"sliding\", not {algorithm!r}",
                          span=span)
    burst = parse_uint(pairs.get("burst", ""))
    return RateLimitRule(compile_template(pairs["keyTemplate"], trim=False), limit,
                         max(1, window), burst or 0, pairs.get("scope"), algorithm)


def parse_window(text: str) -> int | None:
    """Whole seconds from `90`, `500ms` (floored), `30s`, `5m`, `1h`, `1d`; None if unreadable."""
    text = text.strip()
    plain = parse_uint(text)
    if plain is not None:
        return plain
    for suffix, multiplier, divisor in _UNITS:
        if text.endswith(suffix):
            number = parse_uint(text[: -len(suffix)].strip())
            return None if number is None else number * multiplier // divisor
    return None


def _key_text(state: JSON, path: str) -> str:
    """§9.2: walk objects and array indices; null → "null", missing → "unknown"."""
    current = state
    for segment in path.split("."):
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and _index(segment) < len(current):
            current = current[int(segment)]
        else:
            return "unknown"
    return scalar_text(current, null="null")


def _index(segment: str) -> int:
    if segment.isascii() and segment.isdigit() and len(segment) <= 18:
        return int(segment)
    return 1 << 62


def context_json(decision: Decision, rule: RateLimitRule, key: str) -> dict[str, JSON]:
    """The `$context.rate_limit` section."""
    return {"allowed": decision.allowed, "remaining": decision.remaining,
            "limit": rule.capacity, "retry_after": decision.retry_after, "key": key,
            "scope": rule.scope}


def rejection_message(decision: Decision, rule: RateLimitRule, key: str) -> str:
    return (f"Rate limit exceeded: Rate limit exceeded for key '{key}': "
            f"{decision.count}/{rule.capacity} requests in {rule.window}s window. "
            f"Retry after {decision.retry_after}s")
