"""`webpipe init [DIR]`: a runnable starter project (spec/migrate.md "webpipe init").

The project is an app with a handlebars page and a pg-backed JSON resource, its first
migration, tests in the `.wp` test language that mock every query, `.env.example`,
`.gitignore`, a stylesheet in `public/` and a README. It passes `webpipe check` and
`webpipe test` as generated. The logic is `project.init_project`; this module is the command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from webpipe.scaffold.project import ScaffoldError, init_project

__all__ = ["ScaffoldError", "init_command", "init_project"]


@click.command(name="init")
@click.argument("directory", required=False, default=".",
                type=click.Path(path_type=Path))
@click.option("--name", default=None, help="Project name (default: the directory's name).")
@click.option("--agents", is_flag=True,
              help="Also write AGENTS.md, a language reference for coding assistants.")
@click.option("--codex", is_flag=True, help="Same as --agents (the reference's spelling).")
@click.option("--claude", is_flag=True, help="Write the reference as CLAUDE.md.")
@click.option("--gemini", is_flag=True, help="Write the reference as GEMINI.md.")
def init_command(directory: Path, name: str | None, **assistants: bool) -> None:
    """Create a starter project in DIRECTORY (default: the current one).

    Refuses, writing nothing, if any of its files already exists.
    """
    from webpipe.scaffold.agents import ASSISTANT_FILES

    files = tuple(dict.fromkeys(ASSISTANT_FILES[flag] for flag, on in assistants.items() if on))
    try:
        written = init_project(directory, name=name, assistants=files)
    except ScaffoldError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    for path in written:
        click.echo(f"created {path}")
    enter = "" if directory.resolve() == Path.cwd().resolve() else f"  cd {directory}\n"
    click.echo("\nnext:\n" + enter +
               "  webpipe test                # the tests mock every query\n"
               "  webpipe migrate up          # create the tables\n"
               "  webpipe serve               # http://127.0.0.1:7770/")
