"""Third-party middleware through the `webpipe.middleware` entry-point group, registry rules,
unsupported middleware, and a crashing middleware answering a generic 500."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from webpipe.check import check_env
from webpipe.errors import ConfigError
from webpipe.middleware import Registry
from webpipe.program import program_from_text
from webpipe.server import build_served, create_app

APP = '''
GET /echo
  |> jq: `{ word: "hi" }`
  |> echo: `say`
'''


@pytest.fixture
def plugin_dist(tmp_path: Path) -> Iterator[None]:
    """An installed distribution (a dist-info on sys.path) declaring the entry point."""
    info = tmp_path / "echo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[webpipe.middleware]\necho = tests.plugins.echo_middleware:EchoMiddleware\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))


async def test_entry_point_plugin_registers_and_runs(plugin_dist: None) -> None:
    env = program_from_text(APP)
    assert "echo" in env.registry
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(build_served(env))),
                               base_url="http://t")
    body = (await client.get("/echo")).json()
    assert (body["word"], body["echoed"]) == ("hi", "say:hi")


def test_without_the_plugin_the_name_is_a_load_diagnostic() -> None:
    env = program_from_text(APP)
    messages = [d.message for d in check_env(env)]
    assert "unknown middleware 'echo'" in messages


def test_shadowing_a_builtin_needs_opt_in() -> None:
    registry = Registry()
    with pytest.raises(ConfigError):
        registry.register("jq", "tests.plugins.echo_middleware:EchoMiddleware")
    registry.register("jq", "tests.plugins.echo_middleware:EchoMiddleware", replace=True)
    assert registry.table["jq"] == "tests.plugins.echo_middleware:EchoMiddleware"


@pytest.mark.parametrize("name", ["join", "pipeline"])
def test_language_steps_cannot_be_registered(name: str) -> None:
    registry = Registry()
    with pytest.raises(ConfigError, match="step of the language itself"):
        registry.register(name, "tests.plugins.echo_middleware:EchoMiddleware", replace=True)
    assert name not in registry


@pytest.mark.parametrize("name", ["gg", "algraf", "ag"])
def test_chart_grammars_are_reported_once_each_at_their_position(name: str) -> None:
    env = program_from_text(f"GET /x\n  |> {name}({{ size: $context.request.query.n }}): `x`\n"
                            f"\nGET /y\n  |> jq: `.`\n  |> {name}: `y`\n")
    found = [d for d in check_env(env) if d.severity == "error"]
    assert [(d.message, d.span.line, d.span.column) for d in found if d.span] == [
        (f"the `{name}` chart middleware is not supported by webpipe", 2, 3),
        (f"the `{name}` chart middleware is not supported by webpipe", 6, 3)]


async def test_crashing_middleware_is_a_generic_500(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry()
    registry.register("crash", "tests.plugins.echo_middleware:CrashingMiddleware")
    env = program_from_text("GET /c\n  |> crash: `x`\n", registry=registry)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(build_served(env))),
                               base_url="http://t")
    r = await client.get("/c")
    assert r.status_code == 500
    assert r.json() == {"error": "Pipeline execution failed",
                        "details": "At app.wp:2\ninternal error in middleware 'crash' "
                                   "(ZeroDivisionError)"}
    assert "oops" not in r.text
    assert "app.wp:2:3: middleware 'crash' crashed" in caplog.text
