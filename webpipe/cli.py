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
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

import click

from webpipe import __version__
from webpipe.errors import Diagnostic, WebpipeError, wants_color

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
               "version", "completion", "--help", "-h", "--version"}
# A FILE argument left out means the project's app file (webpipe/project.py).
APP_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
FILES_OR_DIRS = click.Path(exists=True, path_type=Path)


def _fail(exc: WebpipeError) -> NoReturn:
    click.echo(str(exc), err=True)
    sys.exit(1)


def _app(file: Path | None) -> Path:
    """`file`, or when it was left out the app file of the project around the cwd."""
    from webpipe.project import find_app

    try:
        return file if file is not None else find_app()
    except WebpipeError as exc:
        _fail(exc)


def project_app(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path:
    """click callback of an APP argument that may be left out (the project's app)."""
    return _app(value)


# `@PROJECT_APP` for commands whose only positional argument is the app
PROJECT_APP = click.argument("app", required=False, type=APP_FILE, callback=project_app)


def _wp_files(paths: tuple[Path, ...]) -> list[Path]:
    """The `.wp` files named or under the folders named; an error when there are none."""
    from webpipe.project import wp_files

    found = wp_files(paths)
    if not found:
        _fail(WebpipeError(f"no .wp files under {', '.join(map(str, paths))}"))
    return found


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
@click.version_option(__version__, prog_name="webpipe", message="%(prog)s %(version)s")
def cli() -> None:
    """webpipe: HTTP routes as pipelines of steps.

    Inside a project (webpipe.toml, [tool.webpipe] in pyproject.toml, or one *.wp file in
    the current directory) the app file may be left out: serve, check, test, routes and
    the commands whose only argument is the app run on the project's app, and fmt on
    every *.wp file of the project.
    """


@cli.command()
def version() -> None:
    """Print webpipe's version."""
    click.echo(f"webpipe {__version__}")


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL, to save where the shell reads it."""
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    assert complete is not None  # the Choice admits only shells click supports
    click.echo(complete(cli, {}, "webpipe", "_WEBPIPE_COMPLETE").source(), nl=False)


@cli.command()
@click.argument("file", required=False, type=APP_FILE)
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
@click.option("--inspect", is_flag=True,
              help="Run the step debugger (a DAP server on 127.0.0.1:--inspect-port).")
@click.option("--inspect-port", type=int, default=5858, show_default=True,
              help="The debugger's port.")
@click.option("--trace", is_flag=True,
              help="Print each request's step timings as collapsed stacks (speedscope).")
@click.option("--no-db-check", is_flag=True,
              help="Do not prepare the SQL statements on the database at start.")
def serve(file: Path | None, host: str | None, port: int | None, address: str | None,
          reload: bool, workers: int, metrics: bool, log_level: str | None,
          no_access_log: bool, log_format: str, production: bool, no_jobs: bool,
          inspect: bool, inspect_port: int, trace: bool, no_db_check: bool) -> None:
    """Serve FILE (default: the project's app) over HTTP."""
    import os

    from webpipe.oplog import LogSettings
    from webpipe.serve import bind_address, run_server

    if reload and workers > 1:
        raise click.UsageError("--reload cannot be combined with --workers: a reload swaps "
                               "the program in one process; use one worker while editing")
    if inspect and workers > 1:
        raise click.UsageError("--inspect cannot be combined with --workers: the debugger "
                               "pauses requests of one process")
    if no_jobs:  # read where the consumer starts, in this process and uvicorn's workers
        os.environ["WEBPIPE_NO_JOBS"] = "1"
    if no_db_check:  # read by load_checked, at start and on each reload
        os.environ["WEBPIPE_DB_CHECK"] = "0"
    defaults = LogSettings.from_env()
    settings = LogSettings(log_level or defaults.level, not no_access_log, log_format,
                           production or defaults.production)
    bind_host, bind_port = bind_address(host, port, address)
    app = _app(file)
    try:
        run_server(app, bind_host, bind_port, reload=reload, workers=workers, metrics=metrics,
                   logs=settings, inspect_port=inspect_port if inspect else None,
                   trace=trace)
    except WebpipeError as exc:
        _fail(exc)


@cli.command()
@click.argument("paths", nargs=-1, type=FILES_OR_DIRS)
@click.option("--json", "as_json", is_flag=True, help="Print diagnostics as JSON.")
@click.option("--db", is_flag=True,
              help="Also prepare every SQL statement on the app's database (spec/sqlcheck.md).")
def check(paths: tuple[Path, ...], as_json: bool, db: bool) -> None:
    """Report every problem in PATHS (files, or folders walked for *.wp; default: the
    project's app); exit 1 if there is an error."""
    from webpipe.check import check_file
    from webpipe.serve import load_dotenv_files

    files = _wp_files(paths) if paths else [_app(None)]
    # one-shot: the cyclic collector would only walk the loaded program once before exit
    # (about a sixth of a large file's check); its garbage goes with the process
    gc.disable()
    diagnostics: list[Diagnostic] = []
    for f in files:
        if db:
            load_dotenv_files(f.parent)  # the database settings, as serve reads them
        diagnostics += check_file(f, db=db, announce=None if as_json else _to_stderr)
    # a module checked on its own and through an app that imports it reports once
    diagnostics = list(dict.fromkeys(diagnostics))
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


def _to_stderr(message: str) -> None:
    click.echo(message, err=True)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, allow_dash=True,
                                                  path_type=Path))
@click.option("--check", "check_only", is_flag=True,
              help="Write nothing; list the files that would change and exit 1 if any.")
@click.option("--diff", "show_diff", is_flag=True,
              help="Write nothing; print a unified diff and exit 1 if anything would change.")
@click.option("--stdin-filename", default="-", help="The name to report for `-` (stdin).")
def fmt(paths: tuple[Path, ...], check_only: bool, show_diff: bool,
        stdin_filename: str) -> None:
    """Rewrite PATHS in the canonical layout, comments kept. PATHS are files, folders
    (walked for *.wp) or `-` (stdin to stdout); default: every *.wp of the project.
    Exit 2 when a file cannot be formatted."""
    from webpipe.formatting import Mode, format_paths, format_stdin
    from webpipe.project import find_project, shown

    mode: Mode = "diff" if show_diff else "check" if check_only else "write"
    if Path("-") in paths:
        if len(paths) > 1:
            raise click.UsageError("`-` (stdin) cannot be combined with other paths")
        sys.exit(format_stdin(stdin_filename, mode))
    if not paths:
        try:
            paths = (shown(find_project().root),)
        except WebpipeError as exc:
            _fail(exc)
    sys.exit(format_paths(_wp_files(paths), mode))


@cli.command()
@click.argument("file", required=False, type=APP_FILE)
def routes(file: Path | None) -> None:
    """List the routes FILE (default: the project's app) serves."""
    from webpipe.program import load_program

    try:
        env = load_program(_app(file))
    except WebpipeError as exc:
        _fail(exc)
    for _module, route in env.index.routes():
        click.echo(f"{route.method:<7}{route.path}  ({route.span.label})")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--inspect", is_flag=True,
              help="Wait for a debugger (DAP on 127.0.0.1:--inspect-port), then run under it.")
@click.option("--inspect-port", type=int, default=5858, show_default=True,
              help="The debugger's port.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(file: Path, inspect: bool, inspect_port: int, args: tuple[str, ...]) -> None:
    """Run FILE's `pipeline main` as a script; ARGS become $context.args/options."""
    from webpipe.program import load_program
    from webpipe.script import run_script
    from webpipe.serve import load_dotenv_files

    load_dotenv_files(file.parent)
    try:
        env = load_program(file)
    except WebpipeError as exc:
        _fail(exc)
    if not inspect:
        sys.exit(asyncio.run(run_script(env, list(args))))
    from webpipe.debugger import Debugger, run_attached

    def debugged(debugger: Debugger) -> Coroutine[Any, Any, int]:
        debugger.attach(env)
        return run_script(env, list(args))

    sys.exit(asyncio.run(run_attached(inspect_port, [file], debugged)))


@cli.group()
def db() -> None:
    """The app's Postgres (the embedded one when nothing else is configured)."""


@db.command(name="url")
@PROJECT_APP
def db_url(app: Path) -> None:
    """Print the connection URL the app uses (starting the embedded server if needed)."""
    from webpipe.db import connection_url
    from webpipe.serve import load_dotenv_files

    load_dotenv_files(app.parent)
    try:
        click.echo(connection_url(app))
    except LookupError as exc:  # nothing configured and the embedded server turned off
        raise click.ClickException(str(exc)) from None


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
@PROJECT_APP
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
@click.argument("files", nargs=-1, type=APP_FILE)
@click.option("-k", "pattern", default=None,
              help="Only tests whose 'describe :: it' has this (exit 5 if none has).")
@click.option("-x", "--exitfirst", "fail_fast", is_flag=True,
              help="Stop at the first test that fails.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@click.option("--verbose", is_flag=True, help="Show expected and actual values on failure.")
@click.option("--golden", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Record each test's response in DIR and compare on later runs.")
@click.option("--update", is_flag=True,
              help="Rewrite the golden files from this run; delete those of removed tests.")
@click.option("--keep-db", is_flag=True, help="Keep the database made for this run.")
@click.option("--inspect", is_flag=True,
              help="Wait for a debugger (DAP on 127.0.0.1:--inspect-port), then run the tests "
                   "under it.")
@click.option("--inspect-port", type=int, default=5858, show_default=True,
              help="The debugger's port.")
def test_command(files: tuple[Path, ...], pattern: str | None, fail_fast: bool,
                 as_json: bool, verbose: bool, golden: Path | None, update: bool,
                 keep_db: bool, inspect: bool, inspect_port: int) -> None:
    """Run the describe/it tests of FILES (default: the project's app); exit 1 if any
    test failed."""
    from webpipe.testing.main import run_test_files

    if update and golden is None:
        raise click.UsageError("--update needs --golden DIR")
    targets = list(files) or [_app(None)]
    sys.exit(run_test_files(targets, pattern=pattern, as_json=as_json, verbose=verbose,
                            golden=golden, update=update, keep_db=keep_db,
                            fail_fast=fail_fast, inspect_port=inspect_port if inspect else None))


def legacy(argv: list[str]) -> None:
    """The reference's `webpipe FILE [--serve|--run|--test|--port P|--address A] [-- ARGS]`."""
    script_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, script_args = argv[:cut], argv[cut + 1:]
    file, flags = argv[0], argv[1:]
    inspect = _inspect_flags(flags)
    if "--test" in flags:
        rest = ["--verbose"] if "--verbose" in flags else []
        cli.main(["test", file, *rest, *inspect], prog_name="webpipe")
        return
    serve_args = _serve_flags(flags)
    # a file with `pipeline main` runs it unless --serve (or --port/--address, except with
    # --inspect: the reference debugs the script then) asks for the server
    if "--run" in flags or ((inspect or not serve_args) and "--serve" not in flags
                            and _has_main(file)):
        cli.main(["run", file, *inspect, "--", *script_args], prog_name="webpipe")
        return
    cli.main(["serve", file, *serve_args, *inspect], prog_name="webpipe")


def _serve_flags(flags: list[str]) -> list[str]:
    out: list[str] = ["--trace"] if "--trace" in flags else []
    for name in ("--port", "--address"):
        if name in flags and flags.index(name) + 1 < len(flags):
            out += [name, flags[flags.index(name) + 1]]
    return out


def _inspect_flags(flags: list[str]) -> list[str]:
    """`--inspect [--inspect-port P]` as the reference spells them (also `--inspect-port=P`)."""
    if "--inspect" not in flags:
        return []
    out = ["--inspect"]
    for index, flag in enumerate(flags):
        if flag == "--inspect-port" and index + 1 < len(flags):
            out += ["--inspect-port", flags[index + 1]]
        elif flag.startswith("--inspect-port="):
            out += ["--inspect-port", flag.partition("=")[2]]
    return out


def _no_such_command(word: str) -> None:
    """`webpipe chek` is a mistyped command, not a file to serve: say so (exit 2, as click
    does for a bad command) when `word` is neither a file nor a `.wp` name."""
    import difflib

    if Path(word).exists() or word.endswith(".wp"):
        return
    close = difflib.get_close_matches(word, sorted(SUBCOMMANDS - {"--help", "-h", "--version"}))
    hint = f" Did you mean {close[0]!r}?" if close else ""
    click.echo(f"Error: no such command or file {word!r}.{hint} (webpipe --help lists the "
               "commands)", err=True)
    sys.exit(2)


def _has_main(file: str) -> bool:
    from webpipe.loader import load_file

    try:
        index = load_file(file)
    except WebpipeError:
        return False
    return (index.main, "main") in index.pipelines


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] not in SUBCOMMANDS and not args[0].startswith("-"):
        _no_such_command(args[0])
        legacy(args)
        return
    cli.main(args, prog_name="webpipe")
