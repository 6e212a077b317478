"""The middleware plugin table.

`BUILTIN_MIDDLEWARE` maps each DSL name to a lazy import string; third-party packages add
names through the `webpipe.middleware` entry-point group. A `Registry` is built per app
(copying the table), so tests and apps can `register()` extras without touching globals.
Importing a middleware module happens on first use, so `check`/`fmt` never import asyncpg
or lupa unless a program uses them; a class is refused at import when it lacks a member of
the contract (`base.MEMBERS`), so the executor reads every capability without probing.
"""

from __future__ import annotations

import importlib

from webpipe.errors import ConfigError
from webpipe.middleware.base import MEMBERS, Middleware, MiddlewareHost

BUILTIN_MIDDLEWARE: dict[str, str] = {
    "jq": "webpipe.middleware.jq:JqMiddleware",
    "handlebars": "webpipe.middleware.handlebars:HandlebarsMiddleware",
    "mustache": "webpipe.middleware.handlebars:HandlebarsMiddleware",
    "lua": "webpipe.middleware.lua:LuaMiddleware",
    "js": "webpipe.middleware.js:JsMiddleware",
    "pg": "webpipe.middleware.pg:PgMiddleware",
    "fetch": "webpipe.middleware.fetch:FetchMiddleware",
    "graphql": "webpipe.middleware.graphql_step:GraphqlMiddleware",
    "validate": "webpipe.middleware.validate:ValidateMiddleware",
    "assert": "webpipe.middleware.assert_:AssertMiddleware",
    "log": "webpipe.middleware.log:LogMiddleware",
    "debug": "webpipe.middleware.debug:DebugMiddleware",
    "auth": "webpipe.middleware.auth:AuthMiddleware",
    "cache": "webpipe.middleware.cache:CacheMiddleware",
    "rateLimit": "webpipe.middleware.rate_limit:RateLimitMiddleware",
    "stdin": "webpipe.middleware.stdin:StdinMiddleware",
}

# Names the reference registers that webpipe does not implement (spec: out of scope).
UNSUPPORTED_MIDDLEWARE: dict[str, str] = {
    "gg": "the `gg` chart middleware is not supported by webpipe",
    "algraf": "the `algraf` chart middleware is not supported by webpipe",
    "ag": "the `ag` chart middleware is not supported by webpipe",
}

ENTRY_POINT_GROUP = "webpipe.middleware"
RESERVED_STEPS = frozenset({"join", "pipeline"})  # planned by the executor itself


class Registry:
    """Name → middleware class for one app; instances are created once, on first use."""

    def __init__(self, table: dict[str, str] | None = None, *, plugins: bool = True) -> None:
        self.table: dict[str, str | type[Middleware]] = dict(table or BUILTIN_MIDDLEWARE)
        self.instances: dict[str, Middleware] = {}
        self._classes: dict[str, type[Middleware]] = {}  # imported and checked, by name
        if plugins:
            # imported here: a sandbox worker imports middleware modules (lua_state) and
            # should not pay for importlib.metadata (~40-180 ms) on every start
            from importlib.metadata import entry_points

            for ep in entry_points(group=ENTRY_POINT_GROUP):
                self.register(ep.name, ep.value, replace=False, origin=f"plugin {ep.value}")

    def register(self, name: str, impl: str | type[Middleware], *, replace: bool = False,
                 origin: str = "") -> None:
        if name in RESERVED_STEPS:
            raise ConfigError(f"middleware {name!r} from {origin or impl!r}: {name!r} is a step "
                              "of the language itself and cannot be registered")
        if name in self.table and not replace:
            raise ConfigError(f"middleware {name!r} from {origin or impl!r} would shadow an "
                              "existing one; pass replace=True to allow it")
        self.table[name] = impl
        self.instances.pop(name, None)
        self._classes.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self.table or name in UNSUPPORTED_MIDDLEWARE

    def names(self) -> list[str]:
        return sorted(self.table)

    def config_keys(self, name: str) -> frozenset[str] | None:
        """The keys middleware `name` reads in `config NAME { }` (importing its class, not
        constructing it); None for no such middleware or one that reads no block."""
        impl = self.table.get(name)
        if impl is None:
            return None
        return (self._class(name, impl) if isinstance(impl, str) else impl).config_keys

    def get(self, name: str, host: MiddlewareHost) -> Middleware:
        """The app's instance of `name`, importing and constructing it on first use."""
        if name in self.instances:
            return self.instances[name]
        if name in UNSUPPORTED_MIDDLEWARE:
            raise ConfigError(UNSUPPORTED_MIDDLEWARE[name])
        impl = self.table.get(name)
        if impl is None:
            raise ConfigError(f"unknown middleware {name!r}")
        cls = self._class(name, impl) if isinstance(impl, str) else _checked(impl)
        instance: Middleware = cls(host)  # type: ignore[call-arg]
        self.instances[name] = instance
        return instance

    def _class(self, name: str, spec: str) -> type[Middleware]:
        """The class `spec` names, imported once (`check` asks every block and step); a
        failed import is not kept, so it raises again where it is used."""
        cls = self._classes.get(name)
        if cls is None:
            cls = self._classes[name] = _import(spec)
        return cls


def _import(spec: str) -> type[Middleware]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot load middleware {spec}: {exc}") from None
    cls: type[Middleware] = getattr(module, attr)
    return _checked(cls)


def _checked(cls: type[Middleware]) -> type[Middleware]:
    """The class, when it offers every member of the contract (the executor reads them
    without probing); a plugin gets the optional ones by subclassing `BaseMiddleware`."""
    missing = [m for m in MEMBERS if not hasattr(cls, m)]
    if missing:
        raise ConfigError(f"middleware class {cls.__module__}.{cls.__qualname__} lacks "
                          f"{', '.join(missing)}: subclass webpipe.middleware.base."
                          "BaseMiddleware")
    return cls
