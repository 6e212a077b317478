"""Golden `webpipe check` output: each tests/golden/check/*.wp gives exactly the diagnostics
in its .txt file (load-time problems a parse alone does not find: step configs, nesting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden import GOLDEN, assert_golden
from webpipe.check import check_file

CASES = sorted((GOLDEN / "check").glob("*.wp"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_check_golden(path: Path, update_goldens: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)  # diagnostics name the file relative to the cwd
    rendered = "\n".join(d.render() for d in check_file(path.name))
    assert rendered, "a check golden must report something"
    assert_golden(path.with_suffix(".txt"), rendered + "\n", update_goldens)
