"""Test helpers shared by the suite (no fakes of real components: only a plain host)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from webpipe.executor.compiled import Body
from webpipe.executor.env import Env
from webpipe.limits import Limits, limits_of
from webpipe.sandbox.pool import SandboxPool


def body_of(env: Env, item: object) -> Body:
    """The compiled body of one of `env`'s declarations (a test holds the node it found)."""
    return next(e.body for e in env.entries if e.item is item)


@dataclass
class SimpleHost:
    """A MiddlewareHost built from plain dicts, for middleware unit tests."""

    base: Path = Path(".")
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, str]] = field(default_factory=dict)
    others: dict[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.base

    def config_block(self, name: str) -> Mapping[str, Any] | None:
        return self.configs.get(name)

    def variables_of(self, kind: str) -> Mapping[str, str]:
        return self.variables.get(kind, {})

    def middleware(self, name: str) -> Any:
        return self.others[name]

    @property
    def limits(self) -> Limits:
        return limits_of(self)

    def sandbox(self) -> SandboxPool:
        """A pool of real workers, created on first use (close it with `aclose()`)."""
        if "sandbox" not in self.others:
            self.others["sandbox"] = SandboxPool(self.limits.sandbox_workers)
        pool: SandboxPool = self.others["sandbox"]
        return pool


@asynccontextmanager
async def loopback(app: web.Application, **runner_args: Any) -> AsyncIterator[str]:
    """Serve an aiohttp app on 127.0.0.1 (a free port) for the block; yields its base URL."""
    runner = web.AppRunner(app, **runner_args)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def with_database(url: str, database: str) -> str:
    """`url` with its database name replaced by `database`."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))
