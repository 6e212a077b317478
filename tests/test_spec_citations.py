"""Every `language.md §4.2`-style citation in the code, the tests and spec/ names a section
that exists in spec/reference/ (spec/README.md: where the cited files are)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "spec" / "reference"
CITATION = re.compile(r"\b(language|middleware|testing|concurrency|graphql)\.md §(\d+(?:\.\d+)*)")
HEADING = re.compile(r"#{2,4} (\d+(?:\.\d+)*)\.?\s")


def sections(name: str) -> set[str]:
    text = (REFERENCE / f"{name}.md").read_text(encoding="utf-8")
    return {m.group(1) for line in text.splitlines() if (m := HEADING.match(line))}


def cited_files() -> list[Path]:
    files = [*ROOT.joinpath("webpipe").rglob("*.py"), *ROOT.joinpath("tests").rglob("*.py"),
             *ROOT.joinpath("tests").rglob("*.wp"), *ROOT.joinpath("spec").rglob("*.md")]
    return [f for f in files if "__pycache__" not in f.parts]


def test_every_cited_section_exists() -> None:
    known = {name: sections(name)
             for name in ("language", "middleware", "testing", "concurrency", "graphql")}
    found, missing = 0, []
    for path in cited_files():
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            found += 1
            if match.group(2) not in known[match.group(1)]:
                missing.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert found > 100  # the scan reaches the code's citations
    assert missing == []


def test_a_missing_section_is_reported() -> None:
    assert "6.3" in sections("language")
    assert "6.99" not in sections("language")
