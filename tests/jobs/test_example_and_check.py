"""The `examples/jobs` app sends its welcome webhook durably through a real server and the
real database; `webpipe check` rejects `@durable` where it cannot work."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.hostile.harness import serve
from tests.jobs.support import Hooks, until
from webpipe.check import check_file
from webpipe.jobs.identity import durable_index
from webpipe.program import program_from_text

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jobs" / "app.wp"


async def test_the_example_sends_the_welcome_webhook_durably(
        tmp_path: Path, db_url: str, hooks: Hooks, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WELCOME_URL", hooks.base + "/hook")
    async with serve(tmp_path, EXAMPLE.read_text()) as served, \
            httpx.AsyncClient(base_url=served.base) as client:
        r = await client.post("/signup", json={"email": "ann@example.com", "name": "Ann"})
        assert r.status_code == 202
        assert r.json() == {"welcome": "queued", "email": "ann@example.com"}
        await until(lambda: len(hooks.bodies) == 1)
    body = hooks.bodies[0]
    assert body["email"] == "ann@example.com" and body["text"] == "Welcome, Ann!"
    assert body["job"]["attempt"] == 1 and isinstance(body["job"]["id"], int)


def _errors(tmp_path: Path, text: str) -> list[str]:
    app = tmp_path / "app.wp"
    app.write_text(text)
    return [f"{d.span.line}: {d.message}" for d in check_file(app)
            if d.severity == "error" and d.span is not None]


def test_check_rejects_durable_off_a_background_step(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "GET /x\n  |> fetch: `http://127.0.0.1:9/` @durable\n")
    assert errors == ["2: @durable has no effect here: it is allowed only with @background"]


def test_check_rejects_durable_without_a_database(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "WP_PG_HOST", "WP_PG_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WP_PG_EMBEDDED", "off")
    text = "GET /x\n  |> fetch: `http://127.0.0.1:9/` @background @durable\n"
    [error] = _errors(tmp_path, text)
    assert error.startswith("2: @durable needs a database")
    everything = "config jobs {\n  durable: true\n}\n\n" + text.replace(" @durable", "")
    [error] = _errors(tmp_path, everything)
    assert error.startswith("6: config jobs { durable: true } makes this @background step")
    monkeypatch.setenv("DATABASE_URL", "postgres://db.example/app")
    assert _errors(tmp_path, text) == []


def test_config_jobs_durable_makes_every_background_step_a_job(tmp_path: Path) -> None:
    text = ("GET /x\n  |> fetch: `http://127.0.0.1:9/a` @background\n"
            "  |> fetch: `http://127.0.0.1:9/a` @background\n"
            "  |> fetch: `http://127.0.0.1:9/c`\n")
    plain = program_from_text(text, base_dir=tmp_path)
    assert durable_index(plain) == {}
    env = program_from_text("config jobs {\n  durable: true\n}\n\n" + text, base_dir=tmp_path)
    found = sorted((ident["file"], ident["line"]) for _plan, ident in
                   durable_index(env).values())
    # the same text twice in one file: two identities (the occurrence is part of the hash)
    assert found == [("app.wp", 6), ("app.wp", 7)]
