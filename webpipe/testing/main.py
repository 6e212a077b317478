"""Entry point of `webpipe test`: load each file, run its tests, print, choose the exit code."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from webpipe.errors import WebpipeError
from webpipe.executor.process_tasks import PROCESS_TASKS
from webpipe.program import load_program
from webpipe.serve import load_dotenv_files
from webpipe.testing.report import json_report, text_report
from webpipe.testing.runner import CaseResult, run_tests
from webpipe.testing.testdb import test_databases

if TYPE_CHECKING:
    from webpipe.debugger import Debugger


async def _run(files: list[Path], pattern: str | None, verbose: bool, golden: Path | None,
               update: bool, inspect_port: int | None = None) -> list[CaseResult]:
    if inspect_port is None:
        return await _run_files(files, pattern, verbose, golden, update, None)
    from webpipe.debugger import run_attached

    return await run_attached(inspect_port, files, lambda debugger: _run_files(
        files, pattern, verbose, golden, update, debugger), tests=True)


async def _run_files(files: list[Path], pattern: str | None, verbose: bool,
                     golden: Path | None, update: bool, debugger: Debugger | None,
                     ) -> list[CaseResult]:
    results: list[CaseResult] = []
    for file in files:
        load_dotenv_files(file.parent)
        env = load_program(file)
        if debugger is not None:
            debugger.attach(env)
        try:
            results += await run_tests(env, pattern=pattern, verbose=verbose,
                                       golden=_golden_dir(golden, file, len(files)),
                                       update=update)
        finally:
            await PROCESS_TASKS.drain(5.0)
            await env.aclose()
    return results


def _golden_dir(golden: Path | None, file: Path, count: int) -> Path | None:
    """One directory per file when several files share a --golden DIR."""
    if golden is None:
        return None
    return golden / file.stem if count > 1 else golden


def run_test_files(files: list[Path], *, pattern: str | None = None, as_json: bool = False,
                   verbose: bool = False, golden: Path | None = None,
                   update: bool = False, keep_db: bool = False,
                   inspect_port: int | None = None) -> int:
    try:
        with test_databases(keep_db):  # never the app's own database (spec/server.md §7)
            results = asyncio.run(_run(files, pattern, verbose, golden, update, inspect_port))
    except WebpipeError as exc:
        print(f"Test runner error: {exc}", file=sys.stderr)
        return 1
    if as_json:
        sys.stdout.write(json_report(results))
    else:
        sys.stdout.write(text_report(results, colour=sys.stdout.isatty()))
    recorded = sum(r.recorded for r in results)
    if recorded:
        print(f"{recorded} golden file(s) written under {golden}", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1
