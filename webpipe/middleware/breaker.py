"""Circuit breakers for `fetch`, one per upstream host (issue 25, spec/fetch.md §Breakers).

`config fetch { breakerMaxErrors: 5, breakerIntervalMs: 10000, breakerOpenMs: 30000 }`
(off unless `breakerMaxErrors` > 0). A failure is what says the upstream is unwell: a
network error, a timeout, an answer 5xx. After `breakerMaxErrors` failures within
`breakerIntervalMs` the host's breaker opens: calls fail at once with a `circuitOpen`
envelope (no request is sent) that `result` can route. After `breakerOpenMs` the next call
is let through as the one probe (half-open; other calls still fail at once); its success
closes the breaker, its failure opens it again for another `breakerOpenMs`. A probe that is
cancelled (a deadline, a lost hedge race) proves nothing: the next call probes instead.
Every transition is logged (`webpipe.breaker`) and set on `/metrics`
(`webpipe_breaker_state{host}`). State lives in the process (with `--workers N` each worker
keeps its own breakers) unless Redis is configured (`breakerBackend`/`breakerUrl`, or
`$REDIS_URL`, as for cache and rateLimit): then every process shares each host's breaker
(`breaker_shared.py`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from webpipe.config import config_int
from webpipe.errors import StepError
from webpipe.metrics import METRICS
from webpipe.middleware.stores import MemoryStore, open_store
from webpipe.source import Span

log = logging.getLogger("webpipe.breaker")
CONFIG_KEYS = ("breakerMaxErrors", "breakerIntervalMs", "breakerOpenMs", "breakerBackend",
               "breakerUrl")
PREFIX = "webpipe:breaker:"  # Redis keys of shared breakers
STATES = {"closed": 0, "open": 1, "half-open": 2}


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    max_errors: int = 0  # 0: no breakers
    interval_ms: int = 10_000
    open_ms: int = 30_000

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> BreakerConfig:
        d = cls()
        return cls(config_int(block, "breakerMaxErrors", d.max_errors),
                   config_int(block, "breakerIntervalMs", d.interval_ms),
                   config_int(block, "breakerOpenMs", d.open_ms))


@dataclass(slots=True)
class _Host:
    failures: deque[float] = field(default_factory=deque)  # monotonic times, in the window
    state: str = "closed"
    opened_at: float = 0.0
    probing: bool = False


class Breakers:
    """The breakers of one app's `fetch` steps, keyed by `host[:port]`."""

    def __init__(self, config: BreakerConfig) -> None:
        self.config = config
        self.hosts: dict[str, _Host] = {}

    async def admit(self, host: str, url: str) -> tuple[bool, dict[str, Any] | None]:
        """(is this call the half-open probe, the `circuitOpen` envelope when refused)."""
        entry = self.hosts.setdefault(host, _Host())
        if entry.state == "closed":
            return False, None
        now = time.monotonic()
        left_ms = entry.opened_at + self.config.open_ms / 1000 - now
        if entry.state == "open" and left_ms <= 0:
            self._move(host, entry, "half-open", "probing with one call")
            entry.probing = True
            return True, None
        if entry.state == "half-open" and not entry.probing:
            entry.probing = True
            return True, None
        why = ("a probe call is in flight" if entry.state == "half-open"
               else f"next probe in {max(0, round(left_ms * 1000))} ms")
        return False, refused(self.config, host, url, why)

    async def settle(self, host: str, probe: bool, failed: bool | None) -> None:
        """Record a call's outcome; `failed` None: it was cancelled before an answer."""
        entry = self.hosts.setdefault(host, _Host())
        now = time.monotonic()
        if probe:
            entry.probing = False
            if failed is None:
                return  # the next call probes instead
            if failed:
                entry.opened_at = now
                self._move(host, entry, "open", "the probe call failed")
            else:
                entry.failures.clear()
                self._move(host, entry, "closed", "the probe call succeeded")
            return
        if not failed or entry.state != "closed":
            return
        window = self.config.interval_ms / 1000
        entry.failures.append(now)
        while entry.failures and entry.failures[0] < now - window:
            entry.failures.popleft()
        if len(entry.failures) >= self.config.max_errors:
            entry.failures.clear()
            entry.opened_at = now
            self._move(host, entry, "open", f"{self.config.max_errors} failures within "
                       f"{self.config.interval_ms} ms; open for {self.config.open_ms} ms")

    async def aclose(self) -> None:
        self.hosts.clear()

    def _move(self, host: str, entry: _Host, state: str, why: str) -> None:
        moved(host, entry.state, state, why)
        entry.state = state


class BreakerSet(Protocol):
    """In-process `Breakers`, or `SharedBreakers` (breaker_shared.py) on Redis."""

    async def admit(self, host: str, url: str) -> tuple[bool, dict[str, Any] | None]: ...

    async def settle(self, host: str, probe: bool, failed: bool | None) -> None: ...

    async def aclose(self) -> None: ...


def moved(host: str, before: str, after: str, why: str) -> None:
    """Log a transition and show it on `/metrics`."""
    log.warning("fetch breaker for %s: %s -> %s (%s)", host, before, after, why)
    METRICS.breaker(host, STATES[after])


def refused(config: BreakerConfig, host: str, url: str, why: str) -> dict[str, Any]:
    """The `circuitOpen` envelope of a call an open breaker refused."""
    return {"errors": [{
        "type": "circuitOpen", "host": host, "url": url,
        "message": f"circuit open for {host} after {config.max_errors} failures within "
                   f"{config.interval_ms} ms ({why}); no request was sent"}]}


def open_breakers(block: Mapping[str, Any] | None, span: Span | None = None,
                  ) -> BreakerSet | None:
    """The breakers `config fetch` asks for: None when off; shared on Redis when
    `breakerBackend: "redis"`, `breakerUrl` or `$REDIS_URL` says so (as cache and
    rateLimit choose their store), else in-process."""
    config = BreakerConfig.from_config(block)
    if config.max_errors <= 0:
        return None
    store_block = {"backend": (block or {}).get("breakerBackend"),
                   "url": (block or {}).get("breakerUrl")}
    store = open_store({k: v for k, v in store_block.items() if v is not None},
                       block_name="fetch (breakerBackend/breakerUrl)", prefix=PREFIX,
                       span=span, memory=lambda: MemoryStore(max_entries=1))
    if isinstance(store, MemoryStore):
        return Breakers(config)
    from webpipe.middleware.breaker_shared import SharedBreakers

    return SharedBreakers(config, store)


def upstream_host(url: str) -> str:
    try:
        return urlsplit(url).netloc.rsplit("@", 1)[-1].lower() or url
    except ValueError:
        return url


def upstream_failed(payload: Mapping[str, Any]) -> bool:
    """A network error, a timeout or a 5xx answer (what says the upstream is unwell)."""
    errors = payload.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return False
    first = errors[0]
    if first.get("type") in ("networkError", "timeoutError"):
        return True
    status = first.get("status")
    return first.get("type") == "httpError" and isinstance(status, int) and status >= 500


async def through(breakers: BreakerSet, url: str,
                  send: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """`send()` through the host's breaker (refused at once while it is open)."""
    host = upstream_host(url)
    probe, refusal = await breakers.admit(host, url)
    if refusal is not None:
        return refusal
    failed: bool | None = None
    try:
        payload = await send()
        failed = upstream_failed(payload)
        return payload
    except StepError:  # the upstream answered (too large, too deep): not its failure
        failed = False
        raise
    finally:
        await breakers.settle(host, probe, failed)
