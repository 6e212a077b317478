"""`auth`: session authentication on PostgreSQL with Argon2id passwords (middleware.md §7).

The step's config selects a flow (`login`, `register`, `logout`, `required`, `optional`,
`type:<role>`); `prepare()` parses it once. The SQL runs on the app's one `pg` pool
(`PgMiddleware.connection()`), and the tables are created on first use when missing
(`auth_schema.py`). Argon2 hashing and verifying run in worker threads. Every login
failure costs one Argon2 verification, against a dummy hash when the user is unknown, so
a timing probe cannot tell unknown users from wrong passwords. Cookie attributes follow
§7.5, except that cookies are `Secure` by default outside development (spec/auth.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

import argon2
from argon2.exceptions import HashingError, InvalidHashError, VerificationError

from webpipe.config import config_bool, config_int, config_str
from webpipe.db import NOT_CONFIGURED
from webpipe.errors import Diagnostic, HardError
from webpipe.middleware.auth_schema import ensure_auth_schema
from webpipe.middleware.base import (
    JSON,
    BaseMiddleware,
    Behavior,
    MiddlewareHost,
    StepCall,
    StepResult,
)
from webpipe.source import Span

log = logging.getLogger("webpipe.auth")

Connection = Any  # asyncpg ships no type information
Record = Any

FLOWS = frozenset({"login", "register", "logout", "required", "optional"})
DEVELOPMENT_ENVS = frozenset({"development", "dev", "test"})
_UNSET = object()

# middleware.md §7.2
LOGIN_SQL = ("SELECT id, login, password_hash, email, COALESCE(type, 'local') AS type "
             "FROM users WHERE login = $1 AND COALESCE(status, 'active') = 'active' LIMIT 1")
SESSION_INSERT_SQL = ("INSERT INTO sessions (user_id, token, expires_at) "
                      "VALUES ($1, $2, NOW() + $3::int8 * INTERVAL '1 second')")
SESSION_SQL = ("SELECT u.id, u.login, u.email, COALESCE(u.type, 'local') AS type "
               "FROM sessions s JOIN users u ON s.user_id = u.id "
               "WHERE s.token = $1 AND s.expires_at > NOW() LIMIT 1")
USER_EXISTS_SQL = "SELECT 1 FROM users WHERE login = $1 LIMIT 1"
REGISTER_SQL = ("INSERT INTO users (login, email, password_hash) VALUES ($1, $2, $3) "
                "RETURNING id, login, email")
LOGOUT_SQL = "DELETE FROM sessions WHERE token = $1"

MISSING_LOGIN = "Missing login or password"
INVALID_CREDENTIALS = "Invalid credentials"
MISSING_FIELDS = "Missing required fields: login, email, password"
USER_EXISTS = "User already exists"
AUTH_REQUIRED = "Authentication required"
INVALID_SESSION = "Invalid session"
INSUFFICIENT = "Insufficient permissions"
INVALID_CONFIG = "Invalid auth configuration"


# -- passwords (blocking: always called through asyncio.to_thread) ----------------------


@functools.cache
def password_hasher() -> argon2.PasswordHasher:
    """Argon2id v19, m=19456 KiB, t=2, p=1, 16-byte salt, 32-byte hash (§7.4)."""
    return argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32,
                                 salt_len=16, type=argon2.Type.ID)


def hash_password(password: str) -> str:
    """A PHC string `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`."""
    return password_hasher().hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether `password` matches; parameters come from the stored string."""
    try:
        return password_hasher().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def dummy_hash() -> str:
    """A hash of a random secret, verified when the user does not exist (constant time)."""
    return hash_password(secrets.token_hex(16))


def check_password(stored_hash: str | None, password: str) -> bool:
    """Exactly one Argon2 verification whether or not there is a user (or a usable hash)."""
    dummy = dummy_hash()  # computed on the first login of any kind, not only a failing one
    candidate = stored_hash if isinstance(stored_hash, str) else dummy
    return verify_password(candidate, password) and candidate is stored_hash


# -- settings and cookies -----------------------------------------------------------------


def is_development(env_name: str | None) -> bool:
    """WEBPIPE_ENV unset/empty, `development`, `dev` or `test` (any case)."""
    name = (env_name or "").strip().lower()
    return not name or name in DEVELOPMENT_ENVS


def explicit_bool(block: Mapping[str, Any] | None, key: str) -> bool | None:
    """The key's boolean value when it is written (as `true`/`false` or its string)."""
    if_true, if_false = config_bool(block, key, True), config_bool(block, key, False)
    return if_true if if_true == if_false else None


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """`config auth` (§7.5) with the Secure rule applied."""

    session_ttl: int = 604800
    cookie_name: str = "wp_session"
    cookie_secure: bool = False
    cookie_http_only: bool = True
    cookie_same_site: str = "Lax"
    cookie_path: str = "/"

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None, env_name: str | None,
                    ) -> AuthSettings:
        """Explicit `cookieSecure` wins; unset means Secure exactly outside development."""
        secure = explicit_bool(block, "cookieSecure")
        return cls(session_ttl=config_int(block, "sessionTtl", 604800),
                   cookie_name=config_str(block, "cookieName") or "wp_session",
                   cookie_secure=not is_development(env_name) if secure is None else secure,
                   cookie_http_only=config_bool(block, "cookieHttpOnly", True),
                   cookie_same_site=config_str(block, "cookieSameSite") or "Lax",
                   cookie_path=config_str(block, "cookiePath") or "/")

    def session_cookie(self, token: str) -> str:
        parts = [f"{self.cookie_name}={token}"]
        parts += ["HttpOnly"] if self.cookie_http_only else []
        parts += ["Secure"] if self.cookie_secure else []
        parts += [f"SameSite={self.cookie_same_site}", f"Path={self.cookie_path}",
                  f"Max-Age={self.session_ttl}"]
        return "; ".join(parts)

    def clearing_cookie(self) -> str:
        """Always HttpOnly and SameSite=Strict, whatever the config says (§7.5)."""
        secure = ["Secure"] if self.cookie_secure else []
        return "; ".join([f"{self.cookie_name}=", "HttpOnly", *secure, "SameSite=Strict",
                          f"Path={self.cookie_path}", "Max-Age=0"])


def _env_name(host: MiddlewareHost) -> str | None:
    # the app's Env carries WEBPIPE_ENV as the program was loaded; plain hosts use os.environ
    name = getattr(host, "env_name", _UNSET)
    if name is _UNSET:
        return os.environ.get("WEBPIPE_ENV") or None
    return name if isinstance(name, str) else None


def _warn_insecure(settings: AuthSettings, env_name: str | None) -> None:
    if not settings.cookie_secure and not is_development(env_name):
        log.warning("auth: cookieSecure is false with WEBPIPE_ENV=%s; session cookies will "
                    "also be sent over plain HTTP", env_name)
    if settings.cookie_same_site.lower() == "none" and not settings.cookie_secure:
        log.warning("auth: cookieSameSite None without Secure is rejected by browsers")


# -- the middleware -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthFlow:
    """A prepared step: the flow name, and the role for `type:<role>`."""

    kind: str  # one of FLOWS, "type", or "invalid"
    role: str = ""


class AuthDatabaseError(HardError):
    """A query failed (hard error, §7); logout ignores these."""


class PoolProvider(Protocol):
    """What `host.middleware("pg")` offers auth: a connection from the app's pool."""

    def connection(self) -> AbstractAsyncContextManager[Connection]: ...


def auth_error(message: str) -> dict[str, JSON]:
    return {"errors": [{"type": "authError", "message": message}]}


def _merged(state: JSON, **keys: JSON) -> JSON:
    """What to merge into the state; a non-object state passes unchanged (as upstream)."""
    return keys if isinstance(state, dict) else state


def _body_str(state: JSON, key: str) -> str | None:
    body = state.get("body") if isinstance(state, dict) else None
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _user(row: Record) -> dict[str, JSON]:
    return {"id": row["id"], "login": row["login"], "email": row["email"], "type": row["type"]}


def _db_errors() -> tuple[type[BaseException], ...]:
    asyncpg: Any = importlib.import_module("asyncpg")
    return (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
            OSError, TimeoutError)


class AuthMiddleware(BaseMiddleware):
    """Session auth; settings are read once, the schema is ensured on first database use."""

    behavior: ClassVar[Behavior] = Behavior.MERGE
    config_keys: ClassVar[frozenset[str] | None] = frozenset({
        "sessionTtl", "cookieName", "cookieSecure", "cookieHttpOnly", "cookieSameSite",
        "cookiePath"})

    def __init__(self, host: MiddlewareHost) -> None:
        super().__init__(host)
        env_name = _env_name(host)
        self.settings = AuthSettings.from_config(host.config_block("auth"), env_name)
        self._schema_ready = False
        _warn_insecure(self.settings, env_name)

    def prepare(self, config: str, span: Span | None) -> AuthFlow:
        text = config.strip()
        if text in FLOWS:
            return AuthFlow(text)
        if text.startswith("type:"):
            return AuthFlow("type", text[len("type:"):].strip())
        return AuthFlow("invalid")  # an authError at run time, as upstream

    def check(self, prepared: object, config: str, span: Span) -> list[Diagnostic]:
        if isinstance(prepared, AuthFlow) and prepared.kind == "invalid":
            return [Diagnostic(f"unknown auth flow {config.strip()!r} (expected login, "
                               "register, logout, required, optional or type:ROLE)", span,
                               code="bad-config")]
        return []

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert isinstance(prepared, AuthFlow)
        match prepared.kind:
            case "login":
                value = await self._login(state)
            case "register":
                value = await self._register(state)
            case "logout":
                value = await self._logout(state)
            case "required":
                value = await self._required(state)
            case "optional":
                value = await self._optional(state)
            case "type":
                value = await self._type(state, prepared.role)
            case _:
                value = auth_error(INVALID_CONFIG)
        return StepResult(value)

    # -- flows ----------------------------------------------------------------------------

    async def _login(self, state: JSON) -> JSON:
        login = _body_str(state, "login")
        login = _body_str(state, "username") if login is None else login
        password = _body_str(state, "password")
        if login is None or password is None:
            return auth_error(MISSING_LOGIN)
        row = await self._fetchrow(LOGIN_SQL, login)
        stored = row["password_hash"] if row is not None else None
        if not await asyncio.to_thread(check_password, stored, password) or row is None:
            return auth_error(INVALID_CREDENTIALS)
        token = secrets.token_hex(32)
        await self._execute(SESSION_INSERT_SQL, row["id"], token, self.settings.session_ttl)
        user = {**_user(row), "login": login, "status": "active"}
        return _merged(state, user=user, **_append_cookie(state,
                                                          self.settings.session_cookie(token)))

    async def _register(self, state: JSON) -> JSON:
        login, email, password = (_body_str(state, k) for k in ("login", "email", "password"))
        if login is None or email is None or password is None:
            return auth_error(MISSING_FIELDS)
        if await self._fetchrow(USER_EXISTS_SQL, login) is not None:
            return auth_error(USER_EXISTS)
        try:
            password_hash = await asyncio.to_thread(hash_password, password)
        except HashingError as exc:
            raise HardError(f"Password hashing failed: {exc}") from exc
        row = await self._insert_user(login, email, password_hash)
        if row is None:  # a concurrent registration of the same login won the race
            return auth_error(USER_EXISTS)
        user = {"id": row["id"], "login": row["login"], "email": row["email"],
                "type": "local", "status": "active"}
        return _merged(state, user=user, message="User registration successful")

    async def _required(self, state: JSON) -> JSON:
        token = self._token(state)
        if not token:
            return auth_error(AUTH_REQUIRED)
        row = await self._fetchrow(SESSION_SQL, token)
        return auth_error(INVALID_SESSION) if row is None else _merged(state, user=_user(row))

    async def _optional(self, state: JSON) -> JSON:
        token = self._token(state)
        row = await self._fetchrow(SESSION_SQL, token) if token else None
        return state if row is None else _merged(state, user=_user(row))

    async def _type(self, state: JSON, role: str) -> JSON:
        value = await self._required(state)
        user = value.get("user") if isinstance(value, dict) else None
        if isinstance(user, dict) and user.get("type") == role:
            return value
        return auth_error(INSUFFICIENT)

    async def _logout(self, state: JSON) -> JSON:
        token = self._token(state)
        if token:
            with contextlib.suppress(AuthDatabaseError):  # §7.1: errors ignored
                await self._execute(LOGOUT_SQL, token)
        return _merged(state, setCookies=[self.settings.clearing_cookie()])

    def _token(self, state: JSON) -> str | None:
        cookies = state.get("cookies") if isinstance(state, dict) else None
        token = cookies.get(self.settings.cookie_name) if isinstance(cookies, dict) else None
        return token if isinstance(token, str) else None

    # -- database -------------------------------------------------------------------------

    async def _fetchrow(self, sql: str, *args: Any) -> Record | None:
        async with self._connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> None:
        async with self._connection() as conn:
            await conn.execute(sql, *args)

    async def _insert_user(self, login: str, email: str, password_hash: str) -> Record | None:
        unique_violation = importlib.import_module("asyncpg").UniqueViolationError
        async with self._connection() as conn:
            try:
                return await conn.fetchrow(REGISTER_SQL, login, email, password_hash)
            except unique_violation:
                return None

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A pooled connection (released between queries, never held across Argon2)."""
        try:
            pg = cast(PoolProvider, self.host.middleware("pg"))
        except KeyError:
            raise HardError(NOT_CONFIGURED) from None
        try:
            async with pg.connection() as conn:
                if not self._schema_ready:
                    await ensure_auth_schema(conn)  # spec/auth.md: lazy schema creation
                    self._schema_ready = True
                yield conn
        except _db_errors() as exc:
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise AuthDatabaseError(f"Database error: {message}") from exc


def _append_cookie(state: JSON, cookie: str) -> dict[str, JSON]:
    """§7.1: create `setCookies`, append to a list, or add nothing to a non-list."""
    if not isinstance(state, dict) or "setCookies" not in state:
        return {"setCookies": [cookie]}
    existing = state["setCookies"]
    return {"setCookies": [*existing, cookie]} if isinstance(existing, list) else {}
