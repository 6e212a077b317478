"""A `KVStore` on Redis through `redis.asyncio` (the optional `webpipe[redis]` extra).

This is the only module that imports `redis`; `stores.open_store()` imports it lazily, so
apps on the in-process store never need the package. Every key is prefixed (`webpipe:cache:`,
`webpipe:rl:`) so `cache` and `rateLimit` can share one database. The client connects lazily
on first use and is closed at app shutdown. Redis errors become `StoreError`; the middleware
decide what an unreachable store means (spec/cache-ratelimit.md §3).

Freshness is measured with the wall clock (`time.time()`), since several processes share
the entries; the windowed counter is one MULTI transaction (`SET NX PX`, `INCRBY`, `PTTL`),
so concurrent requests in any process count exactly once each.
"""

from __future__ import annotations

import time
from typing import Any

# the extra may be absent where mypy runs: `ignore` keeps --strict clean both ways
import redis.asyncio as aioredis  # type: ignore[import-not-found, unused-ignore]
from redis.exceptions import RedisError  # type: ignore[import-not-found, unused-ignore]

from webpipe.middleware.stores import StoreError


class RedisStore:
    """`KVStore` on one Redis database; `url` as `redis.asyncio.from_url` reads it."""

    def __init__(self, url: str, *, prefix: str = "webpipe:") -> None:
        self.url = url
        self.prefix = prefix
        self._client: Any = aioredis.Redis.from_url(url)

    def now(self) -> float:
        return time.time()

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(self.prefix + key)
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis GET failed: {exc}") from exc
        return bytes(value) if value is not None else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        try:
            if ttl <= 0:
                await self._client.delete(self.prefix + key)
            else:
                await self._client.set(self.prefix + key, value, px=_ms(ttl))
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis SET failed: {exc}") from exc

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        if ttl <= 0:
            return False
        try:
            return bool(await self._client.set(self.prefix + key, value, px=_ms(ttl), nx=True))
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis SET NX failed: {exc}") from exc

    async def delete(self, key: str) -> None:
        try:
            await self._client.delete(self.prefix + key)
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis DEL failed: {exc}") from exc

    async def incr(self, key: str, amount: int, window: float) -> tuple[int, float]:
        name = self.prefix + key
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(name, 0, px=_ms(window), nx=True)
                pipe.incrby(name, amount)
                pipe.pttl(name)
                _, count, pttl = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis INCRBY failed: {exc}") from exc
        return int(count), max(int(pttl), 0) / 1000

    async def aclose(self) -> None:
        await self._client.aclose()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
