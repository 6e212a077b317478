"""What `serve` checks before it serves, and which edits `--reload` reacts to.

`load_checked` runs every `webpipe check` rule on the program, and prepares its SQL on the
database when that is reachable (webpipe.sqlcheck): errors are printed all at once and the
program is refused (at start the server does not start; on reload the last
good program keeps serving); warnings are printed. `SourceFilter` lets through only the
program's sources: the `.wp` files loaded and any `.wp` file that may become an import,
`.env`/`.env.local` beside the main file, the Lua scripts directory, and `migrations/*.sql`
(the SQL check prepares statements on the schema they make). The embedded database
(`.webpipe/`), `public/`, VCS and tool directories and editor swap files never cause a
reload (spec/server.md §4, §5).
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from watchfiles import Change

from webpipe.errors import CheckError, Diagnostic, WebpipeError
from webpipe.protocol import configure_connections
from webpipe.server import Served, build_served

# directories under the app whose files are never program sources
IGNORED_DIRS = frozenset({".webpipe", "public", ".git", ".hg", ".svn", "node_modules",
                          "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache",
                          ".ruff_cache", "migrations"})
ENV_FILES = frozenset({".env", ".env.local"})
MIGRATIONS = "migrations"  # its `*.sql` files reload: the SQL check runs on their schema
# editor droppings: vim swap/backup (`.x.swp`, `x~`, `4913`), emacs (`#x#`, `.#x`), others
_NOISE_SUFFIXES = (".swp", ".swo", ".swx", ".swn", "~", ".tmp", ".bak", ".orig", ".crswap")


def load_checked(path: Path) -> Served:
    """The program at `path` if every check passes (warnings printed), else `CheckError`
    carrying every error at once."""
    from webpipe.check import check_env, check_file
    from webpipe.check_calls import TEST_ONLY_CODES
    from webpipe.program import load_program

    try:
        env = load_program(path)
        served = build_served(env)
    except WebpipeError:
        raise _refused(check_file(path)) from None  # the checker's full list of errors
    # a test's own mistake (a call no route matches) does not stop the app it tests
    diagnostics = [replace(d, severity="warning") if d.code in TEST_ONLY_CODES else d
                   for d in check_env(env)]
    if not any(d.severity == "error" for d in diagnostics):
        from webpipe.sqlcheck.check import serve_diagnostics

        diagnostics += serve_diagnostics(env)  # spec/sqlcheck.md: SQL on the database
    if any(d.severity == "error" for d in diagnostics):
        raise _refused(diagnostics)
    for diagnostic in diagnostics:
        print(diagnostic.render(), file=sys.stderr)
    configure_connections(served.limits)
    return served


class ChecksFailed(CheckError):
    """The program fails `webpipe check`: the message is every rendered diagnostic."""

    def __str__(self) -> str:
        return self.message


def _refused(diagnostics: list[Diagnostic]) -> ChecksFailed:
    errors = [d for d in diagnostics if d.severity == "error"] or diagnostics
    text = "\n".join(d.render() for d in diagnostics)
    return ChecksFailed(f"{text}\n{len(errors)} error(s): `webpipe check` must pass to serve")


def ensure_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on before anything is printed or loaded
    (uvicorn would log its own error after our banner; spec/server.md §9)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else \
                f"cannot be bound: {exc.strerror or exc}"
            raise StartupError(f"{host}:{port} {reason}; choose another with --port "
                               "or stop the process using it") from None


class StartupError(WebpipeError):
    """`serve` cannot start (the port); printed as one line."""

    def __str__(self) -> str:
        return f"error: {self.message}"


def is_editor_noise(name: str) -> bool:
    return name.endswith(_NOISE_SUFFIXES) or name.startswith((".#", "#")) or name == "4913"


class SourceFilter:
    """A watchfiles filter: True for an edit of one of the program's sources."""

    def __init__(self, main: Path, modules: Callable[[], Iterable[Path]]) -> None:
        from webpipe.middleware.lua import scripts_dir  # `scripts/`: `lua` reads it at load

        self.root = main.resolve().parent
        self.modules = modules
        self.scripts: Path | None = scripts_dir().resolve()

    def __call__(self, change: Change, raw: str) -> bool:
        path = Path(raw)
        if is_editor_noise(path.name):
            return False
        resolved = path.resolve()
        if resolved in {m.resolve() for m in self.modules()}:
            return True
        if self.scripts is not None and resolved.parent == self.scripts:
            return path.suffix == ".lua"
        if not resolved.is_relative_to(self.root):
            return False
        inside = resolved.relative_to(self.root).parts
        if len(inside) == 2 and inside[0] == MIGRATIONS:  # the database check applies them
            return path.suffix == ".sql"
        if any(part in IGNORED_DIRS for part in inside[:-1]):
            return False
        return path.suffix == ".wp" or (len(inside) == 1 and path.name in ENV_FILES)

    def roots(self) -> list[str]:
        """The directories to watch (recursively)."""
        roots = {str(self.root)}
        if self.scripts is not None and self.scripts.is_dir() \
                and not self.scripts.is_relative_to(self.root):
            roots.add(str(self.scripts))
        roots |= {str(m.parent) for m in self.modules() if not m.is_relative_to(self.root)}
        return sorted(roots)
