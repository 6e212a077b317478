"""Tests for webpipe.static: public-directory lookup and file responses (language.md §9.2)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from webpipe.static import content_type_for, resolve_static, static_response


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A public directory next to a secret file, with nested index pages."""
    public = tmp_path / "public"
    (public / "docs" / "guide").mkdir(parents=True)
    (public / "css").mkdir()
    (public / "index.html").write_text("<h1>home</h1>")
    (public / "docs" / "index.html").write_text("docs")
    (public / "docs" / "guide" / "index.html").write_text("guide")
    (public / "css" / "site.css").write_text("body{}")
    (public / "file name.txt").write_text("spaced")
    (public / "café.txt").write_text("accent")
    (public / "notes").mkdir()  # a directory without an index page
    (tmp_path / "secret.txt").write_text("top secret")
    return public


def test_root_maps_to_index(site: Path) -> None:
    assert resolve_static(site, "/") == (site / "index.html").resolve()


def test_plain_file(site: Path) -> None:
    assert resolve_static(site, "/css/site.css") == (site / "css" / "site.css").resolve()


def test_trailing_slash_appends_index(site: Path) -> None:
    assert resolve_static(site, "/docs/") == (site / "docs" / "index.html").resolve()
    assert (
        resolve_static(site, "/docs/guide/") == (site / "docs" / "guide" / "index.html").resolve()
    )
    assert resolve_static(site, "/css/site.css/") is None


def test_extension_less_directory_tries_index(site: Path) -> None:
    assert resolve_static(site, "/docs") == (site / "docs" / "index.html").resolve()
    assert resolve_static(site, "/docs/guide") == (site / "docs" / "guide" / "index.html").resolve()


def test_missing_or_directory_without_index(site: Path) -> None:
    assert resolve_static(site, "/nope") is None
    assert resolve_static(site, "/nope.html") is None
    assert resolve_static(site, "/notes") is None
    assert resolve_static(site, "/notes/") is None
    assert resolve_static(site, "/css") is None


def test_percent_decoding(site: Path) -> None:
    assert resolve_static(site, "/file%20name.txt") == (site / "file name.txt").resolve()
    assert resolve_static(site, "/caf%C3%A9.txt") == (site / "café.txt").resolve()
    assert resolve_static(site, "/css%2Fsite.css") == (site / "css" / "site.css").resolve()
    assert resolve_static(site, "/./css/./site.css") == (site / "css" / "site.css").resolve()


@pytest.mark.parametrize(
    "url_path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/docs/../../secret.txt",
        "/docs/%2e%2e/%2e%2e/secret.txt",
        "/docs/..%2f..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/docs/../index.html",  # any `..` is refused, even one that stays inside
        "/../public/index.html",
    ],
)
def test_traversal_refused(site: Path, url_path: str) -> None:
    assert resolve_static(site, url_path) is None


@pytest.mark.parametrize("url_path", ["/caf%C3.txt", "/%FF", "/secret%00.txt", "index.html", ""])
def test_bad_paths_are_not_static(site: Path, url_path: str) -> None:
    assert resolve_static(site, url_path) is None


def test_symlink_pointing_outside_is_refused(site: Path) -> None:
    (site / "leak.txt").symlink_to(site.parent / "secret.txt")
    (site / "up").symlink_to(site.parent, target_is_directory=True)
    assert resolve_static(site, "/leak.txt") is None
    assert resolve_static(site, "/up/secret.txt") is None


def test_symlink_inside_is_followed(site: Path) -> None:
    (site / "latest.css").symlink_to(site / "css" / "site.css")
    assert resolve_static(site, "/latest.css") == (site / "css" / "site.css").resolve()


def test_symlinked_public_dir_itself_is_fine(site: Path, tmp_path: Path) -> None:
    link = tmp_path / "public-link"
    link.symlink_to(site, target_is_directory=True)
    assert resolve_static(link, "/css/site.css") == (site / "css" / "site.css").resolve()


def test_symlink_loop_is_not_static(site: Path) -> None:
    (site / "loop").symlink_to(site / "loop")
    assert resolve_static(site, "/loop") is None


def test_missing_public_dir(tmp_path: Path) -> None:
    assert resolve_static(tmp_path / "absent", "/") is None
    (tmp_path / "plain").write_text("x")
    assert resolve_static(tmp_path / "plain", "/") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.html", "text/html; charset=utf-8"),
        ("a.HTM", "text/html; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.js", "application/javascript; charset=utf-8"),
        ("a.mjs", "application/javascript; charset=utf-8"),
        ("a.json", "application/json; charset=utf-8"),
        ("a.svg", "image/svg+xml"),
        ("a.png", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("a.jpeg", "image/jpeg"),
        ("a.gif", "image/gif"),
        ("a.webp", "image/webp"),
        ("a.ico", "image/x-icon"),
        ("a.woff", "font/woff"),
        ("a.woff2", "font/woff2"),
        ("a.ttf", "font/ttf"),
        ("a.otf", "font/otf"),
        ("a.txt", "application/octet-stream"),
        ("README", "application/octet-stream"),
    ],
)
def test_content_types(name: str, expected: str) -> None:
    assert content_type_for(Path(name)) == expected


async def test_static_response_over_asgi(site: Path) -> None:
    (site / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    async def serve(request: Request) -> Response:
        found = resolve_static(site, request.scope["raw_path"].decode())
        return static_response(found) if found is not None else Response(status_code=404)

    app = Starlette(routes=[Route("/{rest:path}", serve)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        home = await client.get("/")
        logo = await client.get("/logo.png")
        css = await client.get("/css/site.css")
        secret = await client.get("/%2e%2e/secret.txt")
    assert home.status_code == 200
    assert home.text == "<h1>home</h1>"
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    assert logo.content == b"\x89PNG\r\n\x1a\n"
    assert logo.headers["content-type"] == "image/png"
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert secret.status_code == 404


@pytest.fixture
def dotted(site: Path) -> Path:
    """Dotfiles and a dot-folder in the public directory, and a symlink leading to one."""
    (site / ".env").write_text("SECRET=1")
    (site / ".git").mkdir()
    (site / ".git" / "config").write_text("[core]")
    (site / ".well-known").mkdir()
    (site / ".well-known" / "security.txt").write_text("Contact: x")
    (site / "docs" / ".hidden.html").write_text("hidden")
    (site / "env.txt").symlink_to(site / ".env")
    return site


@pytest.mark.parametrize("url_path", [
    "/.env", "/.git/config", "/.git/", "/docs/.hidden.html", "/%2Eenv", "/.git%2Fconfig",
    "/docs/../.env", "/.well-known/security.txt", "/env.txt",
])
def test_dotfiles_are_not_static(dotted: Path, url_path: str) -> None:
    assert resolve_static(dotted, url_path) is None


def test_dotfiles_when_the_app_opts_in(dotted: Path) -> None:
    assert resolve_static(dotted, "/.env", dotfiles=True) == (dotted / ".env").resolve()
    assert resolve_static(dotted, "/.git/config", dotfiles=True) is not None
    assert resolve_static(dotted, "/env.txt", dotfiles=True) == (dotted / ".env").resolve()
    assert resolve_static(dotted, "/css/site.css") is not None  # others unchanged
