"""The `auth` middleware end to end: HTTP with cookies against a real PostgreSQL.

middleware.md §7 and spec/auth.md. One embedded server (pgserver) is started per session;
each test drops the auth tables first, so every app also exercises the lazy schema
creation. Requests go through the real ASGI app with httpx's cookie jar.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import argon2
import httpx
import pytest

from tests.middleware.pg_server import free_port, socket_dir
from tests.support import SimpleHost
from webpipe.middleware import auth as auth_module
from webpipe.middleware.auth import AuthMiddleware, AuthSettings, hash_password, verify_password
from webpipe.middleware.auth_schema import init_auth_schema
from webpipe.middleware.base import StepCall
from webpipe.middleware.pg import PgMiddleware
from webpipe.pgembed import default_data_dir, embedded_url
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

JSON = Any
PG_VARS = ("WP_PG_HOST", "WP_PG_PORT", "WP_PG_DATABASE", "WP_PG_USER", "WP_PG_PASSWORD",
           "DATABASE_URL", "WP_PG_EMBEDDED", "WEBPIPE_ENV")
TOKEN = re.compile(r"wp_session=([0-9a-f]{64}); ")

ROUTES = """
POST /register
  |> auth: "register"
  |> result
    ok(201):
      |> jq: `{ user: .user, message: .message }`
    authError(409):
      |> jq: `{ error: .errors[0].message }`

POST /login
  |> auth: "login"
  |> result
    ok(200):
      |> jq: `{ user: .user }`
    authError(401):
      |> jq: `{ error: .errors[0].message }`

POST /login-raw
  |> jq: `if .body | has("existing") then . + { setCookies: .body.existing } else . end`
  |> auth: "login"

POST /logout
  |> auth: "logout"
  |> jq: `{ bye: true, setCookies: .setCookies }`

GET /me
  |> auth: "required"
  |> result
    ok(200):
      |> jq: `{ user: .user }`
    authError(401):
      |> jq: `{ error: .errors[0].message }`

GET /maybe
  |> auth: optional
  |> jq: `{ user: .user }`

GET /admin
  |> auth: "type:admin"
  |> result
    ok(200):
      |> jq: `{ user: .user }`
    authError(403):
      |> jq: `{ error: .errors[0].message }`

GET /bad
  |> auth: "sometimes"
"""

MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("authapp")


@pytest.fixture(scope="session")
def pg_url(app_dir: Path) -> str:
    """The session's embedded server, started once (stopped by pgserver at exit)."""
    return embedded_url(default_data_dir(app_dir))


@pytest.fixture(autouse=True)
def _no_pg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PG_VARS:
        monkeypatch.delenv(name, raising=False)


def pg_block(pg_url: str) -> str:
    """`config pg` pointing at the session server's Unix socket directory."""
    return (f'config pg {{\n  host: "{socket_dir(pg_url)}"\n  port: 5432\n'
            "  initialPoolSize: 1\n}\n")


@pytest.fixture
async def db(pg_url: str, app_dir: Path) -> AsyncIterator[PgMiddleware]:
    """The session database with no auth tables (a `pg` instance for inspecting it)."""
    pg = PgMiddleware(SimpleHost(base=app_dir, configs={"pg": {
        "host": socket_dir(pg_url), "port": 5432, "initialPoolSize": 1}}))
    await sql(pg, "DROP TABLE IF EXISTS sessions, users CASCADE")
    yield pg
    await pg.aclose()


@pytest.fixture
async def make_client(db: PgMiddleware, pg_url: str, app_dir: Path,
                      ) -> AsyncIterator[MakeClient]:
    """An httpx client on a fresh app: `config pg` + optional `config auth` + ROUTES."""
    envs, clients = [], []

    async def make(auth_config: str = "", *, environ: dict[str, str] | None = None,
                   pg: str | None = None) -> httpx.AsyncClient:
        text = (pg_block(pg_url) if pg is None else pg) + auth_config + ROUTES
        env = program_from_text(text, base_dir=app_dir, environ=environ or {})
        transport = httpx.ASGITransport(app=create_app(build_served(env)))
        client = httpx.AsyncClient(transport=transport, base_url="http://t")
        envs.append(env)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
    for env in envs:
        await env.aclose()


@pytest.fixture
async def client(make_client: MakeClient) -> httpx.AsyncClient:
    return await make_client()


async def sql(pg: PgMiddleware, query: str, *args: Any) -> list[dict[str, Any]]:
    async with pg.connection() as conn:
        return [dict(r) for r in await conn.fetch(query, *args)]


def session(token: str) -> dict[str, str]:
    """A Cookie header sent by hand (for tokens the jar no longer holds)."""
    return {"cookie": f"wp_session={token}"}


async def register(client: httpx.AsyncClient, login: str = "ada", password: str = "s3cret!",
                   email: str = "ada@example.com") -> httpx.Response:
    return await client.post("/register", json={"login": login, "email": email,
                                                "password": password})


async def login(client: httpx.AsyncClient, login: str = "ada", password: str = "s3cret!",
                ) -> httpx.Response:
    return await client.post("/login", json={"login": login, "password": password})


# -- the whole flow ----------------------------------------------------------------------


async def test_register_login_required_logout(client: httpx.AsyncClient,
                                              db: PgMiddleware) -> None:
    created = await register(client)
    assert created.status_code == 201
    user = created.json()["user"]
    assert user == {"id": user["id"], "login": "ada", "email": "ada@example.com",
                    "type": "local", "status": "active"}
    assert created.json()["message"] == "User registration successful"
    assert "set-cookie" not in created.headers

    logged_in = await login(client)
    assert logged_in.status_code == 200
    assert logged_in.json()["user"] == {**user, "status": "active"}
    [cookie] = logged_in.headers.get_list("set-cookie")
    match = TOKEN.match(cookie)
    assert match is not None, cookie
    token = match.group(1)
    assert cookie == f"wp_session={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age=604800"

    me = await client.get("/me")  # the jar sends the cookie
    assert (me.status_code, me.json()) == (200, {"user": {k: user[k] for k in
                                                          ("id", "login", "email", "type")}})

    out = await client.post("/logout")
    assert out.headers.get_list("set-cookie") == [
        "wp_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"]
    assert await sql(db, "SELECT 1 FROM sessions WHERE token = $1", token) == []
    assert (await client.get("/me")).json() == {"error": "Authentication required"}
    again = await client.get("/me", headers=session(token))
    assert (again.status_code, again.json()) == (401, {"error": "Invalid session"})


async def test_login_stores_a_session_and_an_argon2id_hash(client: httpx.AsyncClient,
                                                           db: PgMiddleware) -> None:
    await register(client)
    await login(client)
    [row] = await sql(db, "SELECT password_hash FROM users WHERE login = 'ada'")
    assert row["password_hash"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    [session] = await sql(db, "SELECT token, expires_at - NOW() AS left FROM sessions")
    assert re.fullmatch(r"[0-9a-f]{64}", session["token"])
    assert 604790 < session["left"].total_seconds() <= 604800


async def test_login_accepts_username_and_merges_into_the_state(
        client: httpx.AsyncClient) -> None:
    await register(client)
    response = await client.post("/login-raw", json={"username": "ada",
                                                     "password": "s3cret!"})
    body = response.json()
    assert body["user"]["login"] == "ada"
    assert "body" not in body  # the request (and its password) is not echoed
    assert response.headers.get_list("set-cookie")[0].startswith("wp_session=")
    assert "setCookies" not in body  # a header only: HttpOnly means no token in the body


@pytest.mark.parametrize(("existing", "count"), [(["theme=dark"], 2), ("not a list", 0)])
async def test_login_appends_to_set_cookies(client: httpx.AsyncClient, existing: JSON,
                                            count: int) -> None:
    await register(client)
    response = await client.post("/login-raw", json={"login": "ada", "password": "s3cret!",
                                                     "existing": existing})
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == count
    if count:
        assert cookies[0] == "theme=dark" and cookies[1].startswith("wp_session=")
        assert "setCookies" not in response.json()


# -- failures ------------------------------------------------------------------------------


async def test_wrong_password_and_unknown_user_look_the_same(
        client: httpx.AsyncClient, db: PgMiddleware, monkeypatch: pytest.MonkeyPatch) -> None:
    await register(client)
    await register(client, "inactive")
    await sql(db, "UPDATE users SET status = 'disabled' WHERE login = 'inactive'")
    calls: list[tuple[str, bool]] = []

    def counting_verify(stored_hash: str, password: str) -> bool:
        calls.append((stored_hash, threading.current_thread() is threading.main_thread()))
        return verify_password(stored_hash, password)

    monkeypatch.setattr(auth_module, "verify_password", counting_verify)
    answers = [await login(client, "ada", "wrong"), await login(client, "nobody"),
               await login(client, "inactive")]
    assert {(r.status_code, r.text) for r in answers} == {
        (401, '{"error":"Invalid credentials"}')}
    [stored] = await sql(db, "SELECT password_hash FROM users WHERE login = 'ada'")
    dummy = auth_module.dummy_hash()
    assert calls == [(stored["password_hash"], False), (dummy, False), (dummy, False)]
    assert dummy.startswith("$argon2id$v=19$m=19456,t=2,p=1$")  # same cost as a real hash


async def test_missing_fields(client: httpx.AsyncClient) -> None:
    assert (await client.post("/login", json={"login": "ada"})).json() == {
        "error": "Missing login or password"}
    numeric = await client.post("/login", data={"login": "ada", "password": "1234"})
    assert numeric.json() == {"error": "Missing login or password"}  # form numbers [Parity]
    assert (await client.post("/register", json={"login": "ada"})).json() == {
        "error": "Missing required fields: login, email, password"}


async def test_duplicate_register_is_an_auth_error(client: httpx.AsyncClient) -> None:
    assert (await register(client)).status_code == 201
    again = await register(client, email="other@example.com")
    assert (again.status_code, again.json()) == (409, {"error": "User already exists"})


async def test_concurrent_duplicate_registers(client: httpx.AsyncClient,
                                              db: PgMiddleware) -> None:
    answers = await asyncio.gather(*(register(client, "race") for _ in range(5)))
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409, 409]
    assert await sql(db, "SELECT login FROM users") == [{"login": "race"}]


async def test_insert_race_lost_is_an_auth_error(client: httpx.AsyncClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # the existence check passes (as for a concurrent twin); the insert's unique violation
    # must still answer "User already exists" — and hashing ran in a worker thread
    threads: list[bool] = []

    def recording_hash(password: str) -> str:
        threads.append(threading.current_thread() is threading.main_thread())
        return hash_password(password)

    monkeypatch.setattr(auth_module, "hash_password", recording_hash)
    assert (await register(client)).status_code == 201
    monkeypatch.setattr(auth_module, "USER_EXISTS_SQL", "SELECT 1 WHERE $1::text IS NULL")
    again = await register(client)
    assert (again.status_code, again.json()) == (409, {"error": "User already exists"})
    assert threads == [False, False]


async def test_session_expiry(make_client: MakeClient) -> None:
    client = await make_client("config auth {\n  sessionTtl: 1\n}\n")
    await register(client)
    cookie = (await login(client)).headers["set-cookie"]
    assert cookie.endswith("; Max-Age=1")
    token = TOKEN.match(cookie).group(1)  # type: ignore[union-attr]
    assert (await client.get("/me")).status_code == 200
    await asyncio.sleep(1.1)
    expired = await client.get("/me", headers=session(token))
    assert (expired.status_code, expired.json()) == (401, {"error": "Invalid session"})


async def test_optional(client: httpx.AsyncClient) -> None:
    assert (await client.get("/maybe")).json() == {"user": None}
    assert (await client.get("/maybe", headers=session("f" * 64))).json() == {
        "user": None}
    await register(client)
    await login(client)
    assert (await client.get("/maybe")).json()["user"]["login"] == "ada"


async def test_type_role(client: httpx.AsyncClient, db: PgMiddleware) -> None:
    denied = {"error": "Insufficient permissions"}
    assert (await client.get("/admin")).json() == denied  # no cookie at all
    await register(client)
    await login(client)
    assert (await client.get("/admin")).json() == denied
    await sql(db, "UPDATE users SET type = 'admin'")
    allowed = await client.get("/admin")
    assert (allowed.status_code, allowed.json()["user"]["type"]) == (200, "admin")


async def test_invalid_configuration(client: httpx.AsyncClient) -> None:
    assert (await client.get("/bad")).json()["errors"] == [
        {"type": "authError", "message": "Invalid auth configuration"}]


# -- cookies -------------------------------------------------------------------------------

CUSTOM = """config auth {
  sessionTtl: 60
  cookieName: "sid"
  cookieSecure: true
  cookieHttpOnly: false
  cookieSameSite: "Strict"
  cookiePath: "/app"
}
"""


async def test_cookie_config(make_client: MakeClient) -> None:
    client = await make_client(CUSTOM)
    await register(client)
    cookie = (await login(client)).headers["set-cookie"]
    assert re.fullmatch(r"sid=[0-9a-f]{64}; Secure; SameSite=Strict; Path=/app; Max-Age=60",
                        cookie)
    cleared = await client.post("/logout")
    assert cleared.headers["set-cookie"] == "sid=; HttpOnly; Secure; SameSite=Strict; " \
                                            "Path=/app; Max-Age=0"


@pytest.mark.parametrize(("env_name", "configured", "secure"), [
    (None, None, False), ("development", None, False), ("dev", None, False),
    ("TEST", None, False), ("production", None, True), ("staging", None, True),
    ("production", False, False), ("production", "false", False), (None, True, True),
    ("dev", "true", True),
])
def test_secure_rule(env_name: str | None, configured: JSON, secure: bool) -> None:
    block = {} if configured is None else {"cookieSecure": configured}
    assert AuthSettings.from_config(block, env_name).cookie_secure is secure


async def test_production_cookies_are_secure_by_default(make_client: MakeClient) -> None:
    client = await make_client(environ={"WEBPIPE_ENV": "production"})
    await register(client)
    assert "; Secure; " in (await login(client)).headers["set-cookie"]


def test_explicitly_insecure_production_cookies_warn(caplog: pytest.LogCaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBPIPE_ENV", "production")
    with caplog.at_level(logging.WARNING, logger="webpipe.auth"):
        mw = AuthMiddleware(SimpleHost(configs={"auth": {"cookieSecure": False}}))
    assert not mw.settings.cookie_secure
    assert "cookieSecure is false" in caplog.text


# -- schema --------------------------------------------------------------------------------


async def test_schema_is_created_on_first_use(client: httpx.AsyncClient,
                                              db: PgMiddleware) -> None:
    tables = "SELECT to_regclass('users') AS u, to_regclass('sessions') AS s"
    assert await sql(db, tables) == [{"u": None, "s": None}]
    assert (await client.get("/me")).status_code == 401  # no cookie: no query, no schema
    assert await sql(db, tables) == [{"u": None, "s": None}]
    assert (await register(client)).status_code == 201
    assert await sql(db, tables) == [{"u": "users", "s": "sessions"}]


async def test_init_auth_schema_is_idempotent(db: PgMiddleware, pg_url: str,
                                              tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text(pg_block(pg_url) + ROUTES, encoding="utf-8")
    assert await init_auth_schema(app) == ["users", "sessions"]
    assert await init_auth_schema(app) == []
    await sql(db, "DROP TABLE sessions")
    assert await init_auth_schema(app) == ["sessions"]
    columns = await sql(db, "SELECT table_name AS t, column_name AS c, data_type AS d "
                            "FROM information_schema.columns WHERE table_name IN "
                            "('users', 'sessions') ORDER BY t, ordinal_position")
    assert [(c["t"], c["c"]) for c in columns] == [
        ("sessions", "id"), ("sessions", "user_id"), ("sessions", "token"),
        ("sessions", "expires_at"), ("sessions", "created_at"), ("users", "id"),
        ("users", "login"), ("users", "email"), ("users", "password_hash"),
        ("users", "type"), ("users", "status"), ("users", "created_at")]
    assert {c["d"] for c in columns if c["c"] == "id"} == {"integer"}  # int4 (§7.3)


async def test_tables_made_elsewhere_are_used_as_they_are(client: httpx.AsyncClient,
                                                          db: PgMiddleware) -> None:
    # the reference's own setup: TIMESTAMP columns, no created_at defaults required
    await sql(db, "CREATE TABLE users (id SERIAL PRIMARY KEY, login TEXT UNIQUE NOT NULL, "
                  "email TEXT NOT NULL, password_hash TEXT NOT NULL, type TEXT, status TEXT)")
    await sql(db, "CREATE TABLE sessions (user_id INT REFERENCES users(id), "
                  "token TEXT UNIQUE NOT NULL, expires_at TIMESTAMP NOT NULL)")
    await register(client)
    assert (await login(client)).status_code == 200
    assert (await client.get("/me")).json()["user"]["type"] == "local"


# -- database failures ---------------------------------------------------------------------


async def test_no_database_is_a_hard_error(make_client: MakeClient,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WP_PG_EMBEDDED", "0")
    client = await make_client(pg="")
    response = await login(client)
    assert response.status_code == 500
    assert "Database not configured" in response.json()["details"]


async def test_unreachable_database(make_client: MakeClient) -> None:
    client = await make_client(pg='config pg {\n  host: "127.0.0.1"\n'
                                  f"  port: {free_port()}\n}}\n")
    response = await client.get("/me", headers=session("a" * 64))
    assert response.status_code == 500
    assert "Database error" in response.json()["details"]
    out = await client.post("/logout", headers=session("a" * 64))
    assert out.status_code == 200  # logout ignores database errors (§7.1)
    assert out.headers["set-cookie"].startswith("wp_session=; ")


# -- passwords -----------------------------------------------------------------------------


def test_hash_parameters_and_foreign_hashes() -> None:
    stored = hash_password("pw")
    assert re.fullmatch(r"\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$"
                        r"[A-Za-z0-9+/]{43}", stored)
    assert verify_password(stored, "pw") and not verify_password(stored, "PW")
    other = argon2.PasswordHasher(time_cost=1, memory_cost=8192, type=argon2.Type.ID)
    assert verify_password(other.hash("pw"), "pw")  # parameters come from the string
    assert not verify_password("not a hash", "pw")


async def test_non_object_state_passes_unchanged(app_dir: Path) -> None:
    mw = AuthMiddleware(SimpleHost(base=app_dir))
    call = StepCall("auth", "logout")
    assert (await mw.run([1, 2], mw.prepare("logout", None), call)).value == [1, 2]
    assert (await mw.run(None, mw.prepare(" required ", None), call)).value == {
        "errors": [{"type": "authError", "message": "Authentication required"}]}
