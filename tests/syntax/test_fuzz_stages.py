"""Fuzzing every stage over mutated corpus files (issue 22): parse, check's recovery, load,
the static checks and `fmt` raise only our diagnostics, and `fmt` keeps the AST and is
idempotent (`tests/fuzzing.py` holds the mutations and the property).

A CI run draws a few hundred files. A long run on demand:

    WEBPIPE_FUZZ_EXAMPLES=200000 .venv/bin/pytest -q -p no:cacheprovider \\
        tests/syntax/test_fuzz_stages.py

Every bug a run finds keeps a regression case (a golden file or a test in
tests/syntax/test_fuzz_regressions.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from tests.fuzzing import corpus, mutated, run_stages

EXAMPLES = int(os.environ.get("WEBPIPE_FUZZ_EXAMPLES", "300"))


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutated_files_give_only_diagnostics(case: tuple[Path, str]) -> None:
    run_stages(*case)


def test_corpus_is_the_repository_files() -> None:
    paths = [p for p, _ in corpus()]
    assert len(paths) > 50
    assert all("tests" in p.parts or "examples" in p.parts for p in paths)


def test_every_corpus_file_passes_unmutated() -> None:
    for path, text in corpus():
        run_stages(path, text)
