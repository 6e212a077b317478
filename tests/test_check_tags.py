"""Golden `webpipe check` output for task tags (spec/tasks.md §1): every tag either works
where it stands or is an error at the tag saying where it is allowed. Each
tests/golden/check/*.wp is checked; its .txt holds every diagnostic, rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden import GOLDEN, assert_golden
from webpipe.check import check_file

CASES = sorted((GOLDEN / "check").glob("*.wp"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_check_golden(path: Path, update_goldens: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)  # diagnostics name the file as given
    text = "".join(d.render() + "\n" for d in check_file(path.name))
    assert_golden(path.with_suffix(".txt"), text, update_goldens)
