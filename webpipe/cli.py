"""Command line: `webpipe serve|check|fmt|routes|run|test`, plus the reference's forms.

`webpipe app.wp` serves (or runs `pipeline main` as a script when the file has one);
`webpipe app.wp --test`, `--run`, `--serve`, `--port P`, `--address A` and `-- ARGS` work as
in the reference. Each command is a thin shell over a public function; this module only
parses arguments and chooses exit codes.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import importlib.util
import json
import sys
from pathlib import Path

import click

from webpipe import __version__
from webpipe.errors import WebpipeError, wants_color

# Commands defined in their own modules, imported only when used ("name": "module:attr").
LAZY_COMMANDS: dict[str, str] = {
    "migrate": "webpipe.migrate.cli:migrate",
    "init": "webpipe.scaffold:init_command",
    "lsp": "webpipe.lsp.server:lsp_command",
    "graphql": "webpipe.graphql.pull:graphql_command",
    "worker": "webpipe.jobs.cli:worker_command",
    "jobs": "webpipe.jobs.cli:jobs_group",
}

SUBCOMMANDS = {*LAZY_COMMANDS, "serve", "check", "fmt", "routes", "run", "test", "db",
               "--help", "-h", "--version"}


def _fail(exc: WebpipeError) -> None:
    click.echo(str(exc), err=True)
    sys.exit(1)


def _module_exists(target: str) -> bool:
    try:
        return importlib.util.find_spec(target.partition(":")[0]) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    """A click group whose LAZY_COMMANDS are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        present = {name for name, target in LAZY_COMMANDS.items() if _module_exists(target)}
        return sorted({*super().list_commands(ctx), *present})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module_name, _, attr = LAZY_COMMANDS[cmd_name].partition(":")
            try:
                command = getattr(importlib.import_module(module_name), attr)
            except ImportError as exc:
                raise click.ClickException(f"`webpipe {cmd_name}` is unavailable: {exc}"
                                           ) from None
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="webpipe")
def cli() -> None:
    """webpipe: HTTP routes as pipelines of steps."""


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default $PORT or 7770).")
@click.option("--address", default=None, help="HOST:PORT to bind.")
@click.option("--reload", is_flag=True, help="Reload when the program's files change.")
@click.option("--workers", type=int, default=1, help="Worker processes.")
@click.option("--metrics", is_flag=True, help="Serve Prometheus metrics at GET /metrics.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default=None, help="Log level (default $WEBPIPE_LOG or info).")
@click.option("--no-access-log", is_flag=True, help="No line per request.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              help="Log lines as text or as one JSON object each.")
@click.option("--production", is_flag=True,
              help="5xx bodies without internals (also WEBPIPE_ENV=production).")
@click.option("--no-jobs", is_flag=True, help="Run no durable-job consumer in this server.")
def serve(file: Path, host: str | None, port: int | None, address: str | None, reload: bool,
          workers: int, metrics: bool, log_level: str | None, no_access_log: bool,
          log_format: str, production: bool, no_jobs: bool) -> None:
    """Serve FILE over HTTP."""
    import os

    from webpipe.oplog import LogSettings
    from webpipe.serve import bind_address, run_server

    if reload and workers > 1:
        raise click.UsageError("--reload cannot be combined with --workers: a reload swaps "
                               "the program in one process; use one worker while editing")
    if no_jobs:  # read where the consumer starts, in this process and uvicorn's workers
        os.environ["WEBPIPE_NO_JOBS"] = "1"
    defaults = LogSettings.from_env()
    settings = LogSettings(log_level or defaults.level, not no_access_log, log_format,
                           production or defaults.production)
    bind_host, bind_port = bind_address(host, port, address)
    try:
        run_server(file, bind_host, bind_port, reload=reload, workers=workers, metrics=metrics,
                   logs=settings)
    except WebpipeError as exc:
        _fail(exc)


@cli.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print diagnostics as JSON.")
def check(files: tuple[Path, ...], as_json: bool) -> None:
    """Report every problem in FILES; exit 1 if there is an error."""
    from webpipe.check import check_file

    # one-shot: the cyclic collector would only walk the loaded program once before exit
    # (about a sixth of a large file's check); its garbage goes with the process
    gc.disable()
    diagnostics = [d for f in files for d in check_file(f)]
    if as_json:
        click.echo(json.dumps([d.to_json() for d in diagnostics], indent=2))
    else:
        color = wants_color(sys.stderr)
        for diagnostic in diagnostics:
            click.echo(diagnostic.render(color), err=True, color=color)
        errors = sum(d.severity == "error" for d in diagnostics)
        warnings = len(diagnostics) - errors
        click.echo(f"{len(files)} file(s) checked: {errors} error(s), {warnings} warning(s)",
                   err=True)
    sys.exit(1 if any(d.severity == "error" for d in diagnostics) else 0)


@cli.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--check", "check_only", is_flag=True, help="Exit 1 if a file would change.")
def fmt(files: tuple[Path, ...], check_only: bool) -> None:
    """Rewrite FILES in the canonical layout (comments kept)."""
    from webpipe.syntax.fmt import format_file

    changed = []
    for file in files:
        try:
            if format_file(file, write=not check_only):
                changed.append(file)
        except WebpipeError as exc:
            _fail(exc)
    for file in changed:
        click.echo(f"{'would reformat' if check_only else 'reformatted'} {file}", err=True)
    sys.exit(1 if check_only and changed else 0)


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def routes(file: Path) -> None:
    """List the routes FILE serves."""
    from webpipe.program import load_program

    try:
        env = load_program(file)
    except WebpipeError as exc:
        _fail(exc)
    for _module, route in env.index.routes():
        click.echo(f"{route.method:<7}{route.path}  ({route.span.label})")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(file: Path, args: tuple[str, ...]) -> None:
    """Run FILE's `pipeline main` as a script; ARGS become $context.args/options."""
    from webpipe.program import load_program
    from webpipe.script import run_script
    from webpipe.serve import load_dotenv_files

    load_dotenv_files(file.parent)
    try:
        env = load_program(file)
    except WebpipeError as exc:
        _fail(exc)
    sys.exit(asyncio.run(run_script(env, list(args))))


@cli.group()
def db() -> None:
    """The app's Postgres (the embedded one when nothing else is configured)."""


@db.command(name="url")
@click.argument("app", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def db_url(app: Path) -> None:
    """Print the connection URL the app uses (starting the embedded server if needed)."""
    from webpipe.db import connection_url
    from webpipe.serve import load_dotenv_files

    load_dotenv_files(app.parent)
    click.echo(connection_url(app))


@db.command(name="run")
@click.argument("app", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("sql_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def db_run(app: Path, sql_file: Path) -> None:
    """Run SQL_FILE against the app's database."""
    from webpipe.db import run_sql_file
    from webpipe.serve import load_dotenv_files

    load_dotenv_files(app.parent)
    try:
        click.echo(asyncio.run(run_sql_file(app, sql_file)))
    except WebpipeError as exc:
        _fail(exc)


@db.command(name="init-auth")
@click.argument("app", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def db_init_auth(app: Path) -> None:
    """Create the `auth` tables (users, sessions) in the app's database, if missing."""
    from webpipe.middleware.auth_schema import init_auth_schema
    from webpipe.serve import load_dotenv_files

    load_dotenv_files(app.parent)
    try:
        created = asyncio.run(init_auth_schema(app))
    except LookupError as exc:
        raise click.ClickException(f"no database configured: {exc}") from None
    click.echo(f"created: {', '.join(created)}" if created else "auth tables already exist")


@cli.command(name="test")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-k", "pattern", default=None, help="Only tests whose 'describe :: it' has this.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@click.option("--verbose", is_flag=True, help="Show expected and actual values on failure.")
@click.option("--golden", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Record each test's response in DIR and compare on later runs.")
@click.option("--update", is_flag=True, help="Rewrite the golden files from this run.")
@click.option("--keep-db", is_flag=True, help="Keep the database made for this run.")
def test_command(files: tuple[Path, ...], pattern: str | None, as_json: bool,
                 verbose: bool, golden: Path | None, update: bool, keep_db: bool) -> None:
    """Run the describe/it tests of FILES; exit 1 if any test failed."""
    from webpipe.testing.main import run_test_files

    if update and golden is None:
        raise click.UsageError("--update needs --golden DIR")
    sys.exit(run_test_files(list(files), pattern=pattern, as_json=as_json, verbose=verbose,
                            golden=golden, update=update, keep_db=keep_db))


def legacy(argv: list[str]) -> None:
    """The reference's `webpipe FILE [--serve|--run|--test|--port P|--address A] [-- ARGS]`."""
    script_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, script_args = argv[:cut], argv[cut + 1:]
    file, flags = argv[0], argv[1:]
    if "--test" in flags:
        rest = ["--verbose"] if "--verbose" in flags else []
        cli.main(["test", file, *rest], prog_name="webpipe")
        return
    serve_args = _serve_flags(flags)
    if "--run" in flags or (not serve_args and "--serve" not in flags and _has_main(file)):
        cli.main(["run", file, *script_args], prog_name="webpipe")
        return
    cli.main(["serve", file, *serve_args], prog_name="webpipe")


def _serve_flags(flags: list[str]) -> list[str]:
    out: list[str] = []
    for name in ("--port", "--address"):
        if name in flags and flags.index(name) + 1 < len(flags):
            out += [name, flags[flags.index(name) + 1]]
    return out


def _has_main(file: str) -> bool:
    from webpipe.loader import load_file

    try:
        index = load_file(file)
    except WebpipeError:
        return False
    return (id(index.main), "main") in index.pipelines


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] not in SUBCOMMANDS and not args[0].startswith("-"):
        legacy(args)
        return
    cli.main(args, prog_name="webpipe")
