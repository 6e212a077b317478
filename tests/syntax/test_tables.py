"""`webpipe/syntax/lark_tables.py` is what Lark's standalone tool makes of the grammar today.

The file is generated (`python -m webpipe.syntax.regen`) and committed; these tests fail
while it is stale. The grammar's digest is checked whatever Lark is installed; the whole
text is regenerated and compared byte for byte when the installed Lark is the release that
wrote the file (another release writes its own runtime into it, so bytes would differ
without the tables being stale: test_driver.py compares the parses with that Lark).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from webpipe.syntax import lark_tables, regen
from webpipe.syntax.parser import grammar_path


def test_the_tables_were_generated_from_the_grammar_as_it_is() -> None:
    assert regen.grammar_digest(grammar_path()) == lark_tables.GRAMMAR_SHA256, (
        "grammar/webpipe.lark changed: run `python -m webpipe.syntax.regen`")


def test_regenerating_the_tables_gives_the_committed_file() -> None:
    installed = importlib.metadata.version("lark")
    if installed != lark_tables.__version__:
        pytest.skip(f"lark_tables.py is from Lark {lark_tables.__version__}, "
                    f"Lark {installed} is installed")
    committed = regen.TABLES.read_text(encoding="utf-8")
    assert regen.generate(grammar_path()) == committed, (
        "lark_tables.py differs from the tool's output: run `python -m webpipe.syntax.regen`")


def test_a_changed_grammar_changes_the_digest(tmp_path: Path) -> None:
    changed = tmp_path / "webpipe.lark"
    changed.write_bytes(grammar_path().read_bytes() + b"\n// one more line\n")
    assert regen.grammar_digest(changed) != lark_tables.GRAMMAR_SHA256
