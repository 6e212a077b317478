"""`webpipe.project`: which configuration names the app (nearest folder first, webpipe.toml
before pyproject.toml, a pyproject.toml without [tool.webpipe] passed over) and which files
a folder walk yields (spec/cli.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from webpipe.project import ProjectError, find_project, wp_files


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_webpipe_toml_wins_over_pyproject_in_the_same_folder(tmp_path: Path) -> None:
    touch(tmp_path / "webpipe.toml", 'app = "a.wp"\n')
    touch(tmp_path / "pyproject.toml", '[tool.webpipe]\napp = "b.wp"\n')
    touch(tmp_path / "a.wp")
    touch(tmp_path / "b.wp")
    project = find_project(tmp_path)
    assert (project.root, project.app, project.config) == \
        (tmp_path, tmp_path / "a.wp", tmp_path / "webpipe.toml")


def test_the_nearest_configuration_wins_and_plain_pyprojects_are_passed_over(
        tmp_path: Path) -> None:
    touch(tmp_path / "webpipe.toml", 'app = "outer.wp"\n')
    touch(tmp_path / "outer.wp")
    inner = tmp_path / "svc"
    touch(inner / "pyproject.toml", '[tool.webpipe]\napp = "api/main.wp"\n')
    touch(inner / "api" / "main.wp")
    touch(inner / "api" / "deep" / "pyproject.toml", '[project]\nname = "not-webpipe"\n')
    assert find_project(inner / "api" / "deep").app == inner / "api" / "main.wp"
    assert find_project(tmp_path).app == tmp_path / "outer.wp"


def test_an_empty_tool_webpipe_marks_the_root_of_a_single_wp_project(tmp_path: Path) -> None:
    touch(tmp_path / "pyproject.toml", "[tool.webpipe]\n")
    touch(tmp_path / "only.wp")
    below = tmp_path / "docs"
    below.mkdir()
    assert find_project(below) == find_project(tmp_path)
    assert find_project(below).app == tmp_path / "only.wp"


def test_configuration_errors_name_the_file(tmp_path: Path) -> None:
    config = touch(tmp_path / "webpipe.toml", "app = 3\n")
    with pytest.raises(ProjectError, match=r"`app` in webpipe.toml must be a path"):
        find_project(tmp_path)
    config.write_text("app = [\n")
    with pytest.raises(ProjectError, match=f"cannot read {re.escape(str(config))}: "):
        find_project(tmp_path)
    config.write_text("[tool.webpipe]\n")
    touch(tmp_path / "pyproject.toml", "[tool]\nwebpipe = 1\n")
    with pytest.raises(ProjectError, match=r"unknown key 'tool' in webpipe\.toml"):
        find_project(tmp_path)
    config.unlink()
    with pytest.raises(ProjectError, match=r"\[tool.webpipe\] must be a table"):
        find_project(tmp_path)


def test_a_folder_walk_is_sorted_and_skips_what_is_not_the_project(tmp_path: Path) -> None:
    for rel in ("b.wp", "a/z.wp", "a/notes.txt", ".hidden/x.wp", "node_modules/m/x.wp",
                "__pycache__/x.wp", "venv2/lib/x.wp"):
        touch(tmp_path / rel)
    touch(tmp_path / "venv2" / "pyvenv.cfg")
    named = touch(tmp_path / "other.txt")
    assert wp_files([tmp_path, named, tmp_path / "b.wp"]) == \
        [tmp_path / "a" / "z.wp", tmp_path / "b.wp", named]
