"""pytest plugin (entry point `pytest11`): `.wp` test blocks as pytest items.

Opt-in: list glob patterns (relative to the rootdir) in the `webpipe_files` ini option,
e.g. in pyproject.toml:

    [tool.pytest.ini_options]
    webpipe_files = ["tests/wp/*.wp", "examples/*/app.wp"]

Each matching file becomes one collector and each `it` one item named
`describe :: it`; failures show the `.wp` file and line of the `it`. A file's tests share
one event loop (its pools and sessions live on it), closed after the file's last test.
"""

from __future__ import annotations

import asyncio
import fnmatch
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
    patterns: list[str] = parent.config.getini("webpipe_files")
    relative = str(file_path.relative_to(parent.config.rootpath)) \
        if file_path.is_relative_to(parent.config.rootpath) else str(file_path)
    if any(fnmatch.fnmatch(relative, p) for p in patterns):
        return WpFile.from_parent(parent, path=file_path)
    return None


class WpTestFailure(Exception):
    """An `it` failed or errored; the message is the runner's."""


class WpFile(pytest.File):
    env: Env | None = None
    router: Any = None
    loop: asyncio.AbstractEventLoop | None = None

    def collect(self) -> Iterator[pytest.Item]:
        from webpipe.serve import load_dotenv_files

        load_dotenv_files(self.path.parent)
        try:
            self.env = load_program(self.path)
        except WebpipeError as exc:
            raise self.CollectError(str(exc)) from None
        from webpipe.server import build_served

        self.router = build_served(self.env).router
        for _module, item in self.env.index.all_items(n.Describe):
            assert isinstance(item, n.Describe)
            for test in item.tests:
                yield WpItem.from_parent(self, name=f"{item.name} :: {test.name}",
                                         describe=item, test=test)

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


class WpItem(pytest.Item):
    def __init__(self, *, describe: n.Describe, test: n.It, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.describe, self.test = describe, test

    def runtest(self) -> None:
        from webpipe.testing.runner import run_case

        parent = self.parent
        assert isinstance(parent, WpFile) and parent.env is not None
        router = parent.router
        verbose = self.config.getoption("verbose") > 0
        result = parent.run(run_case(parent.env, router, self.describe, self.test, verbose))
        if not result.passed:
            raise WpTestFailure(result.message or "failed")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, WpTestFailure):
            span = self.test.span
            return f"{span.source.name}:{span.line}: [FAIL] {self.name} -> {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.test.span.line - 1, self.name
