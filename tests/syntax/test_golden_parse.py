"""Golden parse tests: each tests/golden/parse/*.wp against its .ast.json, plus the
formatter properties fmt(fmt(x)) == fmt(x) and parse(fmt(x)) == parse(x) on every case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.golden import GOLDEN, assert_golden
from webpipe.source import Source
from webpipe.syntax.dump import dump
from webpipe.syntax.fmt import format_source
from webpipe.syntax.parser import parse

CASES = sorted((GOLDEN / "parse").glob("*.wp"))
ROOT = GOLDEN.parent.parent
FMT_CASES = CASES + sorted(ROOT.glob("examples/*/app.wp")) + sorted(ROOT.glob("tests/wp/*.wp"))


def _parse(path: Path, text: str | None = None) -> object:
    return parse(Source.from_text(path.name, path.read_text() if text is None else text))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_parse_golden(path: Path, update_goldens: bool) -> None:
    actual = json.dumps(dump(_parse(path)), indent=2) + "\n"
    assert_golden(path.with_suffix(".ast.json"), actual, update_goldens)


@pytest.mark.parametrize("path", FMT_CASES, ids=[str(p.relative_to(ROOT)) for p in FMT_CASES])
def test_fmt_properties(path: Path) -> None:
    text = path.read_text()
    once = format_source(Source.from_text(path.name, text))
    twice = format_source(Source.from_text(path.name, once))
    assert once == twice
    assert _parse(path, once) == _parse(path)
    original = parse(Source.from_text(path.name, text))
    assert len(parse(Source.from_text(path.name, once)).comments) == len(original.comments)


def test_enough_cases() -> None:
    assert len(CASES) >= 60
