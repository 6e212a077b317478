"""Issue 22 outcome 9: dotfiles and dot-folders of `public/` are not served (404 like a
missing file) unless the app opts in with `config static { dotfiles: true }`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.hostile.harness import health_while, serve
from tests.hostile.responsive import assert_responsive

APP = """
GET /hello
  |> jq: `{ hello: "world" }`
"""
PROBES = ("/.env", "/.git/config", "/%2Eenv", "/assets/.secret.json", "/.git/", "/.env.local")


def public(tmp_path: Path) -> None:
    site = tmp_path / "public"
    (site / ".git").mkdir(parents=True)
    (site / "assets").mkdir()
    (site / ".env").write_text("DATABASE_PASSWORD=hunter2")
    (site / ".env.local").write_text("API_KEY=k")
    (site / ".git" / "config").write_text("[remote]")
    (site / ".git" / "index.html").write_text("git")
    (site / "assets" / ".secret.json").write_text("{}")
    (site / "assets" / "app.css").write_text("body{}")


async def test_dotfiles_are_404_while_the_server_keeps_serving(tmp_path: Path) -> None:
    public(tmp_path)
    async with serve(tmp_path, APP) as served:
        async with httpx.AsyncClient(base_url=served.base) as c:
            assert (await c.get("/assets/app.css")).text == "body{}"
            rss_before = served.rss_kb()

            async def hostile(i: int) -> list[httpx.Response]:
                return [await c.get(PROBES[(i + k) % len(PROBES)]) for k in range(25)]

            latencies, answers = await health_while(
                served, asyncio.gather(*(hostile(i) for i in range(8))))
            responses = [r for batch in answers for r in batch]  # type: ignore[attr-defined]
            assert {r.status_code for r in responses} == {404}
            assert not any(b"hunter2" in r.content or b"[remote]" in r.content
                           for r in responses)
            assert (await c.get("/hello")).json() == {"hello": "world"}
        assert_responsive(latencies)
        assert served.rss_kb() < rss_before * 1.1
        assert await served.stop() < 5


async def test_dotfiles_served_when_the_app_opts_in(tmp_path: Path) -> None:
    public(tmp_path)
    app = "config static {\n  dotfiles: $SERVE_DOTFILES || true\n}\n" + APP
    async with serve(tmp_path, app) as served, httpx.AsyncClient(base_url=served.base) as c:
        assert (await c.get("/.env")).text == "DATABASE_PASSWORD=hunter2"
        assert (await c.get("/.git/config")).text == "[remote]"
