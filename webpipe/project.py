"""Finding the project a bare `webpipe check|test|fmt|routes|serve` runs on, and the `.wp`
files under a folder.

As Ruff and pytest find their configuration, the search walks up from the current
directory: the first `webpipe.toml` (top-level keys) or `pyproject.toml` with a
`[tool.webpipe]` table is the project's configuration, and its folder is the project root.
`app = "app.wp"` there names the app file (relative to that folder); without `app`, or
with no configuration at all, the app is the single `*.wp` file at the top of the root.
None or several such files, an `app` that does not exist and an unknown key are errors
that name the candidates and say how to configure (spec/cli.md).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from webpipe.errors import WebpipeError

CONFIG_FILE = "webpipe.toml"
PYPROJECT = "pyproject.toml"
CONFIG_KEYS = ("app",)
# Never walked into by `check DIR`/`fmt DIR`, besides hidden folders (`.venv`, `.git`,
# `.webpipe` with the embedded database) and any virtualenv (a folder with `pyvenv.cfg`).
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__"})
HOW_TO_CONFIGURE = ('name it on the command line, or write `app = "app.wp"` in webpipe.toml '
                    "(or under [tool.webpipe] in pyproject.toml)")


class ProjectError(WebpipeError):
    """No app file can be chosen, or the project's configuration is unusable."""

    code = "project"


@dataclass(frozen=True, slots=True)
class Project:
    """A project: its root folder, its app file and the file that configured it (if any)."""

    root: Path
    app: Path
    config: Path | None


def find_project(start: Path | None = None) -> Project:
    """The project `start` (default: the current directory) is in; `ProjectError` when
    no app file can be chosen."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (project := _configured(folder)) is not None:
            return project
    return Project(here, _single_wp(here, None), None)


def find_app(start: Path | None = None) -> Path:
    """The project's app file, relative to the current directory when it is under it
    (so diagnostics read `app.wp:3:5`, as when the file is named)."""
    return shown(find_project(start).app)


def shown(path: Path) -> Path:
    """`path` relative to the current directory when it is below it, else as it is."""
    try:
        return path.relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _configured(folder: Path) -> Project | None:
    config = folder / CONFIG_FILE
    if config.is_file():
        return _project(folder, config, _read_toml(config), CONFIG_FILE)
    pyproject = folder / PYPROJECT
    if pyproject.is_file():
        tool = _read_toml(pyproject).get("tool")
        table = tool.get("webpipe") if isinstance(tool, dict) else None
        if table is not None:
            if not isinstance(table, dict):
                raise ProjectError(f"{pyproject}: [tool.webpipe] must be a table")
            return _project(folder, pyproject, table, f"[tool.webpipe] in {PYPROJECT}")
    return None


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProjectError(f"cannot read {path}: {exc}") from None


def _project(folder: Path, config: Path, table: dict[str, object], where: str) -> Project:
    if unknown := sorted(set(table) - set(CONFIG_KEYS)):
        raise ProjectError(f"{config}: unknown key {unknown[0]!r} in {where} "
                           f"(known: {', '.join(CONFIG_KEYS)})")
    app = table.get("app")
    if app is None:
        return Project(folder, _single_wp(folder, config), config)
    if not isinstance(app, str) or not app:
        raise ProjectError(f"{config}: `app` in {where} must be a path to a .wp file, "
                           f"relative to {folder}")
    path = folder / app
    if not path.is_file():
        raise ProjectError(f"{config}: the app file {app!r} named in {where} does not exist "
                           f"({path})")
    return Project(folder, path, config)


def _single_wp(folder: Path, config: Path | None) -> Path:
    candidates = sorted(p for p in folder.glob("*.wp") if p.is_file())
    if len(candidates) == 1:
        return candidates[0]
    configured = f" ({config} names no `app`)" if config else ""
    if not candidates:
        raise ProjectError(f"no app file: no *.wp file in {folder}{configured} and no "
                           f"{CONFIG_FILE} or [tool.webpipe] above it names one; "
                           + HOW_TO_CONFIGURE)
    names = ", ".join(p.name for p in candidates)
    raise ProjectError(f"which app? {len(candidates)} .wp files in {folder}{configured}: "
                       f"{names}; " + HOW_TO_CONFIGURE)


def wp_files(paths: Iterable[Path]) -> list[Path]:
    """`paths` with every folder replaced by the `.wp` files under it (sorted, skipping
    hidden folders, `node_modules`, `__pycache__` and virtualenvs); files kept as given."""
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(_walk(path)) if path.is_dir() else [path])
    return list(dict.fromkeys(out))


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        # pruning in place keeps os.walk out of node_modules and virtualenvs entirely
        dirs[:] = [d for d in dirs if not _skipped(Path(folder) / d)]
        yield from (Path(folder) / f for f in files if f.endswith(".wp"))


def _skipped(folder: Path) -> bool:
    return (folder.name.startswith(".") or folder.name in SKIPPED_DIRS
            or (folder / "pyvenv.cfg").exists())
