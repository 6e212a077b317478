"""Entry point of `webpipe test`: load each file, run its tests, print, choose the exit code.

Exit status: 0 when every selected test passed; 1 when one failed or errored, the runner
itself failed, or a golden folder holds files of tests that no longer exist; 5 (pytest's
"no tests collected") when `-k` selected none of the files' tests. The report goes to
stdout in the reference's format; what happened besides the tests (nothing selected, a stop
after `-x`, golden files written or orphaned) goes to stderr.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from webpipe.errors import WebpipeError
from webpipe.executor.env import Env
from webpipe.executor.process_tasks import PROCESS_TASKS
from webpipe.program import load_program
from webpipe.serve import load_dotenv_files
from webpipe.testing import golden as goldens
from webpipe.testing.report import json_report, text_report
from webpipe.testing.runner import CaseResult, run_tests, selected_tests
from webpipe.testing.testdb import test_databases

if TYPE_CHECKING:
    from webpipe.debugger import Debugger

NOTHING_SELECTED = 5


@dataclass
class TestRun:
    """The options of one `webpipe test` and what the run found besides its results."""

    __test__ = False  # not a pytest test class

    pattern: str | None = None
    verbose: bool = False
    golden: Path | None = None
    update: bool = False
    fail_fast: bool = False
    results: list[CaseResult] = field(default_factory=list)
    selected: int = 0  # tests the pattern selects in all files (some may not run after -x)
    orphans: list[Path] = field(default_factory=list)
    stopped: bool = False


async def _run(files: list[Path], run: TestRun, inspect_port: int | None = None) -> None:
    if inspect_port is None:
        return await _run_files(files, run, None)
    from webpipe.debugger import run_attached

    await run_attached(inspect_port, files, lambda debugger: _run_files(files, run, debugger),
                       tests=True)


async def _run_files(files: list[Path], run: TestRun, debugger: Debugger | None) -> None:
    for file in files:
        load_dotenv_files(file.parent)
        env = load_program(file)
        if debugger is not None:
            debugger.attach(env)
        try:
            run.selected += sum(1 for _ in selected_tests(env, run.pattern))
            if not run.stopped:
                await _run_file(env, file, len(files), run)
        finally:
            await PROCESS_TASKS.drain(5.0)
            await env.aclose()


async def _run_file(env: Env, file: Path, count: int, run: TestRun) -> None:
    directory = _golden_dir(run.golden, file, count)
    results = await run_tests(env, pattern=run.pattern, verbose=run.verbose,
                              golden=directory, update=run.update, fail_fast=run.fail_fast)
    run.results += results
    run.stopped = run.fail_fast and not all(r.passed for r in results)
    if directory is not None:
        names = [(d.name, t.name) for d, t in selected_tests(env)]
        run.orphans += goldens.orphans(directory, names)


def _golden_dir(golden: Path | None, file: Path, count: int) -> Path | None:
    """One directory per file when several files share a --golden DIR."""
    if golden is None:
        return None
    return golden / file.stem if count > 1 else golden


def run_test_files(files: list[Path], *, pattern: str | None = None, as_json: bool = False,
                   verbose: bool = False, golden: Path | None = None,
                   update: bool = False, keep_db: bool = False,
                   fail_fast: bool = False, inspect_port: int | None = None) -> int:
    run = TestRun(pattern, verbose, golden, update, fail_fast)
    try:
        with test_databases(keep_db):  # never the app's own database (spec/server.md §7)
            asyncio.run(_run(files, run, inspect_port))
    except WebpipeError as exc:
        print(f"Test runner error: {exc}", file=sys.stderr)
        return 1
    results = run.results
    if as_json:
        sys.stdout.write(json_report(results))
    else:
        sys.stdout.write(text_report(results, colour=sys.stdout.isatty()))
    return _epilogue(run)


def _epilogue(run: TestRun) -> int:
    """Say on stderr what happened besides the tests; the exit status."""
    def say(text: str) -> None:
        print(text, file=sys.stderr)

    recorded = sum(r.recorded for r in run.results)
    if recorded:
        say(f"{recorded} golden file(s) written under {run.golden}")
    if run.stopped:
        say(f"stopped at the first failure (-x): {run.selected - len(run.results)} "
            f"of {run.selected} selected test(s) not run")
    if run.orphans and run.update:
        goldens.remove(run.orphans)
        say(f"removed {len(run.orphans)} golden file(s) of tests that no longer exist")
    elif run.orphans:
        say(f"{len(run.orphans)} golden file(s) belong to no test (renamed or removed? "
            "--update deletes them):")
        for path in run.orphans:
            say(f"  {path}")
    if run.pattern and not run.selected:
        say(f"no test matches -k {run.pattern!r}")
        return NOTHING_SELECTED
    failed = not all(r.passed for r in run.results)
    return 1 if failed or (run.orphans and not run.update) else 0
