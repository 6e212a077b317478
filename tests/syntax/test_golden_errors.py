"""Golden syntax-error tests: each tests/golden/errors/*.wp must fail to load with exactly
the diagnostic text in its .txt file (file:line:col, message, source line, caret)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden import GOLDEN, assert_golden
from webpipe.errors import WebpipeError
from webpipe.loader import load_source
from webpipe.source import Source

CASES = sorted((GOLDEN / "errors").glob("*.wp"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_error_golden(path: Path, update_goldens: bool) -> None:
    source = Source.from_text(f"{path.stem}.wp", path.read_text())
    with pytest.raises(WebpipeError) as info:
        load_source(source, path)
    assert_golden(path.with_suffix(".txt"), str(info.value) + "\n", update_goldens)


def test_enough_cases() -> None:
    assert len(CASES) >= 25
