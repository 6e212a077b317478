"""pytest plugin (entry point `pytest11`): `.wp` test blocks as pytest items.

A `.wp` file named on the command line (`pytest app.wp`) is collected as it is; files
found while pytest walks folders are collected when they match a glob pattern (relative
to the rootdir) of the `webpipe_files` ini option, e.g. in pyproject.toml:

    [tool.pytest.ini_options]
    webpipe_files = ["tests/wp/*.wp", "examples/*/app.wp"]

Each file is a collector, each `describe` a collector in it and each `it` an item. Their
names are the `.wp` names made shell-safe (`says hi` -> `says_hi`), so a node id pytest
prints (`app.wp::greeting::says_hi`) pastes back onto a command line and reruns that test.
A failure shows, for each failed assertion, its `file:line`, the line as written and the
expected and actual values. A file's tests share one event loop (its pools and sessions
live on it), closed after the file's last test.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from webpipe import db
from webpipe.errors import WebpipeError
from webpipe.executor.env import Env
from webpipe.executor.process_tasks import PROCESS_TASKS
from webpipe.program import load_program
from webpipe.syntax import nodes as n
from webpipe.testing.testdb import TestDatabases


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("webpipe_files", "glob patterns of .wp files whose tests pytest runs",
                  type="linelist", default=[])
    parser.addoption("--webpipe-keep-db", action="store_true",
                     help="keep the database made for the .wp tests (spec/server.md §7)")


_RUN: list[TestDatabases] = []  # the session's test databases, made on first use


def _use_test_databases(config: pytest.Config) -> None:
    """While a `.wp` file's tests run, `pg` uses the databases made for the session (only
    then: other tests of the session keep their own database)."""
    if not _RUN:
        _RUN.append(TestDatabases(bool(config.getoption("webpipe_keep_db", False))))
    db.TEST_DATABASES = _RUN[0].url_for


def pytest_unconfigure(config: pytest.Config) -> None:
    if _RUN:
        db.TEST_DATABASES = None
        _RUN.pop().close()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".wp":
        return None
    if parent.session.isinitpath(file_path):  # named on the command line: no config needed
        return WpFile.from_parent(parent, path=file_path)
    patterns: list[str] = parent.config.getini("webpipe_files")
    relative = str(file_path.relative_to(parent.config.rootpath)) \
        if file_path.is_relative_to(parent.config.rootpath) else str(file_path)
    if any(fnmatch.fnmatch(relative, p) for p in patterns):
        return WpFile.from_parent(parent, path=file_path)
    return None


class WpTestFailure(Exception):
    """An `it` failed or errored; carries the runner's result."""


def node_name(text: str) -> str:
    """A `.wp` name as a node name a shell passes through unquoted and pytest does not
    split (`GET /users :: ok` -> `GET_users_ok`)."""
    return re.sub(r"[^\w.-]+", "_", text).strip("_") or "unnamed"


def _unique(name: str, taken: set[str]) -> str:
    """Two describes (or two `it`s) with one name still get two node ids."""
    candidate, count = name, 1
    while candidate in taken:
        count += 1
        candidate = f"{name}_{count}"
    taken.add(candidate)
    return candidate


class WpFile(pytest.File):
    env: Env | None = None
    router: Any = None
    loop: asyncio.AbstractEventLoop | None = None

    def collect(self) -> Iterator[pytest.Collector]:
        from webpipe.serve import load_dotenv_files

        load_dotenv_files(self.path.parent)
        try:
            self.env = load_program(self.path)
        except WebpipeError as exc:
            raise self.CollectError(str(exc)) from None
        from webpipe.server import build_served

        self.router = build_served(self.env).router
        taken: set[str] = set()
        for _module, item in self.env.index.all_items(n.Describe):
            assert isinstance(item, n.Describe)
            yield WpDescribe.from_parent(self, name=_unique(node_name(item.name), taken),
                                         describe=item)

    def run(self, coro: Any) -> Any:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(coro)

    def setup(self) -> None:
        _use_test_databases(self.config)

    def teardown(self) -> None:
        db.TEST_DATABASES = None
        if self.loop is not None:
            if self.env is not None:
                self.run(self.env.aclose())
            self.run(PROCESS_TASKS.drain(5.0))
            self.loop.close()
            self.loop = None


class WpDescribe(pytest.Collector):
    def __init__(self, *, describe: n.Describe, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.describe = describe

    def collect(self) -> Iterator[pytest.Item]:
        taken: set[str] = set()
        for test in self.describe.tests:
            yield WpItem.from_parent(self, name=_unique(node_name(test.name), taken),
                                     describe=self.describe, test=test)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.describe.span.line - 1, self.describe.name


class WpItem(pytest.Item):
    def __init__(self, *, describe: n.Describe, test: n.It, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.describe, self.test = describe, test

    def runtest(self) -> None:
        from webpipe.testing.runner import run_case

        file = self.parent.parent if self.parent is not None else None
        assert isinstance(file, WpFile) and file.env is not None
        # Not verbose: the values go on lines of their own (repr_failure), at any -v.
        result = file.run(run_case(file.env, file.router, self.describe, self.test, False))
        if not result.passed:
            raise WpTestFailure(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, WpTestFailure):
            return failure_text(excinfo.value.args[0], self.config.get_verbosity())
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.test.span.line - 1, f"{self.describe.name} :: {self.test.name}"


def failure_text(result: Any, verbosity: int) -> str:
    """`app.wp:8: output mismatch`, then the assertion as written and the values, for each
    failed assertion (the first line is what pytest's short summary shows)."""
    from webpipe.testing.report import VALUE_LINES, location, values, written

    if not result.failures:  # errored: the message says where
        return str(result.message or "failed")
    lines: list[str] = []
    for failure in result.failures:
        place = location(failure)
        lines.append(f"{place}: {failure.message}" if place else failure.message)
        text = written(failure)
        lines += [f"    {text}"] if text else []
        lines += ["    " + line for line in values(failure, None if verbosity else VALUE_LINES)]
    return "\n".join(lines)
