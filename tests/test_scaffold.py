"""`webpipe init [DIR]`: the starter project passes its own checks and tests as generated,
never overwrites a file, and its templates ship in the wheel (spec/migrate.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from webpipe.cli import cli
from webpipe.migrate.files import load_migrations
from webpipe.scaffold import ScaffoldError, init_project
from webpipe.scaffold.project import MIGRATION_TEMPLATE, TEMPLATES, project_name

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = ROOT / "webpipe" / "scaffold" / "templates"
EXPECTED = [".env.example", ".gitignore", "README.md", "app.wp", "migrations", "public",
            "webpipe.toml"]


def webpipe(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m webpipe ARGS` with no database settings and the embedded server off, so
    a query the tests forgot to mock fails instead of starting a server."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WP_PG_") and k != "DATABASE_URL"}
    env["WP_PG_EMBEDDED"] = "0"
    return subprocess.run([sys.executable, "-m", "webpipe", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def test_init_makes_a_project_that_checks_and_tests_clean(tmp_path: Path) -> None:
    project = tmp_path / "notes-app"
    made = webpipe("init", project)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in project.iterdir()) == EXPECTED
    assert "webpipe migrate up" in made.stdout

    checked = webpipe("check", project / "app.wp")
    assert checked.returncode == 0, checked.stderr
    assert "0 error(s), 0 warning(s)" in checked.stderr
    tested = webpipe("test", project / "app.wp")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.startswith("Test Results: 7/7 passed (0 failed)")
    formatted = webpipe("fmt", "--check", project / "app.wp")
    assert formatted.returncode == 0, formatted.stderr
    assert not (project / ".webpipe").exists()  # no database was needed


def test_init_defaults_to_the_current_directory(tmp_path: Path) -> None:
    made = webpipe("init", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "app.wp").is_file()
    assert "<title>{{title}}</title>" in (tmp_path / "app.wp").read_text()
    assert f'"{tmp_path.name}"' in (tmp_path / "app.wp").read_text()


def test_the_first_migration_is_a_valid_migration(tmp_path: Path) -> None:
    moment = datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
    written = init_project(tmp_path, name="demo", now=moment)
    assert tmp_path / "migrations" / "20240304050607_create_notes.sql" in written
    [migration] = load_migrations(tmp_path / "migrations")
    assert "CREATE TABLE notes" in migration.up.sql
    assert migration.down.sql.strip() == "DROP TABLE notes;"
    assert "# demo: a webpipe app." in (tmp_path / "app.wp").read_text()
    assert (tmp_path / "README.md").read_text().startswith("# demo\n")


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "app.wp").write_text("# mine\n")
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "style.css").write_text("/* mine */\n")
    refused = webpipe("init", tmp_path)
    assert refused.returncode == 1
    assert f"refusing to overwrite existing files in {tmp_path}: app.wp, public/style.css" \
        in refused.stderr
    assert "nothing was written" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.wp", "public"]
    assert (tmp_path / "app.wp").read_text() == "# mine\n"


def test_init_refuses_a_second_first_migration(tmp_path: Path) -> None:
    init_project(tmp_path, now=datetime(2024, 1, 1, tzinfo=UTC))
    for name in ("app.wp", "README.md", ".env.example", ".gitignore"):
        (tmp_path / name).unlink()
    (tmp_path / "public" / "style.css").unlink()
    with pytest.raises(ScaffoldError, match=r"migrations/20240101000000_create_notes\.sql"):
        init_project(tmp_path)
    assert not (tmp_path / "app.wp").exists()


def test_init_through_the_cli_group(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "x"), "--name", "My <App>"])
    assert result.exit_code == 0, result.output
    assert "# My -App: a webpipe app." in (tmp_path / "x" / "app.wp").read_text()
    again = CliRunner().invoke(cli, ["init", str(tmp_path / "x")])
    assert again.exit_code == 1 and "refusing to overwrite" in again.stderr
    afile = tmp_path / "afile"
    afile.write_text("")
    assert CliRunner().invoke(cli, ["init", str(afile)]).exit_code == 1


@pytest.mark.parametrize(("raw", "name"), [
    ("notes", "notes"), ("My App", "My App"), ("a`b\"c", "a-b-c"), ("---", "webpipe-app"),
])
def test_project_names_are_safe_in_every_template(raw: str, name: str) -> None:
    assert project_name(Path("."), raw) == name


def test_the_templates_ship_in_the_wheel() -> None:
    from hatchling.builders.wheel import WheelBuilder

    shipped = {f.distribution_path for f in WheelBuilder(str(ROOT)).recurse_included_files()}
    templates = {p.name for p in TEMPLATE_DIR.iterdir()}
    assert templates == {*TEMPLATES.values(), MIGRATION_TEMPLATE}
    assert {f"webpipe/scaffold/templates/{name}" for name in templates} <= shipped


@pytest.mark.parametrize(("flags", "files"), [
    (["--agents"], ["AGENTS.md"]),
    (["--codex"], ["AGENTS.md"]),
    (["--claude"], ["CLAUDE.md"]),
    (["--gemini", "--agents", "--codex"], ["AGENTS.md", "GEMINI.md"]),
])
def test_init_writes_the_assistant_reference(tmp_path: Path, flags: list[str],
                                             files: list[str]) -> None:
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "p"), *flags])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "p").glob("*.md") if p.name != "README.md")
    assert written == files


def test_assistant_reference_is_generated_from_what_webpipe_runs(tmp_path: Path) -> None:
    from webpipe.limits import KEYS
    from webpipe.middleware import BUILTIN_MIDDLEWARE
    from webpipe.syntax.parser import grammar_path

    init_project(tmp_path, assistants=("AGENTS.md",))
    text = (tmp_path / "AGENTS.md").read_text()
    assert (tmp_path / "app.wp").read_text().strip() in text  # the tested starter app
    assert grammar_path().read_text().strip() in text
    assert all(f"- `{name}`: " in text for name in BUILTIN_MIDDLEWARE)
    assert all(f"| `{key}` |" in text for key in KEYS)
    assert "- `webpipe init`: " in text and "- `webpipe test`: " in text
    # every step line has a summary (a module whose docstring went missing would show)
    steps = text.split("## Steps")[1].split("## ")[0]
    assert all(len(line.split(": ", 1)[1]) > 10 for line in steps.splitlines()
               if line.startswith("- "))


def test_init_refuses_an_existing_assistant_file(tmp_path: Path) -> None:
    (tmp_path / "CLAUDE.md").write_text("mine")
    with pytest.raises(ScaffoldError, match=r"CLAUDE\.md"):
        init_project(tmp_path, assistants=("CLAUDE.md",))
    assert (tmp_path / "CLAUDE.md").read_text() == "mine"
    assert not (tmp_path / "app.wp").exists()
