"""Formatter goldens: tests/golden/fmt/<case>.wp formats to <case>.fmt.wp, the output is a
fixed point, and it parses to the same AST with the same comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden import GOLDEN, assert_golden
from webpipe.source import Source
from webpipe.syntax.fmt import format_source
from webpipe.syntax.parser import parse

CASES = sorted(p for p in (GOLDEN / "fmt").glob("*.wp") if not p.name.endswith(".fmt.wp"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_fmt_golden(path: Path, update_goldens: bool) -> None:
    text = path.read_text()
    formatted = format_source(Source.from_text(path.name, text))
    assert_golden(path.with_name(path.stem + ".fmt.wp"), formatted, update_goldens)
    assert format_source(Source.from_text(path.name, formatted)) == formatted
    before, after = (parse(Source.from_text(path.name, t)) for t in (text, formatted))
    assert before == after
    assert [c.text for c in before.comments] == [c.text for c in after.comments]
