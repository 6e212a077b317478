"""Circuit breakers shared by every process through Redis (issue 25, spec/fetch.md).

The same rules as the in-process `Breakers` (breaker.py), kept in the `KVStore` that cache
and rateLimit use, so `webpipe serve --workers N` (or several hosts) trip, refuse and probe
together. Keys, under `webpipe:breaker:`: `fail:HOST` counts failures in a window of
`breakerIntervalMs` that starts at the first one (the store's atomic windowed counter, so
the window is fixed rather than sliding); the call whose failure reaches
`breakerMaxErrors` opens the breaker: `open:HOST` (its opening time, expiring after
`breakerOpenMs`) and `tripped:HOST` (kept until a probe succeeds). `open` present: calls
are refused. `tripped` without `open`: half-open; the call that wins `SET NX` on
`probe:HOST` is the one probe (the key expires, so a worker that died mid-probe does not
block the others). Transitions are logged by the process that makes them; each process's
`/metrics` shows the state it last saw. When Redis cannot be reached the call goes
through unguarded and the error is logged (at most every 10 s): a breaker must never be
the reason an upstream is unreachable.
"""

from __future__ import annotations

import time
from typing import Any

from webpipe.metrics import METRICS
from webpipe.middleware.breaker import STATES, BreakerConfig, log, moved, refused
from webpipe.middleware.stores import KVStore, StoreError

TRIPPED_TTL_S = 86_400.0  # a tripped marker nobody probes is forgotten after a day
LOG_EVERY_S = 10.0


class SharedBreakers:
    """`BreakerSet` on a shared `KVStore` (see module docstring)."""

    def __init__(self, config: BreakerConfig, store: KVStore) -> None:
        self.config = config
        self.store = store
        self.seen: dict[str, str] = {}  # host -> the state this process last saw
        self._logged = 0.0

    async def admit(self, host: str, url: str) -> tuple[bool, dict[str, Any] | None]:
        try:
            opened = await self.store.get(f"open:{host}")
            if opened is not None:
                self._see(host, "open")
                left = float(opened or 0) + self.config.open_ms / 1000 - time.time()
                return False, refused(self.config, host, url,
                                      f"next probe in {max(0, round(left * 1000))} ms")
            if await self.store.get(f"tripped:{host}") is None:
                self._see(host, "closed")
                return False, None
            probe_ttl = max(self.config.open_ms, 10_000) / 1000
            if await self.store.add(f"probe:{host}", b"1", probe_ttl):
                moved(host, "open", "half-open", "probing with one call")
                self.seen[host] = "half-open"
                return True, None
            self._see(host, "half-open")
            return False, refused(self.config, host, url, "a probe call is in flight")
        except StoreError as exc:
            self._unreachable(exc)
            return False, None

    async def settle(self, host: str, probe: bool, failed: bool | None) -> None:
        try:
            if probe:
                await self._settle_probe(host, failed)
            elif failed and await self.store.get(f"tripped:{host}") is None:
                await self._count_failure(host)
        except StoreError as exc:
            self._unreachable(exc)

    async def _settle_probe(self, host: str, failed: bool | None) -> None:
        if failed:
            await self._open(host)
            moved(host, "half-open", "open", "the probe call failed")
        elif failed is False:
            await self.store.delete(f"tripped:{host}")
            await self.store.delete(f"fail:{host}")
            moved(host, "half-open", "closed", "the probe call succeeded")
        self.seen[host] = "open" if failed else "closed" if failed is False else "half-open"
        await self.store.delete(f"probe:{host}")

    async def _count_failure(self, host: str) -> None:
        count, _ = await self.store.incr(f"fail:{host}", 1, self.config.interval_ms / 1000)
        if count != self.config.max_errors:  # exactly one call, in one process, trips it
            return
        await self.store.set(f"tripped:{host}", b"1", TRIPPED_TTL_S)
        await self._open(host)
        await self.store.delete(f"fail:{host}")
        moved(host, "closed", "open", f"{self.config.max_errors} failures within "
              f"{self.config.interval_ms} ms; open for {self.config.open_ms} ms")
        self.seen[host] = "open"

    async def _open(self, host: str) -> None:
        await self.store.set(f"open:{host}", str(time.time()).encode(),
                             self.config.open_ms / 1000)

    def _see(self, host: str, state: str) -> None:
        if self.seen.get(host) != state:
            self.seen[host] = state
            METRICS.breaker(host, STATES[state])

    def _unreachable(self, exc: StoreError) -> None:
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY_S:
            self._logged = now
            log.error("fetch breakers: the shared store is unreachable, calls go through "
                      "unguarded: %s", exc)

    async def aclose(self) -> None:
        await self.store.aclose()
