"""Writing a starter project from the templates shipped in `webpipe/scaffold/templates/`.

Templates are package data read with `importlib.resources`, so an installed wheel finds
them. The only substitution is `__PROJECT_NAME__` (a plain marker, because `{{…}}` and `$`
mean something in `.wp` files and SQL). Nothing is ever overwritten: when any file the
project needs already exists, nothing is written and the error names every such file.
"""

from __future__ import annotations

import re
from datetime import datetime
from importlib.resources import files
from pathlib import Path

from webpipe.errors import WebpipeError
from webpipe.migrate.files import MIGRATIONS_DIR, next_version

# output path (relative to the project) -> template file
TEMPLATES: dict[str, str] = {
    "app.wp": "app.wp.tmpl",
    "README.md": "README.md.tmpl",
    ".env.example": "env.example.tmpl",
    ".gitignore": "gitignore.tmpl",
    "public/style.css": "style.css.tmpl",
    "webpipe.toml": "webpipe.toml.tmpl",  # names the app, for the bare commands
}
FIRST_MIGRATION = "create_notes"
MIGRATION_TEMPLATE = "create_notes.sql.tmpl"
NAME_MARKER = "__PROJECT_NAME__"
DEFAULT_NAME = "webpipe-app"


class ScaffoldError(WebpipeError):
    """The project cannot be written (files in the way, or a bad directory)."""

    code = "scaffold"


def template_text(template: str) -> str:
    """A template's text from the installed package."""
    return files("webpipe.scaffold").joinpath("templates", template).read_text(encoding="utf-8")


def project_name(directory: Path, name: str | None = None) -> str:
    """A name safe inside `.wp` strings, HTML and Markdown (default: the directory's)."""
    raw = name if name is not None else directory.resolve().name
    return re.sub(r"[^A-Za-z0-9 _.-]+", "-", raw).strip("-. ") or DEFAULT_NAME


def plan_project(directory: Path, name: str | None = None,
                 now: datetime | None = None, assistants: tuple[str, ...] = ()
                 ) -> dict[Path, str]:
    """Every file of the project (absolute path -> text), without writing anything;
    `assistants` names files from `agents.ASSISTANT_FILES` to add the reference as."""
    title = project_name(directory, name)
    out = {directory / rel: template_text(tpl).replace(NAME_MARKER, title)
           for rel, tpl in TEMPLATES.items()}
    if assistants:
        from webpipe.scaffold.agents import agents_reference

        reference = agents_reference(out[directory / "app.wp"])
        out.update({directory / file: reference for file in assistants})
    migrations = directory / MIGRATIONS_DIR
    first = migrations / f"{next_version(migrations, now)}_{FIRST_MIGRATION}.sql"
    out[first] = template_text(MIGRATION_TEMPLATE).replace(NAME_MARKER, title)
    return out


def conflicts(directory: Path, planned: dict[Path, str]) -> list[Path]:
    """Planned files that exist, plus an existing first migration under another version."""
    found = [path for path in planned if path.exists() or path.is_symlink()]
    migrations = directory / MIGRATIONS_DIR
    if migrations.is_dir():
        found += sorted(migrations.glob(f"*_{FIRST_MIGRATION}.sql"))
    return found


def init_project(directory: Path, *, name: str | None = None,
                 now: datetime | None = None, assistants: tuple[str, ...] = ()) -> list[Path]:
    """Write the starter project into `directory` (created if missing); return the files.

    Raises ScaffoldError, writing nothing, when any of the files already exists.
    """
    if directory.exists() and not directory.is_dir():
        raise ScaffoldError(f"{directory} exists and is not a directory")
    planned = plan_project(directory, name, now, assistants)
    if existing := conflicts(directory, planned):
        listed = ", ".join(str(p.relative_to(directory)) for p in existing)
        raise ScaffoldError(f"refusing to overwrite existing files in {directory}: {listed} "
                            "(nothing was written)")
    for path, text in planned.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as out:  # "x": fail rather than replace
            out.write(text)
    return list(planned)
